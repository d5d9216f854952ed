"""One training run end to end, for any task: baseline, steps with evals and checkpoints, gate.

The loop knows nothing about rerankers or chat: a `TrainingPlan` supplies the engine, the batches
of each step, the evaluation and the adapter writer, and the loop does the rest the same way for
every kind — typed events, telemetry projection, best-adapter tracking, early stopping, atomic
checkpoints, exact resume, cooperative cancel (a pause: the run keeps a checkpoint of the step it
stopped at, can be resumed exactly and its best adapter promoted), the NaN guard and auto promotion.

Everything that can be wrong with the user's input is checked when the plan is prepared, before a
run exists in the store, so bad input leaves nothing behind. Heavy work (model load, steps, evals)
runs in threads; this coroutine only sequences it and writes events, so the TUI's event loop stays
free and a run inside the app behaves exactly like a headless one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trainers.settings import AppConfig
from store import CheckpointEvent, EvalEvent, EventWriter, LogEvent, MetricsEvent, RunStore, TelemetryEvent, file_digest
from store.reads import STEP_TIME_KEY
from store.resume import drop_steps_after
from trainers.rank_worker import step_with_peers
from trainers.world import SINGLE, STOP, PeerLost, World
from trainers.alarms import Alarm, AlarmState, check_divergence, check_evaluation
from trainers.durable import fsync_dir, fsync_tree, newest_intact, recover_swap, safetensors_intact, write_durably
from trainers.engine_base import TrainEngine
from trainers.evaluation import Evaluation
from trainers.faults import fault_point
from trainers.metrics import METRIC_GOALS
# Re-exported: the plan protocol and its factory live in trainers.plan, so that promotion can prepare
# a plan without importing this loop (which imports promotion).
from trainers.plan import TrainingPlan as TrainingPlan
from trainers.plan import prepare_plan as prepare_plan
from trainers.promotion import ADAPTER_SUBDIR, GateDecision, PromotionRefused, promote
from trainers.run_failure import record_failure
from trainers.serving_check import ServingReference, evaluate_serving
from trainers.trec import RANKINGS_DIR, write_qrels, write_run

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
    alarms: list[str] = field(default_factory=list)


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
    first_stage: dict[str, float] = field(default_factory=dict)
    baseline_timing: dict[str, float] = field(default_factory=dict)
    best_timing: dict[str, float] = field(default_factory=dict)
    serving: ServingReference | None = None
    candidates_note: str = ""
    alarms: list[str] = field(default_factory=list)


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
    first_stage: dict[str, float] = field(default_factory=dict)
    baseline_timing: dict[str, float] = field(default_factory=dict)
    best_timing: dict[str, float] = field(default_factory=dict)
    alarm_state: dict[str, Any] = field(default_factory=dict)


def _better(metric: str, candidate: float, incumbent: float | None) -> bool:
    if incumbent is None:
        return True
    return candidate > incumbent if METRIC_GOALS[metric] == "maximize" else candidate < incumbent


async def run_for_config(config: AppConfig, store: RunStore, cancel: threading.Event | None = None,
                         resume_run_id: str | None = None, plan: TrainingPlan | None = None,
                         on_progress: Callable[[ProgressUpdate], None] | None = None,
                         on_run_created: Callable[[str], None] | None = None) -> RunOutcome:
    """Prepare the plan of the config's kind (in a thread) and run it."""
    if plan is None:
        plan = await asyncio.to_thread(prepare_plan, config)
    return await run_training(config, store, plan, cancel, resume_run_id, on_progress, on_run_created)


