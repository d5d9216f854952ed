"""The promotion lineage's writes: which run of a kind is active, and every step that made it so.

Each function runs inside the caller's write transaction (`RunStore.transaction()`), so the runs'
`promoted` flags and the `promotions` table always change together.
"""

from __future__ import annotations

import time

import aiosqlite

from store.db import fetch_one
from store.errors import InvalidTransitionError, RunNotFoundError
from store.events import RUN_KINDS, is_run_kind
from store.ids import validate_run_id
from store.models import PROMOTABLE_STATUSES, PromotionRecord

_INSERT = "INSERT INTO promotions (kind, run_id, replaced_run_id, reason, promoted_at) VALUES (?, ?, ?, ?, ?)"


async def record_promotion(conn: aiosqlite.Connection, run_id: str, replaced_run_id: str | None,
                           reason: str) -> PromotionRecord:
    """Make a completed (or cancelled: paused) run the active one of its kind and append the step to the lineage."""
    validate_run_id(run_id)
    if replaced_run_id is not None:
        validate_run_id(replaced_run_id)
    row = await fetch_one(conn, "SELECT pk, kind, status FROM runs WHERE id = ?", (run_id,))
    if row is None:
        raise RunNotFoundError(f"no run {run_id} in the store")
    if row["status"] not in PROMOTABLE_STATUSES:
        raise InvalidTransitionError(
            f"run {run_id} is {row['status']}; only completed or cancelled (paused) runs can be promoted")
    now = time.time()
    await conn.execute("UPDATE runs SET promoted = (pk = ?) WHERE kind = ?", (row["pk"], row["kind"]))
    cursor = await conn.execute(_INSERT, (row["kind"], run_id, replaced_run_id, reason, now))
    return PromotionRecord(id=int(cursor.lastrowid or 0), kind=row["kind"], run_id=run_id,
                           replaced_run_id=replaced_run_id, reason=reason, promoted_at=now)


async def clear_promotion(conn: aiosqlite.Connection, kind: str, replaced_run_id: str | None,
                          reason: str) -> PromotionRecord:
    """Make the plain base model active for `kind` (no run promoted) and record it in the lineage."""
    if not is_run_kind(kind):
        raise ValueError(f"run kind must be one of {RUN_KINDS}, not {kind!r}")
    if replaced_run_id is not None:
        validate_run_id(replaced_run_id)
    now = time.time()
    await conn.execute("UPDATE runs SET promoted = 0 WHERE kind = ?", (kind,))
    cursor = await conn.execute(_INSERT, (kind, None, replaced_run_id, reason, now))
    return PromotionRecord(id=int(cursor.lastrowid or 0), kind=kind, run_id=None, replaced_run_id=replaced_run_id,
                           reason=reason, promoted_at=now)
