"""Loading config.toml into the settings models, with clear, key-naming errors.

The sections are owned by the packages whose code reads them (`backends.settings`,
`store.settings`, `trainers.settings`, which composes them into `AppConfig`); this module only
reads the file, resolves relative paths, applies environment overrides and turns validation
errors into one line per problem. It imports no ML framework.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ragweld_tui.errors import UserError
from trainers.settings import AppConfig

__all__ = ["AppConfig", "format_validation_error", "load_config", "parse_config"]

ENV_OVERRIDES = {"RAGWELD_BACKEND": ("model", "backend"), "RAGWELD_DEVICE": ("model", "device")}


def format_validation_error(error: ValidationError, source: str) -> str:
    """One line per problem, each naming the key as `[section].key` and what is allowed."""
    lines = []
    for item in error.errors():
        loc = [str(part) for part in item["loc"]]
        key = f"[{loc[0]}].{'.'.join(loc[1:])}" if len(loc) > 1 else loc[0] if loc else "(root)"
        message = item["msg"]
        if item["type"] == "literal_error":
            message = f"must be one of {item['ctx']['expected']} (got {item['input']!r})"
        elif item["type"].endswith("_type") or item["type"] == "finite_number":
            message = f"{message} (got {item['input']!r})"
        elif item["type"] == "extra_forbidden":
            message = "unknown setting"
        elif item["type"].startswith("value_error"):
            message = message.removeprefix("Value error, ")
        lines.append(f"{source}: {key}: {message}" if loc else f"{source}: {message}")
    return "\n".join(lines)


def _resolve_paths(raw: dict[str, Any], base_dir: Path) -> None:
    """Relative paths in the file are relative to the file, not to the current directory."""
    for section, key in (("serving", "active_adapter"), ("store", "path"), ("store", "runs_root"), ("data", "path")):
        value = raw.get(section, {}).get(key)
        if isinstance(value, str):
            path = Path(value).expanduser()
            raw[section][key] = str(path if path.is_absolute() else base_dir / path)


def parse_config(raw: dict[str, Any], source: str, base_dir: Path | None = None) -> AppConfig:
    """Validate a raw mapping, apply environment overrides and return the config or raise UserError."""
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    if base_dir is not None:
        _resolve_paths(raw, base_dir)
    try:
        config = AppConfig.model_validate(raw)
    except ValidationError as exc:
        raise UserError(format_validation_error(exc, source)) from None
    for env_name, (section, key) in ENV_OVERRIDES.items():
        value = os.environ.get(env_name)
        if value:
            try:
                setattr(getattr(config, section), key, value)
            except ValidationError as exc:
                raise UserError(format_validation_error(exc, f"environment {env_name}")) from None
    return config


def load_config(path: Path | str | None) -> AppConfig:
    """Load config.toml (or the defaults when path is None) with errors naming file, line and key."""
    if path is None:
        return parse_config({}, "defaults")
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: config file not found")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason})") from None
    return parse_config(raw, str(path), base_dir=path.resolve().parent)
