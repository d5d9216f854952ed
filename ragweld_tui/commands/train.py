"""Headless training (`ragweld-tui --run config.toml [--resume RUN_ID]`), `promote` and `rollback`.

`--run` trains what `[train].kind` says: a reranker, or the agent (chat LoRA) as in `agent.toml`.

Exit codes: 0 done, 1 failed, 2 bad input, 130 cancelled (Ctrl-C or SIGINT stops cooperatively after
the current step; the run is recorded as cancelled, never left running, with a checkpoint of that step:
`--resume RUN_ID` continues it exactly and `promote RUN_ID` gates its best adapter).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Column

from ragweld_tui.commands.common import config_from_args, user_errors
from ragweld_tui.config import AppConfig
from ragweld_tui.errors import UserError
from ragweld_tui.eta import steady_eta
from ragweld_tui.format import format_elapsed

if TYPE_CHECKING:
    from store import RunStore
    from trainers.plan import TrainingPlan
    from trainers.world import World
    from trainers.run_loop import ProgressUpdate, RunOutcome

EXIT_CODES = {"completed": 0, "failed": 1, "cancelled": 130}
RESUMABLE = ("interrupted", "cancelled")  # a dead owner's run, or one paused by a cancel (it kept its checkpoint)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    promote = sub.add_parser("promote", help="promote a completed run's adapter to the active one")
    promote.add_argument("run_id", metavar="RUN_ID")
    promote.add_argument("--force", action="store_true", help="waive the metric gate (never the compatibility checks)")
    promote.set_defaults(handler=lambda args: asyncio.run(_promote(args)))
    rollback = sub.add_parser("rollback", help="restore the previously active adapter (or the base model)")
    rollback.add_argument("--kind", choices=("reranker", "agent"), default="reranker")
    rollback.set_defaults(handler=lambda args: asyncio.run(_rollback(args)))


@contextlib.asynccontextmanager
async def open_store(args: argparse.Namespace, config: AppConfig) -> AsyncIterator[RunStore]:
    """The store named by --db (runs folder beside it) or the configured one."""
    from store import RunStore, StoreError
    from store.settings import store_location
    from trainers.promotion import reconcile_active

    path, runs_root = store_location(config.store, getattr(args, "db", None))
    try:
        store = await RunStore.open(path, runs_root=runs_root)
    except StoreError as exc:
        raise UserError(str(exc)) from None
    try:
        for note in await reconcile_active(store, config):  # a promotion cut short: the link is the truth
            print(f"warning: {note}", file=sys.stderr)
        yield store
    finally:
        await store.close()


class ProgressPrinter:
    """A one-line bar on a terminal (rich's, redrawn in place and fitted to the width; eval results and
    alarms print above it); plain lines at evals and every 10 steps otherwise, for logs and pipes.

    The ETA is the steady-state step time (median of recent training steps, warm-up and evaluations
    left out) × the steps left; `close()` (or leaving the `with` block) ends the bar.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr  # looked up now: sys.stderr may have been replaced since import
        self.tty = self.stream.isatty()
        self.start = time.monotonic()
        self.durations: list[tuple[int, float]] = []  # (step, training seconds of that step)
        self._last: tuple[int, float] | None = None
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> ProgressPrinter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Leave the bar's last state on screen and give the terminal back."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def _eta(self, update: ProgressUpdate) -> float | None:
        """Each step's duration is the growth of the training-only clock (evaluations are not on it)."""
        previous = self._last
        if previous is not None and update.step == previous[0] + 1 and update.elapsed_s > previous[1]:
            self.durations.append((update.step, update.elapsed_s - previous[1]))
        elif previous is None and update.step == 1 and update.elapsed_s > 0:
            self.durations.append((1, update.elapsed_s))
        self._last = (update.step, update.elapsed_s)
        return steady_eta(self.durations, update.step, update.max_steps)

    def __call__(self, update: ProgressUpdate) -> None:
        elapsed = time.monotonic() - self.start
        eta = self._eta(update)
        evals = "eval " + " ".join(f"{k}={v:.4f}" for k, v in update.eval_metrics.items()) if update.eval_metrics else ""
        if not self.tty:
            for alarm in update.alarms:
                print(f"ALARM: {alarm}", file=self.stream, flush=True)
            if update.eval_metrics or update.step % 10 == 0 or update.step == update.max_steps:
                text = (f"step {update.step}/{update.max_steps} loss {update.loss:.4f} {update.tokens_per_s:,.0f} tok/s "
                        f"elapsed {elapsed:.0f}s eta {eta or 0.0:.0f}s")
                print(text + (f"  {evals}" if evals else ""), file=self.stream, flush=True)
            return
        bar = self._bar or self._start_bar(update.max_steps)
        for alarm in update.alarms:
            bar.console.print(f"ALARM: {alarm}", style="bold yellow", markup=False, highlight=False)
        if evals:
            bar.console.print(f"step {update.step}/{update.max_steps} {evals}", markup=False, highlight=False)
        info = (f"loss {update.loss:.4f} · {update.tokens_per_s:,.0f} tok/s · elapsed {format_elapsed(elapsed)} · "
                f"ETA {format_elapsed(eta)}")
        if self._task is not None:
            bar.update(self._task, completed=update.step, total=update.max_steps, info=info)
        if update.step >= update.max_steps:
            self.close()

    def _start_bar(self, total: int) -> Progress:
        """The bar: `step n/N ━━━━━━━ loss … · tok/s · elapsed · ETA`, never wider than the terminal."""
        console = Console(file=self.stream, highlight=False)
        self._bar = Progress(
            TextColumn("step {task.completed:.0f}/{task.total:.0f}", table_column=Column(no_wrap=True)),
            BarColumn(bar_width=None, table_column=Column(ratio=1, min_width=8)),
            TextColumn("{task.fields[info]}", table_column=Column(no_wrap=True, overflow="ellipsis")),
            console=console, expand=True, refresh_per_second=4)
        self._task = self._bar.add_task("train", total=total, info="")
        self._bar.start()
        return self._bar


