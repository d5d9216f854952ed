"""Errors raised by the run store; each carries one line a user can act on.

The store does not import the CLI, so it has its own hierarchy; `ragweld_tui` turns a `StoreError`
into a `UserError` at the command boundary.
"""

from __future__ import annotations


class StoreError(Exception):
    """Anything the store refuses or cannot do; the message says why and what to do."""


class WalUnsupportedError(StoreError):
    """The database lives where SQLite cannot use write-ahead logging (a network filesystem)."""


class SchemaTooNewError(StoreError):
    """The database was migrated by a newer ragweld-tui than this one; opening it could corrupt it."""


class NotAStoreError(StoreError):
    """The file exists but is not a ragweld-tui store (not SQLite, or someone else's tables)."""


class InvalidRunIdError(StoreError, ValueError):
    """A run id that does not match the strict run id pattern (never reaches SQL or a path)."""


class RunNotFoundError(StoreError, LookupError):
    """A well-formed run id that is not in the store."""


class InvalidServerIdError(StoreError, ValueError):
    """A server id that does not match the strict server id pattern (never reaches SQL)."""


class ServerNotFoundError(StoreError, LookupError):
    """A well-formed server id that is not in the store."""


class UnsafePathError(StoreError, ValueError):
    """An artifact path that is absolute, climbs out with `..`, or resolves outside the runs root."""


class InvalidTransitionError(StoreError):
    """A status change the run lifecycle does not allow (e.g. leaving a terminal state)."""


class StoreMissingError(StoreError, FileNotFoundError):
    """Opening with `create=False` and there is no store file yet."""
