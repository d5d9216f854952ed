"""Superseding the steps a resumed run will redo, so each step appears once in the store.

A run killed after step N's events were committed but before the checkpoint of step N resumes from
an older checkpoint and emits those steps again; charts would draw two points per step. The events
of steps after the checkpoint are step-derived (metrics, telemetry, evals, checkpoints, alarms), so
they are deleted with their metric points before the run redoes them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from store.append import run_pk

if TYPE_CHECKING:
    from store.writer import EventWriter

STEP_TYPES = ("metrics", "telemetry", "eval", "checkpoint", "alarm")


async def drop_steps_after(writer: EventWriter, step: int) -> int:
    """Delete the run's step events with step > `step` (after flushing); returns how many went."""
    await writer.flush()
    marks = ", ".join("?" for _ in STEP_TYPES)
    async with writer.store.transaction() as conn:
        pk = await run_pk(conn, writer.run_id)
        cursor = await conn.execute(
            f"DELETE FROM events WHERE run_pk = ? AND step > ? AND type IN ({marks})", (pk, step, *STEP_TYPES))
        dropped = cursor.rowcount
        if dropped:
            await conn.execute("DELETE FROM metric_points WHERE run_pk = ? AND step > ?", (pk, step))
            await conn.execute("DELETE FROM metric_latest WHERE run_pk = ?", (pk,))
            await conn.execute(
                """INSERT INTO metric_latest (run_pk, key, seq, step, value, csum, ccount)
                   SELECT run_pk, key, MAX(seq), step, value, csum, ccount FROM metric_points
                   WHERE run_pk = ? GROUP BY run_pk, key""", (pk,))
    return max(dropped, 0)