async def run_training(config: AppConfig, store: RunStore, plan: TrainingPlan, cancel: threading.Event | None = None,
                       resume_run_id: str | None = None,
                       on_progress: Callable[[ProgressUpdate], None] | None = None,
                       on_run_created: Callable[[str], None] | None = None, world: World = SINGLE) -> RunOutcome:
    """Run (or resume) a training of any kind; returns the outcome, never leaves the run `running`.

    `on_run_created(run_id)` is called as soon as the run exists, so a UI can offer to cancel it.
    In a data-parallel `world` this is rank 0's side (the other ranks run `trainers.rank_worker.follow`).
    """
    cancel = cancel or threading.Event()
    metric = plan.primary_metric
    if resume_run_id is None:
        run_id = await store.create_run(
            plan.kind, config.train.name, backend=plan.backend, base_model=config.model.base,
            config=json.loads(plan.config.model_dump_json()), dataset_fingerprint=plan.dataset_fingerprint,
            primary_metric=metric, goal=METRIC_GOALS[metric], world_size=world.size)
    else:
        run_id = resume_run_id
        allowed = await _check_resume(store, run_id, plan)
        await store.set_world_size(run_id, world.size)
    if on_run_created:
        on_run_created(run_id)
    outcome = RunOutcome(run_id, "running", metric)
    started = time.perf_counter()
    async with store.writer(run_id) as writer:
        await writer.set_status("running", reason="resumed" if resume_run_id else "started")
        if resume_run_id and allowed:
            writer.emit(LogEvent(message=f"resumed with changed settings: {'; '.join(allowed)}"))
        try:
            await _train(config, store, writer, plan, run_id, cancel, resume_run_id is not None, outcome, on_progress,
                         world)
        except asyncio.CancelledError:
            outcome.status = "cancelled"
            await writer.set_status("cancelled", reason="task cancelled")
            raise
        except Exception as exc:  # the run failed: record why, never leave it running
            outcome.status, outcome.error = "failed", f"{type(exc).__name__}: {exc}"
            await record_failure(writer, outcome.error)
        outcome.wall_s = time.perf_counter() - started
    if outcome.status == "completed" and config.train.auto_promote:
        try:
            outcome.decision = await promote(store, config, run_id)
        except PromotionRefused as exc:
            outcome.decision = exc.decision
    return outcome


async def _check_resume(store: RunStore, run_id: str, plan: TrainingPlan) -> list[str]:
    """The settings the resume changes (safe ones), or ResumeRefused before anything is touched.

    Compared with the plan's config: the one with `[train].precision` resolved, as the run recorded it."""
    from trainers.resume_check import ResumeRefused, check_resume

    run = await store.get_run(run_id)
    if run.kind != plan.kind:
        raise ResumeRefused(f"run {run_id} is a {run.kind} run; resume it with a [train].kind = {run.kind!r} config")
    return check_resume(run_id, run.config, json.loads(plan.config.model_dump_json()), run.dataset_fingerprint,
                        plan.dataset_fingerprint)


