"""Read queries for tailing and charting a run; each is one short statement on the reader connection.

Readers never hold a transaction open between calls (autocommit, every cursor fully read), so a
live writer in another process is never blocked and the WAL can be checkpointed.
"""

from __future__ import annotations

import sqlite3
from typing import NamedTuple

import aiosqlite

from store.db import fetch_all, fetch_one
from store.errors import RunNotFoundError
from store.events import EventRecord, decode_payload
from store.models import SeriesPoint

_PK = "(SELECT pk FROM runs WHERE id = :run)"


class RawEvent(NamedTuple):
    """An event row with its payload left as the stored JSON text (for export)."""

    seq: int
    ts: float
    step: int | None
    type: str
    payload: str


async def ensure_run(conn: aiosqlite.Connection, run_id: str) -> None:
    """Raise RunNotFoundError unless the run exists (used when a query comes back empty)."""
    if await fetch_one(conn, "SELECT 1 FROM runs WHERE id = ?", (run_id,)) is None:
        raise RunNotFoundError(f"no run {run_id} in the store")


async def raw_events_since(conn: aiosqlite.Connection, run_id: str, seq: int, limit: int) -> list[RawEvent]:
    """Up to `limit` events with seq > `seq`, in seq order, payloads as stored."""
    rows = await fetch_all(
        conn,
        f"""SELECT seq, ts, step, type, payload FROM events
            WHERE run_pk = {_PK} AND seq > :seq ORDER BY seq LIMIT :limit""",
        {"run": run_id, "seq": int(seq), "limit": int(limit)},
    )
    if not rows:
        await ensure_run(conn, run_id)
    return [RawEvent(int(r[0]), float(r[1]), r[2], r[3], r[4]) for r in rows]


async def events_since(conn: aiosqlite.Connection, run_id: str, seq: int, limit: int) -> list[EventRecord]:
    """Up to `limit` typed events with seq > `seq`, in seq order: what a tailer polls for."""
    return [
        EventRecord(run_id=run_id, seq=r.seq, ts=r.ts, step=r.step, event=decode_payload(r.payload))
        for r in await raw_events_since(conn, run_id, seq, limit)
    ]


async def last_seq(conn: aiosqlite.Connection, run_id: str) -> int:
    """The highest committed seq of a run (0 when it has no events)."""
    row = await fetch_one(conn, f"SELECT {_PK}, (SELECT MAX(seq) FROM events WHERE run_pk = {_PK})", {"run": run_id})
    if row is None or row[0] is None:
        raise RunNotFoundError(f"no run {run_id} in the store")
    return int(row[1] or 0)


async def latest_metrics(conn: aiosqlite.Connection, run_id: str) -> dict[str, float]:
    """The last recorded value of every metric of a run (eval metrics under `eval/`)."""
    rows = await fetch_all(
        conn, f"SELECT key, value FROM metric_latest WHERE run_pk = {_PK} ORDER BY key", {"run": run_id}
    )
    if not rows:
        await ensure_run(conn, run_id)
    # Metric values are never NULL (metric events hold numbers); NaN is stored as the text 'NaN'.
    return {r[0]: float(r[1]) for r in rows}


def _points(rows: list[sqlite3.Row], base: tuple[float, int]) -> list[SeriesPoint]:
    """Turn picked rows into points; each bucket's mean comes from differences of running sums."""
    out: list[SeriesPoint] = []
    prev_sum, prev_count = base
    for seq, step, value, csum, ccount in rows:
        count = int(ccount) - prev_count
        mean = (float(csum) - prev_sum) / count if count > 0 else None
        # Metric values are never NULL (metric events hold numbers); NaN is stored as the text 'NaN'.
        out.append(SeriesPoint(seq=int(seq), step=step, value=float(value), mean=mean, count=count))
        prev_sum, prev_count = float(csum), int(ccount)
    return out


