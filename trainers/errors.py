"""Errors raised by the trainers' data side.

`DataError` is both a `ValueError` (a bad value in the user's data) and a `UserError`, so the CLI
prints its one line and exits with code 2 instead of showing a traceback.
"""

from __future__ import annotations

from pathlib import Path

from ragweld_tui.errors import UserError


class DataError(UserError, ValueError):
    """A problem in a data file; the message starts with `file:line:` when a line is to blame."""

    def __init__(self, message: str, path: Path | str | None = None, line: int | None = None) -> None:
        self.path = None if path is None else str(path)
        self.line = line
        where = f"{path}:{line}: " if path is not None and line is not None else f"{path}: " if path is not None else ""
        super().__init__(where + message)
