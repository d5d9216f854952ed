"""One learning-reranker run end to end: the shared run loop with the reranker's plan.

The loop itself (baseline, steps, evals, checkpoints, resume, cancel, gate) is `trainers.run_loop`,
shared with the agent; this module keeps the reranker's entry point and re-exports the loop's types.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from ragweld_tui.config import AppConfig
from store import RunStore
from trainers.run_loop import ProgressUpdate, RunOutcome, TrainingFailed, run_training
from trainers.run_plan import RunPlan

__all__ = ["ProgressUpdate", "RunOutcome", "TrainingFailed", "run_reranker"]


async def run_reranker(config: AppConfig, store: RunStore, cancel: threading.Event | None = None,
                       resume_run_id: str | None = None, plan: RunPlan | None = None,
                       on_progress: Callable[[ProgressUpdate], None] | None = None) -> RunOutcome:
    """Run (or resume) a reranker training; returns the outcome, never leaves the run `running`."""
    plan = plan or await asyncio.to_thread(RunPlan.prepare, config)
    return await run_training(config, store, plan, cancel, resume_run_id, on_progress)