async def _train(config: AppConfig, store: RunStore, writer: EventWriter, plan: TrainingPlan, run_id: str,
                 cancel: threading.Event, resuming: bool, outcome: RunOutcome,
                 on_progress: Callable[[ProgressUpdate], None] | None, world: World) -> None:
    from safetensors.numpy import load_file, save_file

    from trainers.evaluation import Projector

    train, metric = config.train, plan.primary_metric
    run_dir = store.artifact_path(run_id, ADAPTER_SUBDIR).parent
    run_dir.mkdir(parents=True, exist_ok=True)
    outcome.candidates_note = plan.candidates_note
    writer.emit(plan.dataset_event())
    for line in plan.describe():
        writer.emit(LogEvent(message=line))
    if world.size > 1:
        writer.emit(LogEvent(message=f"data parallel: {world.size} processes ({world.framework}); each computes "
                                     "its shard of every step's batch, rank 0 writes and evaluates"))
    engine = await asyncio.to_thread(plan.make_engine)
    peers_alive = world.size > 1  # the other ranks wait for a STOP when this rank leaves
    stuck = False  # a collective never returned: the engine's thread is inside it for good
    try:
        engine.use_world(world)
        tracker = _Tracker()
        checkpoint, damaged = newest_intact(run_dir / CHECKPOINTS, TRAINER_STATE) if resuming else (None, [])
        for name in damaged:
            writer.emit(LogEvent(level="warning", message=f"checkpoint {name} is damaged (partly written); skipped"))
        if resuming and recover_swap(run_dir / ADAPTER_SUBDIR):
            writer.emit(LogEvent(level="warning", message="restored the best adapter a crash left mid-swap"))
        if resuming and checkpoint is None:
            writer.emit(LogEvent(level="warning", message="no complete checkpoint: starting from step 0"))
        if checkpoint is not None:
            await asyncio.to_thread(engine.load_state, checkpoint)
            tracker = _Tracker(**json.loads((checkpoint / TRAINER_STATE).read_text()))
            dropped = await drop_steps_after(writer, tracker.step)
            writer.emit(LogEvent(message=f"resumed from {checkpoint.name} (step {tracker.step})"
                                 + (f"; {dropped} events of later steps superseded" if dropped else "")))
        if world.size > 1:  # the other ranks start from the same state
            await asyncio.to_thread(world.broadcast_text, str(checkpoint or ""))
        if safetensors_intact(run_dir / ORIGIN):
            origin = (await asyncio.to_thread(load_file, str(run_dir / ORIGIN)))["origin"]
        else:
            origin = await asyncio.to_thread(engine.trainable_vector)
            await asyncio.to_thread(write_durably, run_dir / ORIGIN, lambda tmp: save_file({"origin": origin}, str(tmp)))
        project = Projector(origin, train.seed)
        if not tracker.baseline:
            await _references(store, plan, engine, tracker, writer, run_dir, run_id)
        alarms = AlarmState(**tracker.alarm_state)
        checkpointed = tracker.step if checkpoint is not None else 0  # the step of the newest checkpoint
        while tracker.step < train.max_steps:
            if cancel.is_set():  # a pause: keep an exact checkpoint of this step and list what the run has
                if tracker.step > 0 and checkpointed != tracker.step:
                    await _checkpoint(engine, tracker, run_dir, writer)
                    checkpointed = tracker.step
                await _register_artifacts(store, run_id, run_dir)
                outcome.status = "cancelled"
                kept = f"; checkpoint at step {checkpointed} kept: resume it" if checkpointed else ""
                await writer.set_status("cancelled", reason=f"cancelled at step {tracker.step}{kept}")
                break
            micro = await asyncio.to_thread(plan.batches_for, tracker.step)  # tokenizing is not free
            try:
                stats = await step_with_peers(world, engine, micro)
            except PeerLost as exc:  # the step was not taken: keep a checkpoint of this one, resumable
                peers_alive, stuck = False, exc.stuck
                checkpointed = await _interrupted(engine if not stuck else None, tracker, checkpointed, store, run_id,
                                                  run_dir, writer, str(exc))
                outcome.status = "interrupted"
                break
            if not (math.isfinite(stats.loss) and (math.isfinite(stats.grad_norm) or stats.skipped)):
                raise TrainingFailed(f"non-finite training signal at step {tracker.step + 1} (loss {stats.loss}, "
                                     f"gradient norm {stats.grad_norm}); nothing from this step was kept")
            if stats.skipped:  # fp16's scaler lowers its scale and goes on; the step's data is spent
                writer.emit(LogEvent(level="warning", message=f"step {tracker.step + 1}: fp16 gradients overflowed; "
                                                              "update skipped, loss scale lowered"))
            fault_point("train.after_step")
            tracker.step += 1
            outcome.steps = tracker.step  # also right when a later step fails
            tracker.tokens += stats.tokens
            tracker.train_seconds += stats.seconds
            rate = stats.tokens / stats.seconds if stats.seconds > 0 else 0.0
            values = {"train/loss": stats.loss, "train/lr": stats.lr, "train/grad_norm": stats.grad_norm,
                      "train/tokens_per_s": rate, STEP_TIME_KEY: stats.seconds}
            if stats.skipped:
                del values["train/grad_norm"]  # not finite: nothing to chart
            writer.emit(MetricsEvent(values=values), step=tracker.step)
            x, y = project(await asyncio.to_thread(engine.trainable_vector))
            writer.emit(TelemetryEvent(proj_x=x, proj_y=y, loss=stats.loss), step=tracker.step)
            raised = check_divergence(alarms, stats.loss, tracker.step, train)
            evaluated = None
            if tracker.step % train.eval_every == 0 or tracker.step == train.max_steps:
                evaluation = await _evaluate(store, plan, engine, tracker, writer, run_dir, run_id)
                evaluated = evaluation.metrics
                raised += check_evaluation(alarms, evaluation, tracker.baseline, metric, train)
            tracker.alarm_state = asdict(alarms)
            await _raise_alarms(store, raised, writer, run_id, outcome)
            if on_progress:
                on_progress(ProgressUpdate(tracker.step, train.max_steps, stats.loss,
                                           tracker.train_seconds, rate, evaluated, [a.message for a in raised]))
            if tracker.step % train.checkpoint_every == 0 or tracker.step == train.max_steps:
                await _checkpoint(engine, tracker, run_dir, writer)
                checkpointed = tracker.step
            if raised and train.stop_on_alarm:
                raise TrainingFailed(f"stopped by alarm at step {tracker.step} ([train].stop_on_alarm = true): "
                                     f"{raised[0].message}")
            if evaluated is not None and tracker.bad_evals >= train.early_stopping_patience:
                writer.emit(LogEvent(message=f"early stop at step {tracker.step}: no {metric} improvement in "
                                             f"{tracker.bad_evals} evaluations"))
                break
        outcome.baseline, outcome.best, outcome.best_step = tracker.baseline, tracker.best, tracker.best_step
        outcome.first_stage, outcome.baseline_timing = tracker.first_stage, tracker.baseline_timing
        outcome.best_timing, outcome.steps = tracker.best_timing, tracker.step
        outcome.tokens_per_s = tracker.tokens / tracker.train_seconds if tracker.train_seconds else 0.0
        if outcome.status == "running":
            outcome.serving = await _serving_reference(config, store, plan, writer, run_dir, run_id)
            await _register_artifacts(store, run_id, run_dir)
            outcome.status = "completed"
            await writer.set_status("completed", reason=f"best {metric} {tracker.best.get(metric, float('nan')):.4f} "
                                                        f"at step {tracker.best_step}")
    finally:
        if peers_alive:
            with contextlib.suppress(PeerLost):
                await asyncio.to_thread(world.broadcast_int, STOP)
        if not stuck:
            await asyncio.to_thread(engine.close)


