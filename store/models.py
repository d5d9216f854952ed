"""Read models returned by the store: one pydantic model per table row the API hands out.

Times are UNIX epoch seconds (float, UTC); floats may be NaN or ±Inf and serialise as strings.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from pydantic import BaseModel, ConfigDict

from store.events import Goal, RunKind, RunStatus, from_sql_float, json_safe

_READ_CONFIG = ConfigDict(frozen=True, ser_json_inf_nan="strings")

TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})  # the run's process has ended it
# Runs whose best adapter may be promoted: finished, or paused by a cancel (it keeps its checkpoint).
PROMOTABLE_STATUSES = frozenset({"completed", "cancelled"})
# Allowed lifecycle moves. `interrupted` (the owner died) and `cancelled` (paused by the user, with a
# checkpoint at the step it stopped) are resumable (back to running); `interrupted` may also be closed out.
TRANSITIONS: dict[str, frozenset[str]] = {
    "queued": frozenset({"running", "cancelled", "failed"}),
    "running": frozenset({"running", "completed", "failed", "cancelled", "interrupted"}),
    "interrupted": frozenset({"running", "completed", "failed", "cancelled"}),
    "completed": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset({"running"}),
}


class RunRecord(BaseModel):
    """One row of `runs`: what was trained, how it went and whether it is the active one."""

    model_config = _READ_CONFIG

    id: str
    kind: RunKind
    name: str
    status: RunStatus
    backend: str | None
    base_model: str | None
    config: dict[str, Any]
    dataset_fingerprint: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    heartbeat_at: float | None
    primary_metric: str | None
    goal: Goal
    baseline: float | None
    best: float | None
    promoted: bool
    error: str | None
    owner_pid: int | None
    owner_host: str | None
    alarm: str | None = None
    first_stage: float | None = None
    serving: float | None = None
    serving_run_id: str | None = None
    serving_note: str | None = None
    world_size: int | None = None  # data-parallel processes of the latest start (None: made before it was kept)


class ArtifactRecord(BaseModel):
    """A file a run produced, addressed relative to `runs_root/<run_id>/`."""

    model_config = _READ_CONFIG

    run_id: str
    kind: str
    path: str
    sha256: str
    bytes: int
    created_at: float


class PromotionRecord(BaseModel):
    """One step of the lineage: `run_id` became active at `promoted_at`, replacing `replaced_run_id`.

    `run_id` is None when a rollback made the plain base model active again.
    """

    model_config = _READ_CONFIG

    id: int
    kind: RunKind
    run_id: str | None
    replaced_run_id: str | None
    reason: str
    promoted_at: float


class SeriesPoint(BaseModel):
    """One downsampled chart point: the real sample at the end of its bucket plus the bucket's mean.

    `value` is an actual recorded value (NaN/Inf preserved); `mean` averages the finite values in
    the bucket (None when it has none); `count` is how many samples the bucket covers.
    """

    model_config = _READ_CONFIG

    seq: int
    step: int | None
    value: float
    mean: float | None
    count: int


def run_record_from_row(row: sqlite3.Row) -> RunRecord:
    """A RunRecord from a `runs` row (config parsed, NaN-as-text floats decoded)."""
    data = dict(row)
    data["config"] = json.loads(data["config"])
    data["promoted"] = bool(data["promoted"])
    for key in ("baseline", "best", "first_stage", "serving"):
        data[key] = from_sql_float(data[key])
    return RunRecord.model_validate(data)


def encode_config(config: dict[str, Any] | None) -> str:
    """Strict JSON for `runs.config` (non-finite floats as strings, keys sorted)."""
    try:
        return json.dumps(json_safe(config or {}), allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"run config is not JSON-serialisable: {exc}") from None
