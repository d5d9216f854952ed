"""Named, ordered schema migrations, recorded in `store_migrations` and applied exactly once.

Each migration is a name and a tuple of statements run inside one `BEGIN IMMEDIATE` transaction
together with the bookkeeping row, so a crash leaves the schema either before or after it. Two
processes opening a fresh file at the same moment serialise on the write lock; the second re-reads
the applied list inside the lock and finds nothing left to do. A database that records a migration
this code does not know was written by a newer version and is refused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from store.db import fetch_all, immediate
from store.errors import NotAStoreError, SchemaTooNewError, StoreError

_STAMP_GLOB = "[0-9]" * 8 + "-" + "[0-9]" * 6 + "-" + "[0-9a-f]" * 8
_RUN_ID_GLOB = "r" + _STAMP_GLOB
_NUMERIC = "j.type IN ('real', 'integer')"
_POINT_KEY = "CASE e.type WHEN 'eval' THEN 'eval/' || j.key ELSE j.key END"


@dataclass(frozen=True)
class Migration:
    """One schema step; `name` is recorded, so it must never change once released."""

    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "0001_initial",
        (
            f"""CREATE TABLE runs (
                pk INTEGER PRIMARY KEY,
                id TEXT NOT NULL UNIQUE CHECK (id GLOB '{_RUN_ID_GLOB}'),
                kind TEXT NOT NULL CHECK (kind IN ('reranker', 'agent')),
                name TEXT NOT NULL,
                status TEXT NOT NULL DEFAULT 'queued' CHECK (status IN
                    ('queued', 'running', 'completed', 'failed', 'cancelled', 'interrupted')),
                backend TEXT,
                base_model TEXT,
                config TEXT NOT NULL DEFAULT '{{}}' CHECK (json_valid(config)),
                dataset_fingerprint TEXT,
                created_at REAL NOT NULL,
                started_at REAL,
                finished_at REAL,
                heartbeat_at REAL,
                primary_metric TEXT,
                goal TEXT NOT NULL DEFAULT 'maximize' CHECK (goal IN ('maximize', 'minimize')),
                baseline REAL,
                best REAL,
                promoted INTEGER NOT NULL DEFAULT 0 CHECK (promoted IN (0, 1)),
                error TEXT
            )""",
            "CREATE INDEX runs_status ON runs (status)",
            # Keyed by (run, seq): tailing a run is a range scan of the primary key.
            """CREATE TABLE events (
                run_pk INTEGER NOT NULL REFERENCES runs (pk) ON DELETE CASCADE,
                seq INTEGER NOT NULL CHECK (seq > 0),
                ts REAL NOT NULL,
                step INTEGER,
                type TEXT NOT NULL CHECK (type IN ('metrics', 'eval', 'telemetry', 'log', 'state', 'checkpoint')),
                payload TEXT NOT NULL CHECK (json_valid(payload)),
                PRIMARY KEY (run_pk, seq)
            ) WITHOUT ROWID""",
            """CREATE TABLE artifacts (
                run_pk INTEGER NOT NULL REFERENCES runs (pk) ON DELETE CASCADE,
                kind TEXT NOT NULL,
                path TEXT NOT NULL,
                sha256 TEXT NOT NULL CHECK (length(sha256) = 64),
                bytes INTEGER NOT NULL CHECK (bytes >= 0),
                created_at REAL NOT NULL,
                PRIMARY KEY (run_pk, path)
            )""",
            # Run ids are kept as text, without a foreign key: lineage outlives deleted runs.
            """CREATE TABLE promotions (
                id INTEGER PRIMARY KEY,
                kind TEXT NOT NULL CHECK (kind IN ('reranker', 'agent')),
                run_id TEXT NOT NULL,
                replaced_run_id TEXT,
                reason TEXT NOT NULL,
                promoted_at REAL NOT NULL
            )""",
            "CREATE INDEX promotions_kind ON promotions (kind, id)",
        ),
    ),
    Migration(
        "0002_metric_points",
        (
            # One row per (run, metric, event). csum/ccount are running sums of the finite values so
            # a bucket mean is (csum_end - csum_start) / (ccount_end - ccount_start): `series()` reads
            # ~2 rows per bucket through the primary key instead of scanning every point.
            """CREATE TABLE metric_points (
                run_pk INTEGER NOT NULL REFERENCES runs (pk) ON DELETE CASCADE,
                key TEXT NOT NULL,
                seq INTEGER NOT NULL,
                step INTEGER,
                value REAL,
                csum REAL NOT NULL,
                ccount INTEGER NOT NULL,
                PRIMARY KEY (run_pk, key, seq)
            ) WITHOUT ROWID""",
            """CREATE TABLE metric_latest (
                run_pk INTEGER NOT NULL REFERENCES runs (pk) ON DELETE CASCADE,
                key TEXT NOT NULL,
                seq INTEGER NOT NULL,
                step INTEGER,
                value REAL,
                csum REAL NOT NULL,
                ccount INTEGER NOT NULL,
                PRIMARY KEY (run_pk, key)
            ) WITHOUT ROWID""",
            # Backfill from the events older versions wrote (non-finite values are JSON strings).
            f"""INSERT INTO metric_points (run_pk, key, seq, step, value, csum, ccount)
                SELECT e.run_pk, {_POINT_KEY}, e.seq, e.step,
                    CASE WHEN {_NUMERIC} THEN j.value WHEN j.atom = 'Infinity' THEN 9e999
                         WHEN j.atom = '-Infinity' THEN -9e999 ELSE 'NaN' END,
                    SUM(CASE WHEN {_NUMERIC} THEN j.value ELSE 0.0 END) OVER w,
                    SUM(CASE WHEN {_NUMERIC} THEN 1 ELSE 0 END) OVER w
                FROM events e, json_each(e.payload, CASE e.type WHEN 'eval' THEN '$.metrics' ELSE '$.values' END) j
                WHERE e.type IN ('metrics', 'eval')
                WINDOW w AS (PARTITION BY e.run_pk, {_POINT_KEY} ORDER BY e.seq)""",
            # Bare columns with MAX() come from the row holding the maximum (documented SQLite behaviour).
            """INSERT INTO metric_latest (run_pk, key, seq, step, value, csum, ccount)
                SELECT run_pk, key, MAX(seq), step, value, csum, ccount FROM metric_points GROUP BY run_pk, key""",
        ),
    ),
    Migration(
        "0003_run_owner",
        (
            # Which process runs it: a dead owner on this host means interrupted without waiting
            # for the heartbeat to go stale.
            "ALTER TABLE runs ADD COLUMN owner_pid INTEGER",
            "ALTER TABLE runs ADD COLUMN owner_host TEXT",
        ),
    ),
    Migration(
        "0004_promotion_to_base",
        (
            # A rollback past the first promotion makes the plain base model active again: the
            # lineage row for that has no run, so run_id becomes nullable (SQLite needs a rebuild).
            """CREATE TABLE promotions_new (
                id INTEGER PRIMARY KEY,
                kind TEXT NOT NULL CHECK (kind IN ('reranker', 'agent')),
                run_id TEXT,
                replaced_run_id TEXT,
                reason TEXT NOT NULL,
                promoted_at REAL NOT NULL
            )""",
            "INSERT INTO promotions_new (id, kind, run_id, replaced_run_id, reason, promoted_at) "
            "SELECT id, kind, run_id, replaced_run_id, reason, promoted_at FROM promotions",
            "DROP TABLE promotions",
            "ALTER TABLE promotions_new RENAME TO promotions",
            "CREATE INDEX promotions_kind ON promotions (kind, id)",
        ),
    ),
    Migration(
        "0005_alarm_and_verdict_events",
        (
            # New typed events (training alarms, promotion verdicts, dataset summaries) widen the
            # type CHECK; SQLite cannot alter a CHECK, so the events table is rebuilt in place.
            """CREATE TABLE events_new (
                run_pk INTEGER NOT NULL REFERENCES runs (pk) ON DELETE CASCADE,
                seq INTEGER NOT NULL CHECK (seq > 0),
                ts REAL NOT NULL,
                step INTEGER,
                type TEXT NOT NULL CHECK (type IN ('metrics', 'eval', 'telemetry', 'log', 'state', 'checkpoint',
                                                   'alarm', 'promotion', 'dataset')),
                payload TEXT NOT NULL CHECK (json_valid(payload)),
                PRIMARY KEY (run_pk, seq)
            ) WITHOUT ROWID""",
            "INSERT INTO events_new (run_pk, seq, ts, step, type, payload) "
            "SELECT run_pk, seq, ts, step, type, payload FROM events",
            "DROP TABLE events",
            "ALTER TABLE events_new RENAME TO events",
            # The latest alarm of a run, so the runs list can mark it without reading its events.
            "ALTER TABLE runs ADD COLUMN alarm TEXT",
            # What the promotion gate compares a run with besides its baseline: the first stage's
            # primary metric and the serving adapter's, both measured on the run's dev candidates.
            "ALTER TABLE runs ADD COLUMN first_stage REAL",
            "ALTER TABLE runs ADD COLUMN serving REAL",
            "ALTER TABLE runs ADD COLUMN serving_run_id TEXT",
            "ALTER TABLE runs ADD COLUMN serving_note TEXT",
        ),
    ),
    Migration(
        "0006_run_lease",
        (
            # The owner's lease: a per-process token (running -> running only for the same token)
            # and the owner process's start time, so a recycled pid is not taken for the owner.
            "ALTER TABLE runs ADD COLUMN owner_token TEXT",
            "ALTER TABLE runs ADD COLUMN owner_started REAL",
        ),
    ),
    Migration(
        "0007_servers",
        (
            # One row per `ragweld-tui serve` process: who it is (pid, host and process start time,
            # judged like a run's owner), what it serves and its latest figures, refreshed with the
            # heartbeat. The adapter's run id is text without a foreign key: deleting a run must not
            # rewrite what a server reported serving.
            f"""CREATE TABLE servers (
                pk INTEGER PRIMARY KEY,
                id TEXT NOT NULL UNIQUE CHECK (id GLOB 'srv-{_STAMP_GLOB}'),
                pid INTEGER NOT NULL,
                host TEXT NOT NULL,
                process_started REAL,
                address TEXT NOT NULL,
                base_model TEXT,
                backend TEXT,
                adapter_run_id TEXT,
                adapter_fingerprint TEXT,
                requests INTEGER NOT NULL DEFAULT 0 CHECK (requests >= 0),
                errors INTEGER NOT NULL DEFAULT 0 CHECK (errors >= 0),
                p50_ms REAL,
                p95_ms REAL,
                started_at REAL NOT NULL,
                heartbeat_at REAL NOT NULL,
                stopped_at REAL
            )""",
        ),
    ),
    Migration(
        "0008_run_world_size",
        (
            # How many processes train the run together (data parallel); the last start's count,
            # since a resume may use another. NULL for runs made before this column: one process.
            "ALTER TABLE runs ADD COLUMN world_size INTEGER",
        ),
    ),
)

_BOOKKEEPING = """CREATE TABLE IF NOT EXISTS store_migrations (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    applied_at REAL NOT NULL
)"""


async def applied_migrations(conn: aiosqlite.Connection) -> list[str] | None:
    """Names of the applied migrations in order, or None when the bookkeeping table is missing."""
    rows = await fetch_all(conn, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    tables = {row[0] for row in rows}
    if "store_migrations" not in tables:
        if tables:
            raise NotAStoreError(
                f"this SQLite file is not a ragweld-tui store (it has tables {sorted(tables)[:5]} but no "
                "store_migrations); choose another --db"
            )
        return None
    return [row[0] for row in await fetch_all(conn, "SELECT name FROM store_migrations ORDER BY id")]


def _pending(applied: list[str], path: Path | str, migrations: tuple[Migration, ...]) -> list[Migration]:
    """The migrations still to apply, after checking the recorded ones are a prefix of ours."""
    known = [m.name for m in migrations]
    unknown = [name for name in applied if name not in known]
    if unknown or len(applied) > len(known):
        raise SchemaTooNewError(
            f"the store {path} has schema version {len(applied)} ({applied[-1]}) but this ragweld-tui "
            f"knows only up to {len(known)} ({known[-1]}); it was written by a newer ragweld-tui. "
            "Upgrade ragweld-tui, or use another --db."
        )
    if applied != known[: len(applied)]:
        raise StoreError(f"the store {path} has migrations {applied} that do not match this version's order {known}")
    return list(migrations[len(applied) :])


async def migrate(
    conn: aiosqlite.Connection, path: Path | str, migrations: tuple[Migration, ...] = MIGRATIONS
) -> list[str]:
    """Bring the schema up to date; return the names this call applied (empty when already current).

    A read outside the lock answers the common case (already current) without taking the write
    lock; otherwise the list is re-read inside `BEGIN IMMEDIATE`, which is what makes concurrent
    creation safe.
    """
    applied = await applied_migrations(conn)
    if applied is not None and not _pending(applied, path, migrations):
        return []
    done: list[str] = []
    async with immediate(conn):
        await conn.execute(_BOOKKEEPING)
        applied = await applied_migrations(conn) or []
        for migration in _pending(applied, path, migrations):
            for statement in migration.statements:
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO store_migrations (name, applied_at) VALUES (?, ?)", (migration.name, time.time())
            )
            done.append(migration.name)
        await conn.execute(f"PRAGMA user_version = {len(applied) + len(done)}")
    return done