def _num(value: float, sign: str = "") -> str:
    """Four decimals, or four significant digits for values too large for a column (perplexity)."""
    return f"{value:{sign}.4g}" if abs(value) >= 1e5 else f"{value:{sign}.4f}"


TIMING_COLUMNS = (("latency_p50_ms", "p50 ms", ".1f"), ("latency_p95_ms", "p95 ms", ".1f"), ("pairs_per_s", "pairs/s", ",.0f"))


def results_rows(outcome: RunOutcome) -> list[tuple[str, dict[str, float], dict[str, float]]]:
    """(system, metrics, timing) in the order a reader compares them: first stage → base → serving → tuned."""
    rows: list[tuple[str, dict[str, float], dict[str, float]]] = []
    if outcome.first_stage:
        rows.append(("first stage", outcome.first_stage, {}))
    rows.append(("base", outcome.baseline, outcome.baseline_timing))
    serving = outcome.serving
    if serving is not None and serving.evaluation is not None:
        rows.append(("serving adapter", serving.evaluation.metrics, serving.evaluation.timing))
    if outcome.best:
        rows.append((f"tuned (step {outcome.best_step})", outcome.best, outcome.best_timing))
    return rows


def print_results_table(outcome: RunOutcome) -> None:
    """Every system measured on the same dev candidates, one row each, primary metric starred."""
    rows = results_rows(outcome)
    metrics = list(outcome.baseline)
    timed = any(timing for _, _, timing in rows)
    header = f"{'system':<22}" + "".join(f"{name + ('*' if name == outcome.primary_metric else ''):>10}"
                                         for name in metrics)
    if timed:
        header += "".join(f"{label:>9}" for _, label, _ in TIMING_COLUMNS)
    print(header)
    for system, values, timing in rows:
        line = f"{system[:21]:<22}" + "".join(f"{_num(values[m]) if m in values else '-':>10}" for m in metrics)
        if timed:
            line += "".join(f"{format(timing[key], spec) if key in timing else '-':>9}" for key, _, spec in TIMING_COLUMNS)
        print(line)
    primary = outcome.primary_metric
    if outcome.best and primary in outcome.baseline:
        print(f"(* primary metric; tuned vs base {_num(outcome.best[primary] - outcome.baseline[primary], '+')})")
    serving = outcome.serving
    if serving is not None:
        print(f"serving adapter not compared: {serving.note}" if serving.note
              else f"(serving adapter: run {serving.run_id}, active when this run ended)")