async def series(conn: aiosqlite.Connection, run_id: str, key: str, max_points: int) -> list[SeriesPoint]:
    """At most `max_points` points of one metric, downsampled in SQL.

    The seq range is split at `max_points` evenly spaced boundaries; for each one the primary key
    (run_pk, key, seq) finds the first point at or after it (the end of that bucket), so the cost
    is ~2 index seeks per bucket whatever the number of points. Bucket means come from the
    running sums stored with each point.
    """
    if max_points < 1:
        raise ValueError("max_points must be at least 1")
    row = await fetch_one(conn, "SELECT pk FROM runs WHERE id = ?", (run_id,))
    if row is None:
        raise RunNotFoundError(f"no run {run_id} in the store")
    # The run's integer key is bound, not sub-selected: SQLite would re-run the lookup per bucket.
    params = {"pk": int(row[0]), "key": key, "n": int(max_points)}
    where = "run_pk = :pk AND key = :key"
    bounds = await fetch_one(
        conn,
        f"""SELECT (SELECT MIN(seq) FROM metric_points WHERE {where}),
                   (SELECT MAX(seq) FROM metric_points WHERE {where}),
                   (SELECT COUNT(*) FROM (SELECT 1 FROM metric_points WHERE {where} LIMIT :n + 1))""",
        params,
    )
    if bounds is None or bounds[0] is None:
        return []
    columns = "p.seq, p.step, p.value, p.csum, p.ccount"
    if int(bounds[2]) <= max_points:
        rows = await fetch_all(conn, f"SELECT {columns} FROM metric_points p WHERE {where} ORDER BY seq", params)
        return _points(list(rows), (0.0, 0))
    # Boundaries lo + (hi - lo) * i / (n - 1), i = 0..n-1: the first and the last point are always kept.
    # CROSS JOIN pins the join order (picks outer): otherwise SQLite may scan every point of the key.
    lo, hi = int(bounds[0]), int(bounds[1])
    params.update(lo=hi if max_points == 1 else lo, hi=hi, last=max(max_points - 1, 1))
    rows = await fetch_all(
        conn,
        f"""WITH RECURSIVE b(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM b WHERE i + 1 < :n),
            picks AS (SELECT DISTINCT (SELECT seq FROM metric_points WHERE {where}
                                       AND seq >= :lo + ((:hi - :lo) * i) / :last ORDER BY seq LIMIT 1) AS seq FROM b)
            SELECT {columns} FROM picks CROSS JOIN metric_points p
              ON p.run_pk = :pk AND p.key = :key AND p.seq = picks.seq
            ORDER BY p.seq""",
        params,
    )
    return _points(list(rows), (0.0, 0))


class RunProgress(NamedTuple):
    """How far a run got: its latest step, the latest value of its primary metric (`eval/<primary>`),
    and for a running run the (step, seconds) of its most recent training steps (for a steady ETA)."""

    step: int | None
    latest: float | None
    step_times: tuple[tuple[int, float], ...] = ()


STEP_TIME_KEY = "train/step_time_s"  # seconds of each training step, evaluation excluded


async def progress(conn: aiosqlite.Connection, recent_steps: int = 0) -> dict[str, RunProgress]:
    """Every run's progress in one statement over `metric_latest` (one row per run and metric), plus
    the last `recent_steps` step times of each running run (through the points' primary key)."""
    rows = await fetch_all(
        conn,
        """SELECT r.id, MAX(m.step), MAX(CASE WHEN m.key = 'eval/' || r.primary_metric THEN m.value END),
                  r.pk, r.status
             FROM runs r JOIN metric_latest m ON m.run_pk = r.pk GROUP BY r.pk""",
    )
    out = {}
    for run_id, step, latest, pk, status in rows:
        times: tuple[tuple[int, float], ...] = ()
        if recent_steps > 0 and status == "running":
            points = await fetch_all(
                conn, """SELECT step, value FROM metric_points WHERE run_pk = ? AND key = ? AND step IS NOT NULL
                         ORDER BY seq DESC LIMIT ?""", (int(pk), STEP_TIME_KEY, int(recent_steps)))
            by_step = {int(s): float(v) for s, v in reversed(points) if v is not None}  # a resumed step: its latest
            times = tuple(sorted(by_step.items()))
        out[run_id] = RunProgress(None if step is None else int(step), None if latest is None else float(latest), times)
    return out


async def metric_keys(conn: aiosqlite.Connection, run_id: str) -> list[str]:
    """Names of the metrics a run has recorded, for chart pickers."""
    rows = await fetch_all(conn, f"SELECT key FROM metric_latest WHERE run_pk = {_PK} ORDER BY key", {"run": run_id})
    return [r[0] for r in rows]
