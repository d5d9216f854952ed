"""Errors raised by the trainers' data side.

`DataError` is a `ValueError` (a bad value in the user's data) that names the file and line; the
CLI and the TUI turn it into one line and exit code 2 (`ragweld_tui.commands.common.user_errors`).
"""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """A problem in a data file; the message starts with `file:line:` when a line is to blame."""

    def __init__(self, message: str, path: Path | str | None = None, line: int | None = None) -> None:
        self.path = None if path is None else str(path)
        self.line = line
        where = f"{path}:{line}: " if path is not None and line is not None else f"{path}: " if path is not None else ""
        super().__init__(where + message)
