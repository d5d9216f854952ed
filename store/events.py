"""Typed run events and the float codec that keeps NaN and ±Inf representable.

Trainers emit these models; the store validates them once on emit, keeps the JSON payload in
`events.payload` and the numeric metrics in `metric_points` for charts. Non-finite floats are written
as the JSON strings "NaN", "Infinity", "-Infinity" (standard JSON that SQLite's json functions and
any JSONL consumer can parse) and read back as floats.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, TypeGuard, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

RunKind = Literal["reranker", "agent"]
RunStatus = Literal["queued", "running", "completed", "failed", "cancelled", "interrupted"]
Goal = Literal["maximize", "minimize"]
EventType = Literal["metrics", "eval", "telemetry", "log", "state", "checkpoint", "alarm", "promotion", "dataset"]
AlarmKind = Literal["score_collapse", "below_baseline", "loss_divergence"]

RUN_KINDS: tuple[str, ...] = get_args(RunKind)
RUN_STATUSES: tuple[str, ...] = get_args(RunStatus)
GOALS: tuple[str, ...] = get_args(Goal)
EVENT_TYPES: tuple[str, ...] = get_args(EventType)
EVAL_PREFIX = "eval/"


def is_run_kind(value: str) -> TypeGuard[RunKind]:
    """Whether `value` is a run kind (narrows a plain str for the type checker)."""
    return value in RUN_KINDS


def is_run_status(value: str) -> TypeGuard[RunStatus]:
    """Whether `value` is a run status (narrows a plain str for the type checker)."""
    return value in RUN_STATUSES


class _EventBase(BaseModel):
    """Frozen, strict-keyed, with non-finite floats serialised as strings instead of null."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="strings")


class MetricsEvent(_EventBase):
    """Training scalars at one step (loss, lr, grad norm...); every value becomes a chartable point."""

    type: Literal["metrics"] = "metrics"
    values: dict[str, float]


class EvalEvent(_EventBase):
    """An evaluation on held-out data; its metrics are charted under `eval/<name>`.

    `split` says which system was measured on the dev candidates: "first_stage" (the retriever's
    own order), "baseline" (the base model), "dev" (the adapter being trained) or "serving" (the
    adapter active when the run ended, `adapter_run_id`). `timing` holds rerank latency per query
    (p50/p95 ms) and pairs/s; it is kept apart from `metrics` because it is not a ranking quality.
    """

    type: Literal["eval"] = "eval"
    metrics: dict[str, float]
    split: str = "val"
    is_best: bool = False
    timing: dict[str, float] = Field(default_factory=dict)
    adapter_run_id: str | None = None


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


class AlarmEvent(_EventBase):
    """Training looks wrong: every dev score alike (collapse), the dev metric under the baseline for
    several evaluations, or the loss diverging. `value` is what was measured, `threshold` the limit."""

    type: Literal["alarm"] = "alarm"
    kind: AlarmKind
    message: str
    value: float
    threshold: float


class DatasetEvent(_EventBase):
    """What a run trains and evaluates on, as the loader reported it: the screens read this, never
    the log text. `counts` holds the loader's numbers by name (queries, positives, negatives,
    conversations, dropped rows...), `train`/`dev` the split sizes in queries or conversations."""

    type: Literal["dataset"] = "dataset"
    source: str
    format: str
    fingerprint: str
    summary: str
    counts: dict[str, int] = Field(default_factory=dict)
    train: int = 0
    dev: int = 0
    dev_candidates: str = ""


class PromotionEvent(_EventBase):
    """A promotion verdict on this run: every figure compared, the one it had to beat, the reasons.

    `figures` maps a system ("tuned", "base", "first stage (bm25)", "serving run <id>") to its
    primary metric on the run's dev candidates; `reference` names the figure the gate compared with.
    """

    type: Literal["promotion"] = "promotion"
    promoted: bool
    forced: bool = False
    metric: str | None = None
    figures: dict[str, float] = Field(default_factory=dict)
    reference: str | None = None
    reasons: list[str] = Field(default_factory=list)


Event = Annotated[
    MetricsEvent | EvalEvent | TelemetryEvent | LogEvent | StateEvent | CheckpointEvent | AlarmEvent | DatasetEvent
    | PromotionEvent,
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


REFERENCE_SPLITS = ("first_stage", "serving")


def metric_items(event: Event) -> dict[str, float]:
    """The chartable scalars an event carries: metrics as named, eval metrics under `eval/`.

    The reference systems (first stage, serving adapter) are charted under their own prefix
    (`first_stage/mrr@10`), so they never join the trained adapter's `eval/` curve.
    """
    if isinstance(event, MetricsEvent):
        return event.values
    if isinstance(event, EvalEvent):
        prefix = f"{event.split}/" if event.split in REFERENCE_SPLITS else EVAL_PREFIX
        return {f"{prefix}{name}": value for name, value in event.metrics.items()}
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
