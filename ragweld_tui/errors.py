"""User-facing errors: one clear line, a non-zero exit code, never a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input (a setting, a file, an argument); exit code 2 by default."""

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
