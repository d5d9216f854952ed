"""A config mapping written as TOML (what the inspector shows, so it can be copied into a config file).

Only what a config holds: tables, strings, numbers, booleans and arrays. TOML has no null, so None
values are left out (the model's default applies when the text is loaded back).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_key(key: str) -> str:
    """A bare key when TOML allows one, else a quoted one (`"mrr@10"`)."""
    return key if BARE_KEY.match(key) else json.dumps(key, ensure_ascii=False)


def toml_value(value: Any) -> str:
    """One value: JSON's string escapes are valid TOML basic-string escapes."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        inner = ", ".join(f"{toml_key(str(k))} = {toml_value(v)}" for k, v in value.items() if v is not None)
        return "{" + (f" {inner} " if inner else "") + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value if v is not None) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def to_toml(data: Mapping[str, Any], prefix: str = "") -> str:
    """Top-level keys first, then one `[table]` per mapping (nested ones as `[table.sub]`)."""
    lines = [f"{toml_key(str(k))} = {toml_value(v)}" for k, v in data.items()
             if v is not None and not isinstance(v, Mapping)]
    blocks = ["\n".join(lines)] if lines else []
    for key, value in data.items():
        if isinstance(value, Mapping):
            name = f"{prefix}{toml_key(str(key))}"
            body = to_toml(value, f"{name}.")
            blocks.append(f"[{name}]" + (f"\n{body}" if body else ""))
    return "\n\n".join(blocks)