def print_outcome(outcome: RunOutcome) -> None:
    if outcome.error:
        print(f"run {outcome.run_id} failed: {outcome.error}")
    print(f"\nrun {outcome.run_id}: {outcome.status} after {outcome.steps} steps in {outcome.wall_s:.1f}s "
          f"({outcome.tokens_per_s:,.0f} training tokens/s)")
    for alarm in outcome.alarms:
        print(f"alarm: {alarm}")
    if outcome.baseline:
        if outcome.candidates_note:
            print(outcome.candidates_note)
        print_results_table(outcome)
    if outcome.decision is not None:
        verdict = "PROMOTED" if outcome.decision.promote else "not promoted"
        print(f"promotion: {verdict} — {'; '.join(outcome.decision.reasons)}")


def prepare(config: AppConfig) -> TrainingPlan:
    """The run's plan; bad input (data, model, settings) as a UserError."""
    from trainers.errors import DataError
    from trainers.run_loop import prepare_plan

    with user_errors():
        try:
            return prepare_plan(config)
        except (DataError, ValueError) as exc:
            raise UserError(str(exc)) from None


async def _run(args: argparse.Namespace, config: AppConfig) -> int:
    from trainers.distributed import join_world, leave_world
    from trainers.world import local_device

    plan = await asyncio.to_thread(prepare, config)
    try:
        world = await asyncio.to_thread(join_world, plan.backend, plan.device, config.train.collective_timeout_s)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    plan.device = local_device(plan.device, world)
    cancel = threading.Event()
    loop = asyncio.get_running_loop()
    try:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            # Rank 0 leads a data-parallel run: Ctrl-C reaches every rank, and the others keep going until
            # rank 0 has paused the run and says stop. SIGTERM (their launcher's, when a rank died) ends them.
            loop.add_signal_handler(signal.SIGINT, cancel.set if world.is_main else (lambda: None))
            if world.is_main:
                loop.add_signal_handler(signal.SIGTERM, cancel.set)
        if not world.is_main:
            return await asyncio.to_thread(_follow, plan, world)
        async with open_store(args, config) as store:
            if args.resume:
                await _check_resumable(store, args.resume, config.train.kind)
            outcome = await _train_or_refuse(config, store, plan, cancel, args.resume, world)
        if world.size > 1 and outcome.status == "interrupted":
            # A peer is gone and a thread may sit in its collective for good (MLX's ring has no timeout):
            # the run is recorded, so leave without joining threads or tearing down the group.
            print_outcome(outcome)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(EXIT_CODES.get(outcome.status, 1))
    finally:
        leave_world(world)
    print_outcome(outcome)
    return EXIT_CODES.get(outcome.status, 1)


def _follow(plan: TrainingPlan, world: World) -> int:
    """A non-zero rank: train until rank 0 stops (0), or exit 1 when a peer is lost (rank 0 records it)."""
    from trainers.rank_worker import follow
    from trainers.world import PeerLost

    try:
        follow(plan, world)
    except PeerLost:
        return 1
    return 0


async def _train_or_refuse(config: AppConfig, store: RunStore, plan: TrainingPlan, cancel: threading.Event,
                           resume: str | None, world: World) -> RunOutcome:
    """run_training, with a refused resume (changed settings, another live owner) as a UserError."""
    from store import StoreError
    from trainers.resume_check import ResumeRefused
    from trainers.run_loop import run_training

    try:
        with ProgressPrinter() as progress:
            return await run_training(config, store, plan, cancel, resume_run_id=resume, on_progress=progress,
                                      world=world)
    except ResumeRefused as exc:
        raise UserError(str(exc)) from None
    except StoreError as exc:  # resume: another owner; a run: its failure could not be recorded (exit 1)
        raise UserError(str(exc), exit_code=2 if resume else 1) from None


