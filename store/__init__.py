"""The run store: SQLite (aiosqlite, WAL) holding every run, its events, artifacts and promotions,
and the HTTP servers that serve the adapters.

Trainers append typed events through an `EventWriter`; the CLI and the TUI (possibly another
process) read them with `RunStore.events_since()` / `series()`. Imports no ML framework.
"""

from store.errors import (
    InvalidRunIdError,
    InvalidServerIdError,
    InvalidTransitionError,
    NotAStoreError,
    RunNotFoundError,
    SchemaTooNewError,
    ServerNotFoundError,
    StoreError,
    StoreMissingError,
    UnsafePathError,
    WalUnsupportedError,
)
from store.events import (
    AlarmEvent,
    CheckpointEvent,
    DatasetEvent,
    EvalEvent,
    Event,
    EventRecord,
    LogEvent,
    MetricsEvent,
    PromotionEvent,
    StateEvent,
    TelemetryEvent,
)
from store.ids import (
    file_digest,
    is_run_id,
    new_run_id,
    new_server_id,
    safe_artifact_path,
    validate_run_id,
    validate_server_id,
)
from store.models import ArtifactRecord, PromotionRecord, RunRecord, SeriesPoint
from store.runs import RunStore
from store.servers import ServerRecord, ServerState
from store.writer import EventWriter

__all__ = [
    "AlarmEvent",
    "ArtifactRecord",
    "CheckpointEvent",
    "DatasetEvent",
    "EvalEvent",
    "Event",
    "EventRecord",
    "EventWriter",
    "InvalidRunIdError",
    "InvalidServerIdError",
    "InvalidTransitionError",
    "LogEvent",
    "MetricsEvent",
    "NotAStoreError",
    "PromotionEvent",
    "PromotionRecord",
    "RunNotFoundError",
    "RunRecord",
    "RunStore",
    "SchemaTooNewError",
    "SeriesPoint",
    "ServerNotFoundError",
    "ServerRecord",
    "ServerState",
    "StateEvent",
    "StoreError",
    "StoreMissingError",
    "TelemetryEvent",
    "UnsafePathError",
    "WalUnsupportedError",
    "file_digest",
    "is_run_id",
    "new_run_id",
    "new_server_id",
    "safe_artifact_path",
    "validate_run_id",
    "validate_server_id",
]
