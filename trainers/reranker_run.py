"""One learning-reranker run end to end: prepare, baseline, train with evals and checkpoints, gate.

Everything that can be wrong with the user's input (config, data, model) is checked in `prepare`,
before a run exists in the store, so bad input leaves nothing behind. Heavy work (model load,
steps, evals) runs in threads; this coroutine only sequences it and writes typed events, so the
TUI's event loop stays free and a run inside the app behaves exactly like a headless one.
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ragweld_tui.config import AppConfig
from store import CheckpointEvent, EvalEvent, LogEvent, MetricsEvent, RunStore, TelemetryEvent, file_digest
from trainers.metrics import METRIC_GOALS
from trainers.promotion import ADAPTER_SUBDIR, GateDecision, PromotionRefused, promote
from trainers.run_plan import RunPlan, write_adapter

CHECKPOINTS, KEEP_CHECKPOINTS, TRAINER_STATE, ORIGIN = "checkpoints", 2, "trainer.json", "telemetry_origin.safetensors"


class TrainingFailed(RuntimeError):
    """The run cannot go on (a NaN loss, a diverged model); the run is marked failed."""


@dataclass
class ProgressUpdate:
    """What a progress display needs after each step."""

    step: int
    max_steps: int
    loss: float
    elapsed_s: float
    tokens_per_s: float
    eval_metrics: dict[str, float] | None = None


@dataclass
class RunOutcome:
    """How a run ended, for the CLI's final table and exit code."""

    run_id: str
    status: str
    primary_metric: str
    baseline: dict[str, float] = field(default_factory=dict)
    best: dict[str, float] = field(default_factory=dict)
    best_step: int = 0
    steps: int = 0
    decision: GateDecision | None = None
    wall_s: float = 0.0
    tokens_per_s: float = 0.0
    error: str | None = None


@dataclass
class _Tracker:
    """Best-so-far and patience bookkeeping; saved in every checkpoint so resume is exact."""

    step: int = 0
    baseline: dict[str, float] = field(default_factory=dict)
    best: dict[str, float] = field(default_factory=dict)
    best_step: int = 0
    bad_evals: int = 0
    tokens: int = 0
    train_seconds: float = 0.0


def _better(metric: str, candidate: float, incumbent: float | None) -> bool:
    if incumbent is None:
        return True
    return candidate > incumbent if METRIC_GOALS[metric] == "maximize" else candidate < incumbent


async def run_reranker(config: AppConfig, store: RunStore, cancel: threading.Event | None = None,
                       resume_run_id: str | None = None, plan: RunPlan | None = None,
                       on_progress: Callable[[ProgressUpdate], None] | None = None) -> RunOutcome:
    """Run (or resume) a reranker training; returns the outcome, never leaves the run `running`."""
    cancel = cancel or threading.Event()
    plan = plan or await asyncio.to_thread(RunPlan.prepare, config)
    metric = config.train.primary_metric
    if resume_run_id is None:
        run_id = await store.create_run(
            "reranker", config.train.name, backend=plan.backend, base_model=config.model.base,
            config=json.loads(config.model_dump_json()), dataset_fingerprint=plan.dataset.fingerprint,
            primary_metric=metric, goal=METRIC_GOALS[metric])
    else:
        run_id = resume_run_id
    outcome = RunOutcome(run_id, "running", metric)
    started = time.perf_counter()
    async with store.writer(run_id) as writer:
        await writer.set_status("running", reason="resumed" if resume_run_id else "started")
        try:
            await _train(config, store, writer, plan, run_id, cancel, resume_run_id is not None, outcome, on_progress)
        except asyncio.CancelledError:
            outcome.status = "cancelled"
            await writer.set_status("cancelled", reason="task cancelled")
            raise
        except Exception as exc:  # the run failed: record why, never leave it running
            outcome.status, outcome.error = "failed", f"{type(exc).__name__}: {exc}"
            writer.emit(LogEvent(level="error", message=outcome.error))
            await writer.set_status("failed", error=outcome.error)
        outcome.wall_s = time.perf_counter() - started
    if outcome.status == "completed" and config.train.auto_promote:
        try:
            outcome.decision = await promote(store, config, run_id)
        except PromotionRefused as exc:
            outcome.decision = GateDecision(False, str(exc).split("; "))
        async with store.writer(run_id) as writer:
            verdict = "promoted" if outcome.decision.promote else "not promoted"
            writer.emit(LogEvent(message=f"{verdict}: {'; '.join(outcome.decision.reasons)}"))
    return outcome


