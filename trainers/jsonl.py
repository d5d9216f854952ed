"""Line-numbered JSONL reading whose errors name `file:line` and what is wrong."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trainers.errors import DataError


def iter_text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, text) for each non-blank line of a UTF-8 file (BOM allowed)."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise DataError(f"cannot read file ({exc.strerror or exc})", path) from None
    # Bytes are decoded line by line so that a bad byte is blamed on its own line, not on a buffer.
    with handle:
        for line_no, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"not UTF-8 text ({exc.reason})", path, line_no) from None
            if line.strip():
                yield line_no, line


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (1-based line number, object) for each non-blank line; every line must be a JSON object."""
    for line_no, line in iter_text_lines(path):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"invalid JSON: {exc.msg} (column {exc.colno})", path, line_no) from None
        if not isinstance(obj, dict):
            raise DataError(f"expected a JSON object, got {type(obj).__name__}", path, line_no)
        yield line_no, obj


def string_field(obj: dict[str, Any], key: str, path: Path, line: int, *, allow_empty: bool = False) -> str:
    """Return obj[key] as a string, refusing a missing key, a non-string value or (by default) blank text."""
    if key not in obj:
        raise DataError(f"missing field {key!r}", path, line)
    value = obj[key]
    if not isinstance(value, str):
        raise DataError(f"field {key!r} must be a string, got {type(value).__name__}", path, line)
    if not allow_empty and not value.strip():
        raise DataError(f"field {key!r} is empty", path, line)
    return value


def id_field(obj: dict[str, Any], key: str, path: Path, line: int) -> str:
    """Return an identifier field as a string; JSON integers are accepted (BEIR files use both)."""
    if key not in obj:
        raise DataError(f"missing field {key!r}", path, line)
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataError(f"field {key!r} must be a string or an integer, got {type(value).__name__}", path, line)
    text = str(value).strip()
    if not text:
        raise DataError(f"field {key!r} is empty", path, line)
    return text
