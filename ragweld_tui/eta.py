"""Time left in a run, from its steady-state step time (the HUD and the headless bar share it).

Dividing the elapsed time by the steps done overestimates badly early on: the first steps pay for
compilation, allocation and caches, and the elapsed time also holds the base model's evaluation
and every dev evaluation since. The median of the recent training-step durations, skipping the
first steps, is what the remaining steps will cost.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

WARMUP_STEPS = 3  # the first steps (compilation, allocator, caches) are not what later steps cost
WINDOW = 20  # recent steps the median is taken over: follows a change of pace, shrugs off one slow step


def steady_step_seconds(durations: Sequence[tuple[int, float]], warmup: int = WARMUP_STEPS,
                        window: int = WINDOW) -> float | None:
    """The median duration of the last `window` (step, seconds) pairs after the warm-up steps.

    Falls back to the warm-up steps themselves when nothing else is known yet.
    """
    usable = [(s, d) for s, d in durations if d > 0]
    steady = [d for s, d in usable if s > warmup] or [d for _, d in usable]
    return statistics.median(steady[-window:]) if steady else None


def steady_eta(durations: Sequence[tuple[int, float]], step: int | None, max_steps: int | None) -> float | None:
    """Seconds left: the steady step time × the steps still to run (None when unknown)."""
    if step is None or not max_steps:
        return None
    per_step = steady_step_seconds(durations)
    return None if per_step is None else per_step * max(0, max_steps - step)


def early_stop_note(status: str, step: int | None, max_steps: int | None, alarm: bool) -> str:
    """Why a finished run ended before `max_steps` ("" when it ran them all, is running or was stopped by hand)."""
    if step is None or not max_steps or step >= max_steps:
        return ""
    if status == "failed" and alarm:
        return "stopped by an alarm"
    return "stopped early" if status == "completed" else ""
