"""Pure formatting and comparison helpers for the TUI: elapsed times, metric cells, config diffs.

Kept free of Textual so they are unit-tested fast and reused by every screen.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragweld_tui.eta import steady_eta
from store import DatasetEvent, RunRecord, ServerRecord

SORT_KEYS: tuple[str, ...] = ("created", "name", "status", "best")
# How each sort key orders the runs: (default, reversed), as the runs list's header says it.
SORT_DIRECTIONS: dict[str, tuple[str, str]] = {"created": ("newest first", "oldest first"), "name": ("A→Z", "Z→A"),
                                               "status": ("A→Z", "Z→A"), "best": ("best first", "worst first")}
KIND_FILTERS: tuple[str | None, ...] = (None, "reranker", "agent")
STATUS_FILTERS: tuple[str | None, ...] = (None, "running", "completed", "failed", "cancelled", "interrupted", "queued")
# Metrics whose name says lower is better; everything else (and an unknown primary) is maximised.
_MINIMIZE_HINTS = ("loss", "perplexity", "ppl", "error", "grad_norm", "seconds", "latency", "time")
# Settings rather than results: a change is neither better nor worse.
_NEUTRAL = ("lr", "learning_rate")


def format_elapsed(seconds: float | None) -> str:
    """Compact duration: `42s`, `3m05s`, `1h02m`, `2d03h` ('—' when unknown)."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    total = max(0, int(seconds))
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def run_elapsed(run: RunRecord, now: float) -> float | None:
    """Seconds the run has been (or was) running; live for running runs, frozen once finished."""
    if run.started_at is None:
        return None
    if run.status == "running":
        return now - run.started_at
    end = run.finished_at or run.heartbeat_at
    return None if end is None else end - run.started_at


def format_value(value: float | None, digits: int = 4) -> str:
    """A metric value in a few significant digits; NaN/Inf spelled out, None as '—'."""
    if value is None:
        return "—"
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value != 0 and (abs(value) < 10 ** -(digits - 1) or abs(value) >= 10**6):
        return f"{value:.{max(digits - 2, 1)}e}"
    return f"{value:.{digits}g}" if abs(value) >= 1000 else f"{value:.{digits}f}".rstrip("0").rstrip(".") or "0"


def status_cell(run: RunRecord, now: float) -> str:
    """Status plus elapsed time, e.g. `running 3m05s`."""
    elapsed = run_elapsed(run, now)
    return run.status if elapsed is None else f"{run.status} {format_elapsed(elapsed)}"


def metric_cell(run: RunRecord) -> str:
    """`metric baseline → best` for the runs table."""
    name = run.primary_metric or "metric"
    if run.baseline is None and run.best is None:
        return f"{name} —"
    return f"{name} {format_value(run.baseline, 3)} → {format_value(run.best, 3)}"


def backend_cell(run: RunRecord, missing: str = "—") -> str:
    """The run's backend, with its process count when it trains data parallel (`torch ×4`)."""
    backend = run.backend or missing
    return f"{backend} ×{run.world_size}" if run.world_size and run.world_size > 1 else backend


def plural(count: int, noun: str) -> str:
    """`1 turn`, `2 turns`."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def clip(text: str, width: int) -> str:
    """One line cut to `width` characters with an ellipsis."""
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def short_id(run_id: str) -> str:
    """The distinctive tail of a run id (`r20250101-120000-0000000a` → `0000000a`)."""
    return run_id[-8:]


def run_label(run: RunRecord) -> str:
    """A run's name with its short id, so runs with the same name stay apart."""
    return f"{run.name} ({short_id(run.id)})"


def run_compute(run: RunRecord) -> str:
    """How a run computed, from its recorded config: `bf16`, `fp32 + checkpointing + compiled` ("—": no config).

    Runs recorded before `[train].precision` existed trained in fp32, eager."""
    train = run.config.get("train")
    if not isinstance(train, dict):
        return "—"
    return (str(train.get("precision", "fp32")) + (" + checkpointing" if train.get("gradient_checkpointing") else "")
            + (" + compiled" if train.get("compile") is True else ""))


def short_model(name: str | None, width: int = 24) -> str:
    """A model id shortened from the left (the tail is the informative part of a path)."""
    if not name:
        return "—"
    return name if len(name) <= width else "…" + name[-(width - 1):]


def sort_runs(runs: Sequence[RunRecord], key: str, reverse: bool = False) -> list[RunRecord]:
    """Runs ordered for display: newest first, or by name, status, or best metric (best first);
    `reverse` turns the order around."""
    ordered = _sort_runs(runs, key)
    return ordered[::-1] if reverse else ordered


