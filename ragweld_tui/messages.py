"""Messages workers post to screens; only `@on` handlers turn them into widget changes.

Snapshot-style messages (a full refresh of a view) define `can_replace`, so when the UI is busy a
newer one replaces an older one still in the queue instead of both being processed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual.message import Message
from textual.notifications import SeverityLevel

from backends.catalog import CatalogEntry
from store import ArtifactRecord, DatasetEvent, EventRecord, PromotionRecord, RunRecord, SeriesPoint, ServerRecord
from store.reads import RunProgress
from trainers.promotion import GateDecision


class RunsLoaded(Message):
    """The whole runs list and the serving (or recently gone) HTTP servers, read at `now` (epoch s)."""

    def __init__(self, runs: list[RunRecord], now: float, servers: list[ServerRecord],
                 progress: dict[str, RunProgress] | None = None) -> None:
        super().__init__()
        self.runs = runs
        self.now = now
        self.servers = servers
        self.progress = progress or {}

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunsLoaded)


@dataclass(frozen=True)
class InspectorData:
    """Everything the inspector shows about one run except the event log.

    `manifest` is the adapter's `adapter/manifest.json`, pretty-printed; `dataset` the run's first
    `DatasetEvent` (what the trainer loaded; a resumed run's later one arrives with the tail).
    """

    run: RunRecord
    artifacts: list[ArtifactRecord]
    promotions: list[PromotionRecord]
    manifest: str | None
    dataset: DatasetEvent | None
    metrics: dict[str, float]
    run_dir: str = ""  # the run's folder (artifacts, checkpoints, rankings)
    checkpoints: tuple[tuple[str, int], ...] = ()  # (path in the run folder, bytes) of the checkpoints on disk


class InspectorLoaded(Message):
    """A fresh read of one run for the inspector."""

    def __init__(self, data: InspectorData) -> None:
        super().__init__()
        self.data = data

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, InspectorLoaded) and message.data.run.id == self.data.run.id


class EventsArrived(Message):
    """New events of a run, in seq order (incremental: never replaced)."""

    def __init__(self, run_id: str, records: list[EventRecord], skipped: int = 0) -> None:
        super().__init__()
        self.run_id = run_id
        self.records = records
        self.skipped = skipped


@dataclass(frozen=True)
class HudSnapshot:
    """One refresh of the metrics HUD: downsampled series by chart role plus context."""

    run: RunRecord | None
    series: dict[str, list[SeriesPoint]] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    latest: dict[str, float] = field(default_factory=dict)
    overlay: RunRecord | None = None
    overlay_series: dict[str, list[SeriesPoint]] = field(default_factory=dict)
    now: float = 0.0


class HudLoaded(Message):
    """A HUD refresh (high rate while a run is live; a newer one replaces a queued older one)."""

    def __init__(self, snapshot: HudSnapshot) -> None:
        super().__init__()
        self.snapshot = snapshot

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, HudLoaded)


class TrajectoryArrived(Message):
    """New telemetry points (proj_x, proj_y, loss) of a run; `reset` starts a new trajectory."""

    def __init__(self, run: RunRecord | None, points: list[tuple[float, float, float]], reset: bool) -> None:
        super().__init__()
        self.run = run
        self.points = points
        self.reset = reset


@dataclass(frozen=True)
class DiffData:
    """Two runs with their latest metrics, for the diff screen."""

    a: RunRecord
    b: RunRecord
    metrics_a: dict[str, float]
    metrics_b: dict[str, float]


class DiffLoaded(Message):
    """The two runs of a diff, read."""

    def __init__(self, data: DiffData) -> None:
        super().__init__()
        self.data = data


class CatalogLoaded(Message):
    """The model catalog with the local Hugging Face cache scanned (and the scan's warning lines)."""

    def __init__(self, entries: list[CatalogEntry], warnings: list[str]) -> None:
        super().__init__()
        self.entries = entries
        self.warnings = warnings


class ScoreDone(Message):
    """Base and adapter scores for one REPL query (`rows` as made by `scoring.compare_rows`)."""

    def __init__(self, query: str, rows: list[dict[str, Any]], info: str) -> None:
        super().__init__()
        self.query = query
        self.rows = rows
        self.info = info


class ChatProgress(Message):
    """The agent's reply so far (one per generated piece; a newer one replaces a queued older one)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ChatProgress)


class ChatDone(Message):
    """The agent's whole reply, and what it cost."""

    def __init__(self, text: str, info: str) -> None:
        super().__init__()
        self.text = text
        self.info = info


class ReplOutput(Message):
    """A line of text (Rich markup) for the REPL transcript."""

    def __init__(self, text: str, severity: SeverityLevel = "information") -> None:
        super().__init__()
        self.text = text
        self.severity = severity


class ActionDone(Message):
    """A long action (train, cancel, promote, rollback, delete) finished; tell the user."""

    def __init__(self, text: str, severity: SeverityLevel = "information", refresh: bool = True) -> None:
        super().__init__()
        self.text = text
        self.severity = severity
        self.refresh = refresh


class PauseAsked(Message):
    """The runs list asked to pause a run; `step` is the last step it recorded (for the question)."""

    def __init__(self, run: RunRecord, step: int | None) -> None:
        super().__init__()
        self.run = run
        self.step = step


class GateDecided(Message):
    """The promotion gate's dry-run answer for a run (or why it could not be computed), so the
    runs list can ask for confirmation with the figures in front of the user."""

    def __init__(self, run: RunRecord, force: bool, decision: GateDecision | None, error: str | None = None) -> None:
        super().__init__()
        self.run = run
        self.force = force
        self.decision = decision
        self.error = error


class DeletePlanned(Message):
    """What deleting a run would remove: its folder of files and their size (None: no folder)."""

    def __init__(self, run: RunRecord, folder: Path, size: int | None) -> None:
        super().__init__()
        self.run, self.folder, self.size = run, folder, size


class RollbackPlanned(Message):
    """What a rollback of a kind would do: the active run and the one it restores (None: the base
    model), or why there is nothing to roll back to (`refused`)."""

    def __init__(self, kind: str, active: str | None, restores: str | None, refused: str | None = None) -> None:
        super().__init__()
        self.kind, self.active, self.restores, self.refused = kind, active, restores, refused


class StoreFailed(Message):
    """The store could not be read (missing, too new, corrupt): shown once, not retried blindly."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class ExportFinished(Message):
    """An adapter export ended: `text` is the parity line (ok) or the one-line error."""

    def __init__(self, ok: bool, text: str) -> None:
        super().__init__()
        self.ok = ok
        self.text = text