async def _train(config: AppConfig, store: RunStore, writer, plan: RunPlan, run_id: str, cancel: threading.Event,
                 resuming: bool, outcome: RunOutcome, on_progress) -> None:
    from safetensors.numpy import load_file, save_file

    from trainers.evaluation import Projector

    train, metric = config.train, config.train.primary_metric
    run_dir = store.artifact_path(run_id, ADAPTER_SUBDIR).parent
    run_dir.mkdir(parents=True, exist_ok=True)
    writer.emit(LogEvent(message=plan.dataset.report.summary()))
    writer.emit(LogEvent(message=f"{plan.backend} on {plan.device} ({plan.backend_reason}); "
                                 f"{len(plan.split.train)} train / {len(plan.split.dev)} dev queries"))
    engine = await asyncio.to_thread(plan.make_engine)
    try:
        tracker = _Tracker()
        checkpoint = _latest_checkpoint(run_dir) if resuming else None
        if resuming and checkpoint is None:
            writer.emit(LogEvent(level="warning", message="no complete checkpoint: starting from step 0"))
        if checkpoint is not None:
            await asyncio.to_thread(engine.load_state, checkpoint)
            tracker = _Tracker(**json.loads((checkpoint / TRAINER_STATE).read_text()))
            writer.emit(LogEvent(message=f"resumed from {checkpoint.name} (step {tracker.step})"))
        if (run_dir / ORIGIN).is_file():
            origin = load_file(str(run_dir / ORIGIN))["origin"]
        else:
            origin = await asyncio.to_thread(engine.trainable_vector)
            save_file({"origin": origin}, str(run_dir / ORIGIN))
        project = Projector(origin, train.seed)
        if not tracker.baseline:
            tracker.baseline = await asyncio.to_thread(plan.evaluate, engine)
            writer.emit(EvalEvent(metrics=tracker.baseline, split="baseline"), step=0)
            await store.set_baseline(run_id, tracker.baseline[metric])
        while tracker.step < train.max_steps:
            if cancel.is_set():
                outcome.status = "cancelled"
                await writer.set_status("cancelled", reason=f"cancelled at step {tracker.step}")
                break
            micro = plan.batches_for(tracker.step)
            stats = await asyncio.to_thread(engine.train_step, micro)
            if not (math.isfinite(stats.loss) and math.isfinite(stats.grad_norm)):
                raise TrainingFailed(f"non-finite training signal at step {tracker.step + 1} (loss {stats.loss}, "
                                     f"gradient norm {stats.grad_norm}); nothing from this step was kept")
            tracker.step += 1
            tracker.tokens += stats.tokens
            tracker.train_seconds += stats.seconds
            rate = stats.tokens / stats.seconds if stats.seconds > 0 else 0.0
            writer.emit(MetricsEvent(values={"train/loss": stats.loss, "train/lr": stats.lr, "train/grad_norm": stats.grad_norm,
                                             "train/tokens_per_s": rate, "train/step_time_s": stats.seconds}),
                        step=tracker.step)
            x, y = project(await asyncio.to_thread(engine.trainable_vector))
            writer.emit(TelemetryEvent(proj_x=x, proj_y=y, loss=stats.loss), step=tracker.step)
            evaluated = None
            if tracker.step % train.eval_every == 0 or tracker.step == train.max_steps:
                evaluated = await _evaluate(plan, engine, tracker, writer, run_dir, run_id, config)
            if on_progress:
                on_progress(ProgressUpdate(tracker.step, train.max_steps, stats.loss,
                                           tracker.train_seconds, rate, evaluated))
            if tracker.step % train.checkpoint_every == 0 or tracker.step == train.max_steps:
                await _checkpoint(engine, tracker, run_dir, writer)
            if evaluated is not None and tracker.bad_evals >= train.early_stopping_patience:
                writer.emit(LogEvent(message=f"early stop at step {tracker.step}: no {metric} improvement in "
                                             f"{tracker.bad_evals} evaluations"))
                break
        outcome.baseline, outcome.best, outcome.best_step = tracker.baseline, tracker.best, tracker.best_step
        outcome.steps = tracker.step
        outcome.tokens_per_s = tracker.tokens / tracker.train_seconds if tracker.train_seconds else 0.0
        if outcome.status == "running":
            await _register_artifacts(store, run_id, run_dir)
            outcome.status = "completed"
            await writer.set_status("completed", reason=f"best {metric} {tracker.best.get(metric, float('nan')):.4f} "
                                                        f"at step {tracker.best_step}")
    finally:
        await asyncio.to_thread(engine.close)


async def _evaluate(plan: RunPlan, engine, tracker: _Tracker, writer, run_dir: Path, run_id: str,
                    config: AppConfig) -> dict[str, float]:
    metric = config.train.primary_metric
    metrics = await asyncio.to_thread(plan.evaluate, engine)
    is_best = _better(metric, metrics[metric], tracker.best.get(metric))
    writer.emit(EvalEvent(metrics=metrics, split="dev", is_best=is_best), step=tracker.step)
    if is_best:
        tracker.best, tracker.best_step, tracker.bad_evals = metrics, tracker.step, 0
        lora = await asyncio.to_thread(engine.lora_weights)
        await asyncio.to_thread(write_adapter, run_dir / ADAPTER_SUBDIR, lora, plan, run_id, metrics)
        await writer.store.set_best(run_id, metrics[metric])
    else:
        tracker.bad_evals += 1
    return metrics


async def _checkpoint(engine, tracker: _Tracker, run_dir: Path, writer) -> None:
    """Write engine state + tracker to a temp folder, then rename: a checkpoint is whole or absent."""
    root = run_dir / CHECKPOINTS
    final = root / f"step-{tracker.step:07d}"
    tmp = root / f".tmp-{final.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    await asyncio.to_thread(engine.save_state, tmp)
    (tmp / TRAINER_STATE).write_text(json.dumps(asdict(tracker), sort_keys=True))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in sorted(p for p in root.iterdir() if p.name.startswith("step-"))[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)
    writer.emit(CheckpointEvent(path=str(final.relative_to(run_dir)), step=tracker.step), step=tracker.step)


def _latest_checkpoint(run_dir: Path) -> Path | None:
    root = run_dir / CHECKPOINTS
    if not root.is_dir():
        return None
    complete = [p for p in sorted(root.iterdir()) if p.name.startswith("step-") and (p / TRAINER_STATE).is_file()]
    return complete[-1] if complete else None


async def _register_artifacts(store: RunStore, run_id: str, run_dir: Path) -> None:
    adapter = run_dir / ADAPTER_SUBDIR
    if not adapter.is_dir():
        return
    for path in sorted(adapter.iterdir()):
        digest, size = await asyncio.to_thread(file_digest, path)
        await store.add_artifact(run_id, "adapter", f"{ADAPTER_SUBDIR}/{path.name}", digest, size)


