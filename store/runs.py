"""RunStore: the async API over the SQLite store that trainers, the CLI and the TUI share.

One RunStore per process owns the process's single writer connection (all writes serialise on it
under an asyncio lock, each in `BEGIN IMMEDIATE`) and a separate reader connection, so tailing and
charting never queue behind a batch commit. Opening it applies migrations and marks runs whose owner
died (or whose heartbeat went stale) `interrupted`, so nothing stays `running` forever.
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path, PurePosixPath
from typing import Any

import aiosqlite

from store import lineage, reads, servers, staleness
from store.append import append_batch, insert_events, pending, run_pk
from store.db import DEFAULT_BUSY_TIMEOUT_S, connect, fetch_all, fetch_one, immediate
from store.errors import InvalidTransitionError, RunNotFoundError, StoreError, StoreMissingError
from store.events import (
    GOALS, RUN_KINDS, RUN_STATUSES, Event, EventRecord, StateEvent, is_run_status, to_sql_float)
from store.ids import (
    new_run_id,
    normalize_rel_path,
    safe_artifact_path,
    validate_artifact_kind,
    validate_run_id,
    validate_sha256,
)
from store.lease import check_owner, take_lease
from store.models import (
    TRANSITIONS,
    ArtifactRecord,
    PromotionRecord,
    RunRecord,
    SeriesPoint,
    encode_config,
    run_record_from_row,
)
from store.schema import migrate
from store.servers import ServerRecord
from store.writer import EventWriter

DEFAULT_STALE_AFTER_S = 30.0
_RUN_COLUMNS = (
    "id, kind, name, status, backend, base_model, config, dataset_fingerprint, created_at, started_at, "
    "finished_at, heartbeat_at, primary_metric, goal, baseline, best, promoted, error, owner_pid, owner_host, alarm, "
    "first_stage, serving, serving_run_id, serving_note, world_size"
)


class RunStore:
    """Runs, events, artifacts and promotions in one SQLite file. Use `await RunStore.open(path)`."""

    def __init__(
        self,
        path: Path,
        writer: aiosqlite.Connection,
        reader: aiosqlite.Connection,
        runs_root: Path,
        stale_after_s: float,
    ) -> None:
        self.path = path
        self.runs_root = runs_root
        self.stale_after_s = stale_after_s
        self._writer = writer
        self._reader = reader
        self._lock = asyncio.Lock()
        self._host = socket.gethostname()
        self.owner_token = uuid.uuid4().hex  # this process's lease token on the runs it makes `running`
        self._writers: set[EventWriter] = set()  # open writers, closed (flushed) before the store

    @classmethod
    async def open(
        cls,
        path: Path | str,
        *,
        runs_root: Path | str | None = None,
        stale_after_s: float = DEFAULT_STALE_AFTER_S,
        create: bool = True,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
        check_fs: bool = True,
    ) -> RunStore:
        """Open (creating unless `create=False`), migrate, and interrupt runs that died unseen.

        `runs_root` holds the run folders artifacts live in (default: `runs/` next to the store).
        """
        path = Path(path).expanduser()
        if path.is_dir():
            raise StoreError(f"the store {path} is a folder; give the path of a store file (e.g. {path / 'ragweld.sqlite'})")
        if not path.exists():
            if not create:
                raise StoreMissingError(f"no store at {path}")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the store's folder {path.parent}: {exc.strerror or exc}") from None
        writer = await connect(path, busy_timeout_s=busy_timeout_s, check_fs=check_fs)
        reader: aiosqlite.Connection | None = None
        try:
            writer.row_factory = sqlite3.Row
            await migrate(writer, path)
            reader = await connect(path, busy_timeout_s=busy_timeout_s, check_fs=False)
            reader.row_factory = sqlite3.Row
            await reader.execute("PRAGMA query_only = ON")  # the process's only writer is `writer`
            root = Path(runs_root).expanduser() if runs_root is not None else path.parent / "runs"
            store = cls(path, writer, reader, root, stale_after_s)
            await store.mark_stale_runs()
        except BaseException:
            await writer.close()
            if reader is not None:
                await reader.close()
            raise
        return store

    async def close(self) -> None:
        """Flush and close the EventWriters still open, then both connections."""
        for writer in list(self._writers):
            await writer.close()
        await self._reader.close()
        await self._writer.close()

    async def __aenter__(self) -> RunStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """The writer connection inside `BEGIN IMMEDIATE`, one writer at a time in this process."""
        async with self._lock:
            async with immediate(self._writer) as conn:
                yield conn

    # -- runs ---------------------------------------------------------------------------------

    async def create_run(
        self,
        kind: str,
        name: str,
        backend: str | None = None,
        base_model: str | None = None,
        config: dict[str, Any] | None = None,
        dataset_fingerprint: str | None = None,
        primary_metric: str | None = None,
        goal: str = "maximize",
        world_size: int = 1,
    ) -> str:
        """Insert a `queued` run and return its new id."""
        if kind not in RUN_KINDS:
            raise ValueError(f"run kind must be one of {RUN_KINDS}, not {kind!r}")
        if goal not in GOALS:
            raise ValueError(f"goal must be one of {GOALS}, not {goal!r}")
        if not isinstance(name, str) or not name:
            raise ValueError("run name must be a non-empty string")
        run_id = new_run_id()
        async with self.transaction() as conn:
            await conn.execute(
                """INSERT INTO runs (id, kind, name, status, backend, base_model, config, dataset_fingerprint,
                                     created_at, primary_metric, goal, world_size)
                   VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    run_id,
                    kind,
                    name,
                    backend,
                    base_model,
                    encode_config(config),
                    dataset_fingerprint,
                    time.time(),
                    primary_metric,
                    goal,
                    world_size,
                ),
            )
        return run_id

    async def get_run(self, run_id: str) -> RunRecord:
        """One run, or RunNotFoundError."""
        validate_run_id(run_id)
        row = await fetch_one(self._reader, f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,))
        if row is None:
            raise RunNotFoundError(f"no run {run_id} in the store")
        return run_record_from_row(row)

    async def list_runs(self, kind: str | None = None, status: str | None = None) -> list[RunRecord]:
        """Runs newest first, optionally filtered by kind and status."""
        rows = await fetch_all(
            self._reader,
            f"""SELECT {_RUN_COLUMNS} FROM runs WHERE (:kind IS NULL OR kind = :kind)
                AND (:status IS NULL OR status = :status) ORDER BY created_at DESC, pk DESC""",
            {"kind": kind, "status": status},
        )
        return [run_record_from_row(row) for row in rows]

    async def set_status(
        self, run_id: str, status: str, error: str | None = None, reason: str | None = None
    ) -> RunRecord:
        """Move a run through its lifecycle and record a `state` event in the same transaction.

        `running` stamps started_at (first time), the heartbeat and this process as owner; terminal
        states stamp finished_at. Illegal moves (out of a terminal state) raise InvalidTransitionError.
        """
        validate_run_id(run_id)
        if not is_run_status(status):
            raise ValueError(f"status must be one of {RUN_STATUSES}, not {status!r}")
        now = time.time()
        async with self.transaction() as conn:
            row = await fetch_one(conn, "SELECT pk, status FROM runs WHERE id = ?", (run_id,))
            if row is None:
                raise RunNotFoundError(f"no run {run_id} in the store")
            pk, current = int(row[0]), row[1]
            if status not in TRANSITIONS[current]:
                raise InvalidTransitionError(f"run {run_id} is {current}; it cannot become {status}")
            if status == "running":  # the status check and the lease are one transaction
                await take_lease(conn, pk, run_id, self.owner_token, self._host, now)
            elif status in ("completed", "failed", "cancelled"):
                await check_owner(conn, pk, run_id, self.owner_token)  # only the owner ends a running run
                await conn.execute(
                    "UPDATE runs SET status = ?, finished_at = ?, error = ? WHERE pk = ?", (status, now, error, pk)
                )
            else:
                await conn.execute("UPDATE runs SET status = ?, error = ? WHERE pk = ?", (status, error or reason, pk))
            await insert_events(conn, pk, [pending(StateEvent(status=status, reason=reason or error))])
        return await self.get_run(run_id)

    async def _update_run(self, run_id: str, column: str, value: object) -> None:
        validate_run_id(run_id)
        async with self.transaction() as conn:
            cursor = await conn.execute(f"UPDATE runs SET {column} = ? WHERE id = ?", (value, run_id))  # column is ours
            if cursor.rowcount == 0:
                raise RunNotFoundError(f"no run {run_id} in the store")

    async def set_world_size(self, run_id: str, world_size: int) -> None:
        """The number of processes training the run now (a resume may use another count)."""
        await self._update_run(run_id, "world_size", world_size)

    async def set_baseline(self, run_id: str, value: float | None) -> None:
        """The primary metric of the untuned model on the same eval set (NaN/Inf kept)."""
        await self._update_run(run_id, "baseline", to_sql_float(None if value is None else float(value)))

    async def set_best(self, run_id: str, value: float | None) -> None:
        """The best primary metric the run has reached so far (NaN/Inf kept)."""
        await self._update_run(run_id, "best", to_sql_float(None if value is None else float(value)))

    async def set_promoted(self, run_id: str, promoted: bool) -> None:
        """Set the promoted flag directly; `record_promotion` is what keeps lineage and the flags consistent."""
        await self._update_run(run_id, "promoted", 1 if promoted else 0)

    async def set_first_stage(self, run_id: str, value: float | None) -> None:
        """The first stage's primary metric on the run's dev candidates (a gate reference)."""
        await self._update_run(run_id, "first_stage", to_sql_float(None if value is None else float(value)))

    async def set_serving_reference(self, run_id: str, serving_run_id: str | None, value: float | None,
                                    note: str | None = None) -> None:
        """The serving adapter's primary metric on the run's dev candidates, or why it was not compared."""
        validate_run_id(run_id)
        async with self.transaction() as conn:
            cursor = await conn.execute(
                "UPDATE runs SET serving_run_id = ?, serving = ?, serving_note = ? WHERE id = ?",
                (serving_run_id, to_sql_float(None if value is None else float(value)), note, run_id))
            if cursor.rowcount == 0:
                raise RunNotFoundError(f"no run {run_id} in the store")

    async def set_alarm(self, run_id: str, alarm: str | None) -> None:
        """The run's latest training alarm (None clears it): what the runs list marks."""
        await self._update_run(run_id, "alarm", alarm)

    async def heartbeat(self, run_id: str) -> None:
        """Tell other processes a running run is alive (EventWriter calls this on its own)."""
        validate_run_id(run_id)
        async with self.transaction() as conn:
            await conn.execute(
                """UPDATE runs SET heartbeat_at = ? WHERE id = ? AND status = 'running'
                   AND (owner_token IS NULL OR owner_token = ?)""", (time.time(), run_id, self.owner_token)
            )

    async def delete_run(self, run_id: str) -> None:
        """Delete a run with its events, metric points and artifact rows (files are left on disk).

        Running and currently promoted runs are refused: the first has a live writer, the second is
        being served. Promotion history keeps mentioning the id.
        """
        validate_run_id(run_id)
        async with self.transaction() as conn:
            row = await fetch_one(conn, "SELECT status, promoted FROM runs WHERE id = ?", (run_id,))
            if row is None:
                raise RunNotFoundError(f"no run {run_id} in the store")
            if row[0] == "running" or row[1]:
                raise StoreError(
                    f"run {run_id} is {'running' if row[0] == 'running' else 'the promoted one'}; it cannot be deleted"
                )
            await conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))

    async def mark_stale_runs(self) -> list[str]:
        """Mark `running` runs whose owner died or whose heartbeat is stale as `interrupted`."""
        now = time.time()
        rows = await fetch_all(self._reader, staleness.RUNNING)
        if not any(staleness.stale_reason(row, now, self._host, self.stale_after_s) for row in rows):
            return []
        try:
            async with self.transaction() as conn:
                return await staleness.mark_stale(conn, now, self._host, self.stale_after_s)
        except sqlite3.OperationalError:  # a full disk or a read-only store: reading must still work
            return []

    # -- artifacts and promotions ---------------------------------------------------------------

    def artifact_path(self, run_id: str, rel_path: str | PurePosixPath) -> Path:
        """Absolute path of an artifact inside `runs_root/<run_id>/`; UnsafePathError if it escapes."""
        return safe_artifact_path(self.runs_root, run_id, rel_path)

    async def add_artifact(
        self, run_id: str, kind: str, rel_path: str | PurePosixPath, sha256: str, size: int
    ) -> ArtifactRecord:
        """Record a file of a run (path relative to its run folder; re-adding a path replaces it)."""
        validate_artifact_kind(kind)
        validate_sha256(sha256)
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"artifact size must be a non-negative int, not {size!r}")
        self.artifact_path(run_id, rel_path)  # refuses traversal and symlink escapes
        clean = normalize_rel_path(rel_path)
        now = time.time()
        async with self.transaction() as conn:
            pk = await run_pk(conn, run_id)
            await conn.execute(
                """INSERT OR REPLACE INTO artifacts (run_pk, kind, path, sha256, bytes, created_at)
                   VALUES (?, ?, ?, ?, ?, ?)""",
                (pk, kind, clean, sha256, size, now),
            )
        return ArtifactRecord(run_id=run_id, kind=kind, path=clean, sha256=sha256, bytes=size, created_at=now)

    async def remove_artifacts(self, run_id: str, kind: str) -> int:
        """Forget a run's artifacts of one kind (files pruned since: old checkpoints); returns how many."""
        validate_artifact_kind(kind)
        async with self.transaction() as conn:
            pk = await run_pk(conn, run_id)
            cursor = await conn.execute("DELETE FROM artifacts WHERE run_pk = ? AND kind = ?", (pk, kind))
        return max(cursor.rowcount, 0)

    async def artifacts(self, run_id: str) -> list[ArtifactRecord]:
        """The artifacts of a run, in the order they were recorded."""
        validate_run_id(run_id)
        rows = await fetch_all(
            self._reader,
            """SELECT a.kind, a.path, a.sha256, a.bytes, a.created_at FROM artifacts a JOIN runs r ON r.pk = a.run_pk
               WHERE r.id = ? ORDER BY a.created_at, a.path""",
            (run_id,),
        )
        return [ArtifactRecord(run_id=run_id, **dict(row)) for row in rows]

    async def record_promotion(self, run_id: str, replaced_run_id: str | None, reason: str) -> PromotionRecord:
        """Make a completed (or cancelled: paused) run the active one of its kind; append it to the lineage."""
        async with self.transaction() as conn:
            return await lineage.record_promotion(conn, run_id, replaced_run_id, reason)

    async def clear_promotion(self, kind: str, replaced_run_id: str | None, reason: str) -> PromotionRecord:
        """Make the plain base model active for `kind` (no run promoted) and record it in the lineage."""
        async with self.transaction() as conn:
            return await lineage.clear_promotion(conn, kind, replaced_run_id, reason)

    async def promotions(self, kind: str | None = None) -> list[PromotionRecord]:
        """The promotion lineage, oldest first."""
        rows = await fetch_all(
            self._reader, "SELECT * FROM promotions WHERE (:kind IS NULL OR kind = :kind) ORDER BY id", {"kind": kind}
        )
        return [PromotionRecord.model_validate(dict(row)) for row in rows]

    async def active_run(self, kind: str) -> str | None:
        """The id of the run most recently promoted for `kind`, or None."""
        row = await fetch_one(
            self._reader, "SELECT run_id FROM promotions WHERE kind = ? ORDER BY id DESC LIMIT 1", (kind,)
        )
        return None if row is None else row[0]

    # -- servers (store.servers) ----------------------------------------------------------------

    async def register_server(self, address: str, base_model: str | None = None,
                              backend: str | None = None) -> ServerRecord:
        """Register this process as an HTTP server at `address` (e.g. 127.0.0.1:8787); returns its record."""
        async with self.transaction() as conn:
            return await servers.insert_server(conn, address, base_model, backend, self._host)

    async def update_server(self, server_id: str, *, adapter_run_id: str | None, adapter_fingerprint: str | None,
                            requests: int, errors: int, p50_ms: float | None, p95_ms: float | None) -> None:
        """The server's adapter (None: the base model) and totals, with its heartbeat (every few seconds)."""
        async with self.transaction() as conn:
            await servers.update_server(conn, server_id, adapter_run_id=adapter_run_id,
                                        adapter_fingerprint=adapter_fingerprint, requests=requests, errors=errors,
                                        p50_ms=p50_ms, p95_ms=p95_ms)

    async def stop_server(self, server_id: str) -> None:
        """Record the server's clean shutdown."""
        async with self.transaction() as conn:
            await servers.stop_server(conn, server_id)

    async def get_server(self, server_id: str) -> ServerRecord:
        """One server with its state now, or ServerNotFoundError."""
        return await servers.get_server(self._reader, server_id, self._host, self.stale_after_s)

    async def list_servers(self, include_finished: bool = False) -> list[ServerRecord]:
        """Serving and recently gone servers, newest first (stopped ones too with `include_finished`)."""
        return await servers.list_servers(self._reader, self._host, self.stale_after_s, include_finished)

    # -- events -------------------------------------------------------------------------------

    def writer(self, run_id: str, **options: Any) -> EventWriter:
        """A batched EventWriter for one run; use `async with store.writer(run_id) as w:`.

        The store keeps it until it closes, so `close()` flushes every writer still open.
        """
        writer = EventWriter(self, validate_run_id(run_id), on_close=self._writers.discard, **options)
        self._writers.add(writer)
        return writer

    async def append_events(self, run_id: str, events: Sequence[Event | tuple[Event, int | None]]) -> int:
        """Append events in one transaction (no batching) and return the last committed seq."""
        validate_run_id(run_id)
        items = [pending(*e) if isinstance(e, tuple) else pending(e) for e in events]
        async with self.transaction() as conn:
            return await append_batch(conn, run_id, items, heartbeat_at=time.time())

    async def events_since(self, run_id: str, seq: int = 0, limit: int = 1000) -> list[EventRecord]:
        """Up to `limit` events with seq > `seq`, in order; poll with the last seq you saw."""
        return await reads.events_since(self._reader, validate_run_id(run_id), seq, limit)

    async def raw_events_since(self, run_id: str, seq: int = 0, limit: int = 1000) -> list[reads.RawEvent]:
        """As `events_since`, with payloads left as stored JSON (cheap, for export)."""
        return await reads.raw_events_since(self._reader, validate_run_id(run_id), seq, limit)

    async def last_seq(self, run_id: str) -> int:
        """The last committed seq of a run (0 if none)."""
        return await reads.last_seq(self._reader, validate_run_id(run_id))

    async def latest_metrics(self, run_id: str) -> dict[str, float]:
        """Last value of each metric of a run."""
        return await reads.latest_metrics(self._reader, validate_run_id(run_id))

    async def progress(self, recent_steps: int = 0) -> dict[str, reads.RunProgress]:
        """Each run's latest step and latest primary-metric value (runs without metrics are absent),
        and the last `recent_steps` training-step times of each running run."""
        return await reads.progress(self._reader, recent_steps)

    async def metric_keys(self, run_id: str) -> list[str]:
        """The metric names a run has recorded."""
        return await reads.metric_keys(self._reader, validate_run_id(run_id))

    async def series(self, run_id: str, key: str, max_points: int = 500) -> list[SeriesPoint]:
        """One metric downsampled to at most `max_points` points, in seq order."""
        return await reads.series(self._reader, validate_run_id(run_id), key, max_points)