def _sort_runs(runs: Sequence[RunRecord], key: str) -> list[RunRecord]:
    if key == "name":
        return sorted(runs, key=lambda r: (r.name.lower(), r.id))
    if key == "status":
        return sorted(runs, key=lambda r: (r.status, -r.created_at))
    if key == "best":
        def best_key(r: RunRecord) -> tuple[int, float]:
            if r.best is None or math.isnan(r.best):
                return (1, 0.0)
            return (0, -r.best if r.goal == "maximize" else r.best)
        return sorted(runs, key=best_key)
    return sorted(runs, key=lambda r: (-r.created_at, r.id))


def filter_runs(runs: Iterable[RunRecord], kind: str | None, status: str | None) -> list[RunRecord]:
    """Runs matching a kind and a status (None matches all)."""
    return [r for r in runs if (kind is None or r.kind == kind) and (status is None or r.status == status)]


def match_runs(runs: Iterable[RunRecord], text: str) -> list[RunRecord]:
    """Runs whose name, id or base model contains `text` (case-insensitive; empty matches all)."""
    needle = text.strip().lower()
    return [r for r in runs if not needle or any(needle in (v or "").lower() for v in (r.name, r.id, r.base_model))]


def progress_cell(step: int | None, total: int | None) -> str:
    """`80/120 67%` (just the step when the total is unknown; '—' before the first step)."""
    if step is None:
        return "—"
    if not total:
        return str(step)
    return f"{step}/{total} {min(100, round(100 * step / total))}%"


def eta_cell(run: RunRecord, step: int | None, total: int | None,
             step_times: Sequence[tuple[int, float]]) -> str:
    """Time left of a running run from its steady step time, as the HUD says it ('—' when not running)."""
    if run.status != "running":
        return "—"
    return format_elapsed(steady_eta(step_times, step, total))


def cycle(options: Sequence[Any], current: Any) -> Any:
    """The option after `current` (wrapping), for keys that cycle a setting."""
    index = list(options).index(current) if current in options else -1
    return options[(index + 1) % len(options)]


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys: {'train': {'lr': 1}} → {'train.lr': 1}."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def config_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """The dotted keys whose values differ between two configs, sorted; a missing side is None."""
    fa, fb = flatten(a), flatten(b)
    return [(k, fa.get(k), fb.get(k)) for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)]


_PREFIXES = ("eval/", "best/", "baseline/")


def bare_metric(key: str) -> str:
    """A metric name without its `eval/`, `best/` or `baseline/` prefix."""
    for prefix in _PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


def metric_goal(key: str, primary: str | None, goal: str) -> str:
    """`maximize`, `minimize` or `neutral`: the run's goal for its primary metric, else by name."""
    bare = bare_metric(key)
    if primary is not None and bare == primary:
        return goal
    if bare.rsplit("/", 1)[-1] in _NEUTRAL:
        return "neutral"
    return "minimize" if any(h in bare.lower() for h in _MINIMIZE_HINTS) else "maximize"


@dataclass(frozen=True)
class MetricDelta:
    """One metric of two runs: b − a, and whether b is better given the metric's direction."""

    key: str
    a: float | None
    b: float | None
    delta: float | None
    goal: str
    better: bool | None  # None: equal, or not comparable


def metric_deltas(a: Mapping[str, float], b: Mapping[str, float], primary: str | None, goal: str) -> list[MetricDelta]:
    """Deltas of every metric either run has, primary metric first, honouring maximize/minimize."""
    keys = sorted(set(a) | set(b), key=lambda k: (bare_metric(k) != primary, not k.startswith(_PREFIXES), k))
    out = []
    for key in keys:
        va, vb = a.get(key), b.get(key)
        direction = metric_goal(key, primary, goal)
        delta = better = None
        if va is not None and vb is not None and math.isfinite(va) and math.isfinite(vb):
            delta = vb - va
            if delta != 0 and direction != "neutral":
                better = (delta > 0) == (direction == "maximize")
        out.append(MetricDelta(key, va, vb, delta, direction, better))
    return out


def ema(values: Sequence[float], alpha: float = 0.1) -> list[float]:
    """Exponential moving average with bias correction; non-finite values are skipped (carried)."""
    out, avg, weight = [], 0.0, 0.0
    for value in values:
        if math.isfinite(value):
            avg = (1 - alpha) * avg + alpha * value
            weight = (1 - alpha) * weight + alpha
        out.append(avg / weight if weight else float("nan"))
    return out


def max_steps_of(config: Mapping[str, Any]) -> int | None:
    """`[train].max_steps` from a run's stored config, if present and sane."""
    train = config.get("train") if isinstance(config, Mapping) else None
    value = train.get("max_steps") if isinstance(train, Mapping) else None
    return value if isinstance(value, int) and value > 0 else None