async def _interrupted(engine: TrainEngine[Any] | None, tracker: _Tracker, checkpointed: int, store: RunStore,
                       run_id: str, run_dir: Path, writer: EventWriter, why: str) -> int:
    """Another rank is gone: checkpoint this step (unless the engine is stuck in a collective: None),
    list the artifacts and mark the run interrupted (resumable, with any number of processes).
    Returns the step of the newest checkpoint."""
    if engine is not None and tracker.step > 0 and checkpointed != tracker.step:
        await _checkpoint(engine, tracker, run_dir, writer)
        checkpointed = tracker.step
    await _register_artifacts(store, run_id, run_dir)
    await writer.set_status("interrupted", reason=f"{why}; checkpoint at step {checkpointed} kept: resume it")
    return checkpointed


async def _references(store: RunStore, plan: TrainingPlan, engine: TrainEngine[Any], tracker: _Tracker, writer: EventWriter,
                      run_dir: Path, run_id: str) -> None:
    """Before training: the first stage's and the base model's dev figures, and their rankings."""
    metric = plan.primary_metric
    rankings = run_dir / RANKINGS_DIR
    first = await asyncio.to_thread(plan.first_stage)
    if first is not None:
        tracker.first_stage = first.metrics
        writer.emit(EvalEvent(metrics=first.metrics, split="first_stage"), step=0)
        await store.set_first_stage(run_id, first.metrics[metric])
        await asyncio.to_thread(write_run, rankings, "first_stage", first.rankings)
    base = await asyncio.to_thread(plan.evaluate, engine)
    tracker.baseline, tracker.baseline_timing = base.metrics, base.timing
    writer.emit(EvalEvent(metrics=base.metrics, split="baseline", timing=base.timing), step=0)
    await store.set_baseline(run_id, base.metrics[metric])
    qrels = plan.qrels()
    if qrels is not None:
        await asyncio.to_thread(write_run, rankings, "base", base.rankings)
        await asyncio.to_thread(write_qrels, rankings, qrels)


async def _evaluate(store: RunStore, plan: TrainingPlan, engine: TrainEngine[Any], tracker: _Tracker, writer: EventWriter,
                    run_dir: Path, run_id: str) -> Evaluation:
    metric = plan.primary_metric
    evaluation = await asyncio.to_thread(plan.evaluate, engine)
    metrics = evaluation.metrics
    is_best = _better(metric, metrics[metric], tracker.best.get(metric))
    writer.emit(EvalEvent(metrics=metrics, split="dev", is_best=is_best, timing=evaluation.timing), step=tracker.step)
    if is_best:
        tracker.best, tracker.best_step, tracker.bad_evals = metrics, tracker.step, 0
        tracker.best_timing = evaluation.timing
        lora = await asyncio.to_thread(engine.lora_weights)
        await asyncio.to_thread(plan.write_adapter, run_dir / ADAPTER_SUBDIR, lora, run_id, metrics)
        if evaluation.rankings:
            await asyncio.to_thread(write_run, run_dir / RANKINGS_DIR, "tuned", evaluation.rankings)
        await store.set_best(run_id, metrics[metric])
    else:
        tracker.bad_evals += 1
    return evaluation


