"""The SQL of one event batch: seqs assigned, events, metric points and heartbeat in one transaction.

Sequence numbers are assigned inside the write transaction from `MAX(seq)`, so they stay gapless and
per-run monotonic even if two processes append to the same run; the batch either lands whole or
not at all.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Sequence
from typing import NamedTuple

import aiosqlite

from store.db import fetch_all, fetch_one
from store.errors import RunNotFoundError
from store.events import Event, encode_payload, metric_items, to_sql_float
from store.lease import check_owner


class PendingEvent(NamedTuple):
    """An event waiting to be written; the payload is encoded when emitted, in the emitting thread."""

    event: Event
    step: int | None
    ts: float
    payload: str


def pending(event: Event, step: int | None = None, ts: float | None = None) -> PendingEvent:
    """Validate the step and encode the payload now, so bad input fails at the emit call site."""
    if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
        raise TypeError(f"step must be an int or None, not {type(step).__name__}")
    return PendingEvent(event, step, time.time() if ts is None else float(ts), encode_payload(event))


async def run_pk(conn: aiosqlite.Connection, run_id: str) -> int:
    """The integer key of a run (its events reference it), or RunNotFoundError."""
    row = await fetch_one(conn, "SELECT pk FROM runs WHERE id = ?", (run_id,))
    if row is None:
        raise RunNotFoundError(f"no run {run_id} in the store")
    return int(row[0])


# Bound variables per statement: SQLite's default limit is 32766 since 3.32, 999 before.
MAX_VARIABLES = 32766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999


async def insert_rows(conn: aiosqlite.Connection, head: str, width: int, rows: Sequence[tuple[object, ...]]) -> None:
    """INSERT rows as one multi-row VALUES statement (per variable limit) instead of `executemany`.

    `executemany` steps once per row, and every step releases and re-takes the GIL, so a busy
    training thread makes each row wait; one statement per batch takes the GIL a handful of times.
    """
    per_statement = max(1, MAX_VARIABLES // width)
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        placeholders = ",".join(["(" + ",".join("?" * width) + ")"] * len(chunk))
        await conn.execute(f"{head} VALUES {placeholders}", [value for row in chunk for value in row])


async def append_batch(
    conn: aiosqlite.Connection, run_id: str, items: Sequence[PendingEvent], heartbeat_at: float | None = None,
    owner_token: str | None = None,
) -> int:
    """`insert_events` for a run named by id, finding its key and last seq in one query.

    With `owner_token` (the EventWriter of a training process), the write is refused when another
    process owns the running run now (`store.lease.check_owner`).
    """
    row = await fetch_one(
        conn,
        "SELECT pk, (SELECT COALESCE(MAX(seq), 0) FROM events WHERE run_pk = runs.pk) FROM runs WHERE id = ?",
        (run_id,),
    )
    if row is None:
        raise RunNotFoundError(f"no run {run_id} in the store")
    if owner_token is not None:
        await check_owner(conn, int(row[0]), run_id, owner_token)
    return await insert_events(conn, int(row[0]), items, heartbeat_at, last_seq=int(row[1]))


async def insert_events(
    conn: aiosqlite.Connection,
    pk: int,
    items: Sequence[PendingEvent],
    heartbeat_at: float | None = None,
    last_seq: int | None = None,
) -> int:
    """Append items to run `pk` inside the caller's transaction; return the last seq written.

    Metric values also go to `metric_points` with running sums (finite values only) continued from
    `metric_latest`, which keeps the last point per key for `latest_metrics()` and the next batch.
    `last_seq` must have been read inside the same transaction when given.
    """
    if last_seq is None:
        row = await fetch_one(conn, "SELECT COALESCE(MAX(seq), 0) FROM events WHERE run_pk = ?", (pk,))
        last_seq = int(row[0]) if row else 0
    last = last_seq
    event_rows = []
    points: list[tuple[object, ...]] = []
    latest: dict[str, tuple[object, ...]] = {}
    sums: dict[str, tuple[float, int]] | None = None
    for offset, item in enumerate(items, start=1):
        seq = last + offset
        event_rows.append((pk, seq, item.ts, item.step, item.event.type, item.payload))
        values = metric_items(item.event)
        if not values:
            continue
        if sums is None:
            rows = await fetch_all(conn, "SELECT key, csum, ccount FROM metric_latest WHERE run_pk = ?", (pk,))
            sums = {r[0]: (float(r[1]), int(r[2])) for r in rows}
        for key, value in values.items():
            csum, ccount = sums.get(key, (0.0, 0))
            if math.isfinite(value):
                csum, ccount = csum + value, ccount + 1
            sums[key] = (csum, ccount)
            point = (pk, key, seq, item.step, to_sql_float(value), csum, ccount)
            points.append(point)
            latest[key] = point
    await insert_rows(conn, "INSERT INTO events (run_pk, seq, ts, step, type, payload)", 6, event_rows)
    if points:
        await insert_rows(conn, "INSERT INTO metric_points (run_pk, key, seq, step, value, csum, ccount)", 7, points)
        await conn.executemany(
            """INSERT INTO metric_latest (run_pk, key, seq, step, value, csum, ccount) VALUES (?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (run_pk, key) DO UPDATE SET seq = excluded.seq, step = excluded.step,
                   value = excluded.value, csum = excluded.csum, ccount = excluded.ccount""",
            list(latest.values()),
        )
    if heartbeat_at is not None:
        await conn.execute("UPDATE runs SET heartbeat_at = ? WHERE pk = ? AND status = 'running'", (heartbeat_at, pk))
    return last + len(items)