async def _launched_exit_code(args: argparse.Namespace, config: AppConfig, since: float, returncode: int) -> int:
    """The exit code of a launched run, from its status in the store: the launchers do not pass rank
    0's code on (torchrun turns any failure into 1, mlx.launch returns 0). No run: the launcher's code."""
    async with open_store(args, config) as store:
        if args.resume:
            status: str | None = (await store.get_run(args.resume)).status
        else:
            mine = [r for r in await store.list_runs(config.train.kind)
                    if r.created_at >= since and r.name == config.train.name]
            status = mine[0].status if mine else None
    if status is None:
        return returncode or 1
    return EXIT_CODES.get(status, 1)


async def check_resume_run(args: argparse.Namespace, config: AppConfig) -> None:
    """`--resume RUN_ID` names a run of this kind that can be resumed, or a UserError."""
    async with open_store(args, config) as store:
        await _check_resumable(store, args.resume, config.train.kind)


async def _check_resumable(store: RunStore, run_id: str, kind: str) -> None:
    from store import StoreError

    try:
        run = await store.get_run(run_id)
    except StoreError as exc:
        raise UserError(str(exc)) from None
    if run.kind != kind:
        raise UserError(f"run {run_id} is a {run.kind} run; resume it with a [train].kind = {run.kind!r} config")
    if run.status == "running":
        raise UserError(f"run {run_id} is running under process {run.owner_pid} on {run.owner_host}; "
                        "only interrupted or cancelled runs can be resumed")
    if run.status not in RESUMABLE:
        raise UserError(f"run {run_id} is {run.status}; only interrupted or cancelled runs can be resumed")


def run_headless(args: argparse.Namespace) -> int:
    """Entry point for `--run [config.toml]`: in this process, or `--nproc N` processes (data parallel)."""
    from trainers.world import env_rank, launched_by

    if args.config and args.run and Path(args.config) != Path(args.run):
        raise UserError("give the configuration once: --run CONFIG or --config CONFIG")
    if args.nproc is not None and args.nproc < 1:
        raise UserError(f"--nproc must be at least 1 (got {args.nproc})")
    args.config = args.run or args.config
    config = config_from_args(args)
    if args.nproc is not None and args.nproc > 1 and launched_by() is None:
        from ragweld_tui.commands.multiproc import launch

        plan = prepare(config)  # bad input: one line and exit 2 here, before any process starts
        if args.resume:
            asyncio.run(check_resume_run(args, config))
        since = time.time()
        returncode = launch(args, plan.backend, plan.device)
        return asyncio.run(_launched_exit_code(args, config, since, returncode))
    if env_rank() != 0:  # the other ranks of a data-parallel run are silent: rank 0 reports
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            return asyncio.run(_run(args, config))
    return asyncio.run(_run(args, config))


async def _promote(args: argparse.Namespace) -> int:
    from store import StoreError
    from trainers.promotion import PromotionRefused, promote

    config = config_from_args(args)
    async with open_store(args, config) as store:
        try:
            decision = await promote(store, config, args.run_id, force=args.force)
        except (PromotionRefused, StoreError) as exc:
            raise UserError(f"not promoted: {exc}") from None
    print(f"promoted {args.run_id}: {'; '.join(decision.reasons)}")
    return 0


async def _rollback(args: argparse.Namespace) -> int:
    from trainers.promotion import PromotionRefused, rollback

    config = config_from_args(args)
    async with open_store(args, config) as store:
        try:
            active = await rollback(store, config, args.kind)
        except PromotionRefused as exc:
            raise UserError(str(exc)) from None
    print(f"active {args.kind} adapter: {active or 'none (base model)'}")
    return 0