async def _raise_alarms(store: RunStore, raised: list[Alarm], writer: EventWriter, run_id: str,
                       outcome: RunOutcome) -> None:
    """Record new alarms: a typed event each, and the latest on the run for the runs list."""
    for alarm in raised:
        writer.emit(alarm.event())
        outcome.alarms.append(alarm.message)
    if raised:
        await store.set_alarm(run_id, raised[-1].message)


async def _serving_reference(config: AppConfig, store: RunStore, plan: TrainingPlan, writer: EventWriter, run_dir: Path,
                             run_id: str) -> ServingReference | None:
    """At the end of a run: evaluate the adapter serving now on this run's dev candidates (the gate
    compares with it), record its figure or why it could not be compared."""
    serving_run = await store.active_run(plan.kind)
    if serving_run is None or serving_run == run_id:
        return None
    folder = config.active_adapter_dir(plan.kind)
    reference = await asyncio.to_thread(evaluate_serving, plan, folder, serving_run)
    value = None
    if reference.evaluation is not None:
        evaluation = reference.evaluation
        value = evaluation.metrics[plan.primary_metric]
        writer.emit(EvalEvent(metrics=evaluation.metrics, split="serving", timing=evaluation.timing,
                              adapter_run_id=serving_run))
        if evaluation.rankings:
            await asyncio.to_thread(write_run, run_dir / RANKINGS_DIR, "serving", evaluation.rankings)
    else:
        writer.emit(LogEvent(level="warning", message=reference.note or "serving adapter not compared"))
    await store.set_serving_reference(run_id, serving_run, value, reference.note)
    return reference


async def _checkpoint(engine: TrainEngine[Any], tracker: _Tracker, run_dir: Path, writer: EventWriter) -> None:
    """Write engine state + tracker to a temp folder, then rename: a checkpoint is whole or absent."""
    root = run_dir / CHECKPOINTS
    final = root / f"step-{tracker.step:07d}"
    tmp = root / f".tmp-{final.name}"
    await asyncio.to_thread(shutil.rmtree, tmp, True)
    await asyncio.to_thread(engine.save_state, tmp)
    await writer.flush()  # the steps up to this one are in the store before the checkpoint says they happened
    await asyncio.to_thread(_commit_checkpoint, tmp, final, json.dumps(asdict(tracker), sort_keys=True))
    writer.emit(CheckpointEvent(path=str(final.relative_to(run_dir)), step=tracker.step), step=tracker.step)


def _commit_checkpoint(tmp: Path, final: Path, tracker_json: str) -> None:
    """File work of a checkpoint (off the event loop): tracker, fsync, rename into place, prune old ones.

    The previous checkpoint is pruned only after this one is durable, so one always survives a crash.
    """
    (tmp / TRAINER_STATE).write_text(tracker_json)
    fsync_tree(tmp)
    fault_point("checkpoint.before_rename")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    fsync_dir(final.parent)
    fault_point("checkpoint.after_rename")
    for old in sorted(p for p in final.parent.iterdir() if p.name.startswith("step-"))[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)


async def _register_artifacts(store: RunStore, run_id: str, run_dir: Path) -> None:
    """List the adapter's files, the dev rankings (TREC run and qrels files) and the kept checkpoints'
    files as the run's artifacts (checkpoints pruned since an earlier listing are forgotten)."""
    await store.remove_artifacts(run_id, "checkpoint")
    folders = [(ADAPTER_SUBDIR, "adapter"), (RANKINGS_DIR, "ranking")]
    if (run_dir / CHECKPOINTS).is_dir():
        folders += [(f"{CHECKPOINTS}/{p.name}", "checkpoint") for p in sorted((run_dir / CHECKPOINTS).iterdir())
                    if p.is_dir() and p.name.startswith("step-")]
    for subdir, kind in folders:
        folder = run_dir / subdir
        if not folder.is_dir():
            continue
        for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
            digest, size = await asyncio.to_thread(file_digest, path)
            await store.add_artifact(run_id, kind, f"{subdir}/{path.name}", digest, size)
