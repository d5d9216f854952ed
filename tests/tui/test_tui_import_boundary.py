"""`ragweld_tui` never imports torch, mlx or transformers until a scorer or trainer starts.

Checked in a fresh interpreter (this test process has long imported them): import every module of
the package, build the CLI parser, then open the app headless and visit every view, the inspector,
the diff, the help and the new-run form, and look at `sys.modules`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.tui.fixture_db import build_fixture_db

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "mlx", "transformers")

SCRIPT = textwrap.dedent(
    """
    import asyncio, importlib, pkgutil, sys
    import ragweld_tui
    for module in pkgutil.walk_packages(ragweld_tui.__path__, "ragweld_tui."):
        importlib.import_module(module.name)
    from ragweld_tui.cli import build_parser
    build_parser()
    from ragweld_tui.app import make_app
    from ragweld_tui.config import parse_config

    async def visit():
        app = make_app(parse_config({}, "t"), sys.argv[1], poll_interval_s=3600, probe_lag=False)
        async with app.run_test(size=(80, 24)) as pilot:
            for key in ("down", "enter", "right_square_bracket", "escape", "space", "down", "c", "escape", "n",
                        "escape", "question_mark", "escape", "2", "v", "3", "4", "escape", "1"):
                await pilot.press(key)
                await pilot.pause()
                await app.workers.wait_for_complete()

    asyncio.run(visit())
    heavy = sorted({name.split(".")[0] for name in sys.modules} & set(sys.argv[2:]))
    print("HEAVY:" + ",".join(heavy))
    """
)


def test_the_tui_loads_no_ml_framework(tmp_path: Path) -> None:
    db = build_fixture_db(tmp_path / "store.sqlite")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(db), *HEAVY], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "HEAVY:\n" in result.stdout or result.stdout.strip().endswith("HEAVY:"), result.stdout
