"""Import boundary: the store and the runs command load no ML framework and no UI toolkit."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ("torch", "mlx", "transformers", "peft", "textual")


def test_store_imports_no_framework() -> None:
    code = (
        "import json, sys; import store, store.runs, store.writer, ragweld_tui.commands.runs; "
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({FORBIDDEN!r}))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(result.stdout) == []