def folder_size(folder: Path) -> int | None:
    """Bytes in the files under `folder` (None when it does not exist); blocking: call it in a thread."""
    if not folder.is_dir():
        return None
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def human_bytes(size: int) -> str:
    """Bytes in binary units: `512 B`, `3.2 KiB`, `1.5 GiB`."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover


# Metric names the HUD charts look for, first match wins (trainers may use either spelling).
CHART_KEYS: dict[str, tuple[str, ...]] = {
    "loss": ("loss", "train/loss", "train_loss"),
    "lr": ("lr", "learning_rate", "train/lr"),
    "grad_norm": ("grad_norm", "train/grad_norm", "gnorm"),
    "tokens": ("tokens_per_s", "tokens/s", "tok_per_s", "train/tokens_per_s", "throughput"),
}


def resolve_chart_keys(available: Iterable[str], primary: str | None) -> dict[str, str]:
    """Map HUD chart roles (loss, eval, lr, grad_norm, tokens) to the metric names a run recorded."""
    names = list(available)
    out = {role: found for role, keys in CHART_KEYS.items() if (found := next((k for k in keys if k in names), None))}
    evals = [k for k in names if k.startswith("eval/") and "loss" not in k]
    if primary and f"eval/{primary}" in names:
        out["eval"] = f"eval/{primary}"
    elif evals:
        out["eval"] = evals[0]
    elif "eval/eval_loss" in names or "eval/loss" in names:
        out["eval"] = "eval/eval_loss" if "eval/eval_loss" in names else "eval/loss"
    return out


ALARM_MARK = "⚠"
REFERENCE_MARK = "◂ to beat"
SERVING_MARK = "●"
GONE_MARK = "✗"


def _millis(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def server_line(server: ServerRecord, now: float) -> str:
    """The runs list's line for an HTTP server: what it serves and how it fares, or why it is gone."""
    url = server.address if "://" in server.address else f"http://{server.address}"
    if server.state != "serving":
        return f"{GONE_MARK} server {url} (pid {server.pid}) {server.state}" + (
            f": {server.gone_reason}" if server.gone_reason else "")
    serves = f"adapter {server.adapter_run_id}" if server.adapter_run_id else "base model"
    up = format_elapsed(now - server.started_at)
    return (f"{SERVING_MARK} serving {url} · {serves} · {server.requests} req · {server.errors} err · "
            f"p50 {_millis(server.p50_ms)} · p95 {_millis(server.p95_ms)} · up {up}")


def figure_lines(figures: Mapping[str, float], reference: str | None, indent: str = "  ") -> list[str]:
    """One aligned `system  value` line per figure, the reference marked: the comparison a gate made.

    A reference that is not among the figures still gets a line, so the reader sees what was compared.
    """
    rows = dict(figures)
    width = max((len(name) for name in rows), default=0)
    lines = [f"{indent}{name:<{width}}  {format_value(value):>7}" + (f"  {REFERENCE_MARK}" if name == reference else "")
             for name, value in rows.items()]
    if reference is not None and reference not in rows:
        lines.append(f"{indent}reference: {reference} (no figure)")
    return lines


def verdict_head(promoted: bool, forced: bool) -> str:
    """`promoted`, `promoted (forced)` or `not promoted`."""
    return ("promoted (forced)" if forced else "promoted") if promoted else "not promoted"


def figures_inline(figures: Mapping[str, float], reference: str | None) -> str:
    """Figures on one line, `tuned 0.47 · baseline 0.41 (to beat)`, for the event log."""
    return " · ".join(f"{name} {format_value(value)}" + (" (to beat)" if name == reference else "")
                      for name, value in figures.items())


NO_FIRST_STAGE = "the data's own lists (no first stage)"


def dataset_lines(event: DatasetEvent, unit: str = "queries") -> list[str]:
    """The Dataset tab's account of a run's `DatasetEvent`: summary, source, split, dev candidates
    and every count the loader reported (`n_positives` shown as `positives`)."""
    lines = [event.summary, "",
             f"source          {event.source}",
             f"format          {event.format}",
             f"fingerprint     {event.fingerprint}",
             f"split           {event.train} train / {event.dev} dev {unit}",
             f"dev candidates  {event.dev_candidates or NO_FIRST_STAGE}"]
    if event.counts:
        names = {key: key.removeprefix("n_").replace("_", " ") for key in event.counts}
        width = max(len(name) for name in names.values())
        lines += ["", "counts"] + [f"  {names[key]:<{width}}  {value:>8,}" for key, value in event.counts.items()]
    return lines
