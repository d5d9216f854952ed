"""Training alarms: signs that a model is going bad while it trains, before the run's verdict.

- score collapse: at an evaluation, the dev scores of each query hardly differ (mean per-query
  standard deviation of the log-odds below `[train].alarm_collapse_spread`): the ranking is noise.
- below baseline: the dev metric has been worse than the base model's for
  `[train].alarm_below_baseline_evals` evaluations in a row.
- loss divergence: the smoothed training loss is above `[train].alarm_divergence_factor` × its
  lowest value so far *and* above where it started, after the first 10 steps.

Each kind is raised once per run (its state is saved in checkpoints, so a resumed run neither
repeats nor forgets an alarm). Pure functions over a small state: the run loop emits the events.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trainers.settings import TrainConfig
from store import AlarmEvent
from store.events import AlarmKind
from trainers.evaluation import Evaluation
from trainers.metrics import improvement

LOSS_SMOOTHING = 0.1  # EMA weight of the newest loss
MIN_STEPS_FOR_DIVERGENCE = 10


@dataclass(frozen=True)
class Alarm:
    """One raised alarm: its kind, a sentence for people, what was measured and the limit."""

    kind: AlarmKind
    message: str
    value: float
    threshold: float

    def event(self) -> AlarmEvent:
        return AlarmEvent(kind=self.kind, message=self.message, value=self.value, threshold=self.threshold)


@dataclass
class AlarmState:
    """What the checks remember between steps (JSON-serialisable, kept in the checkpoint)."""

    raised: list[str] = field(default_factory=list)
    loss_ema: float | None = None
    loss_ema_min: float | None = None
    loss_start: float | None = None
    below_baseline_streak: int = 0


def _raise(state: AlarmState, alarm: Alarm) -> list[Alarm]:
    if alarm.kind in state.raised:
        return []
    state.raised.append(alarm.kind)
    return [alarm]


def check_divergence(state: AlarmState, loss: float, step: int, train: TrainConfig) -> list[Alarm]:
    """Update the smoothed loss with this step's loss; an alarm when it diverges (see the module docstring)."""
    ema = loss if state.loss_ema is None else (1 - LOSS_SMOOTHING) * state.loss_ema + LOSS_SMOOTHING * loss
    state.loss_ema = ema
    state.loss_start = loss if state.loss_start is None else state.loss_start
    state.loss_ema_min = ema if state.loss_ema_min is None else min(state.loss_ema_min, ema)
    limit = train.alarm_divergence_factor * state.loss_ema_min
    if step < MIN_STEPS_FOR_DIVERGENCE or ema <= limit or ema <= state.loss_start:
        return []
    return _raise(state, Alarm("loss_divergence",
                               f"loss diverging at step {step}: smoothed loss {ema:.4g} is "
                               f"{ema / state.loss_ema_min:.1f}x its lowest ({state.loss_ema_min:.4g}) and above "
                               f"where it started ({state.loss_start:.4g})", ema, limit))


def check_evaluation(state: AlarmState, evaluation: Evaluation, baseline: dict[str, float], metric: str,
                     train: TrainConfig) -> list[Alarm]:
    """Alarms from one dev evaluation: score collapse and a metric stuck below the baseline."""
    alarms: list[Alarm] = []
    spread = evaluation.spread
    if spread is not None and spread < train.alarm_collapse_spread:
        alarms += _raise(state, Alarm("score_collapse",
                                      f"score collapse: dev scores differ by {spread:.2e} on average (std of the "
                                      f"log-odds within a query), under {train.alarm_collapse_spread:g}: every "
                                      "candidate gets about the same score", spread, train.alarm_collapse_spread))
    value, base = evaluation.metrics.get(metric), baseline.get(metric)
    if value is None or base is None:
        return alarms
    state.below_baseline_streak = state.below_baseline_streak + 1 if improvement(metric, base, value) < 0 else 0
    if state.below_baseline_streak >= train.alarm_below_baseline_evals:
        alarms += _raise(state, Alarm("below_baseline",
                                      f"dev {metric} {value:.4f} has been below the baseline {base:.4f} for "
                                      f"{state.below_baseline_streak} evaluations in a row", value, base))
    return alarms
