"""Typed run events and the float codec that keeps NaN and ±Inf representable.

Trainers emit these models; the store validates them once on emit, keeps the JSON payload in
`events.payload` and the numeric metrics in `metric_points` for charts. Non-finite floats are written
as the JSON strings "NaN", "Infinity", "-Infinity" (standard JSON that SQLite's json functions and
any JSONL consumer can parse) and read back as floats.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

RunKind = Literal["reranker", "agent"]
RunStatus = Literal["queued", "running", "completed", "failed", "cancelled", "interrupted"]
Goal = Literal["maximize", "minimize"]
EventType = Literal["metrics", "eval", "telemetry", "log", "state", "checkpoint"]

RUN_KINDS: tuple[str, ...] = RunKind.__args__  # type: ignore[attr-defined]
RUN_STATUSES: tuple[str, ...] = RunStatus.__args__  # type: ignore[attr-defined]
GOALS: tuple[str, ...] = Goal.__args__  # type: ignore[attr-defined]
EVENT_TYPES: tuple[str, ...] = EventType.__args__  # type: ignore[attr-defined]
EVAL_PREFIX = "eval/"


class _EventBase(BaseModel):
    """Frozen, strict-keyed, with non-finite floats serialised as strings instead of null."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="strings")


class MetricsEvent(_EventBase):
    """Training scalars at one step (loss, lr, grad norm...); every value becomes a chartable point."""

    type: Literal["metrics"] = "metrics"
    values: dict[str, float]


class EvalEvent(_EventBase):
    """An evaluation on held-out data; its metrics are charted under `eval/<name>`."""

    type: Literal["eval"] = "eval"
    metrics: dict[str, float]
    split: str = "val"
    is_best: bool = False


class TelemetryEvent(_EventBase):
    """One point of the gradient-descent scatter: the loss at a 2-D projection of the weights."""

    type: Literal["telemetry"] = "telemetry"
    proj_x: float
    proj_y: float
    loss: float


class LogEvent(_EventBase):
    """A human-readable line for the run log pane."""

    type: Literal["log"] = "log"
    level: Literal["debug", "info", "warning", "error"] = "info"
    message: str


class StateEvent(_EventBase):
    """A status change of the run, so tailers see lifecycle changes in the same stream as metrics."""

    type: Literal["state"] = "state"
    status: RunStatus
    reason: str | None = None


class CheckpointEvent(_EventBase):
    """A checkpoint written under the run folder (path relative to it)."""

    type: Literal["checkpoint"] = "checkpoint"
    path: str
    step: int


Event = Annotated[
    MetricsEvent | EvalEvent | TelemetryEvent | LogEvent | StateEvent | CheckpointEvent,
    Field(discriminator="type"),
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


class EventRecord(BaseModel):
    """An event as stored: its run, per-run sequence number, wall time (epoch s) and step."""

    model_config = ConfigDict(frozen=True, ser_json_inf_nan="strings")

    run_id: str
    seq: int
    ts: float
    step: int | None
    event: Event


def encode_payload(event: Event) -> str:
    """The JSON text stored in events.payload (non-finite floats as strings)."""
    return event.model_dump_json()


def decode_payload(payload: str) -> Event:
    """Parse a stored payload back into its event model."""
    return EVENT_ADAPTER.validate_json(payload)


def metric_items(event: Event) -> dict[str, float]:
    """The chartable scalars an event carries: metrics as named, eval metrics under `eval/`."""
    if isinstance(event, MetricsEvent):
        return event.values
    if isinstance(event, EvalEvent):
        return {f"{EVAL_PREFIX}{name}": value for name, value in event.metrics.items()}
    return {}


def to_sql_float(value: float | None) -> float | str | None:
    """SQLite stores ±Inf as REAL but turns NaN into NULL; NaN is stored as the text 'NaN' instead.

    A REAL-affinity column keeps 'NaN' as TEXT (it is not a numeric literal), so one column holds
    every float and NULL still means "no value".
    """
    if value is not None and math.isnan(value):
        return "NaN"
    return value


def from_sql_float(value: float | int | str | None) -> float | None:
    """Inverse of `to_sql_float`."""
    return None if value is None else float(value)


def json_safe(value: object) -> object:
    """Replace non-finite floats by "NaN"/"Infinity"/"-Infinity" so `json.dumps` emits strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
