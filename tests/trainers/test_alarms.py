"""Training alarms (collapse, below baseline, divergence) as pure checks, then through `--run`:
the typed event, the run's mark, the printed line, `stop_on_alarm`; and early stopping."""

from __future__ import annotations

from pathlib import Path

from trainers.settings import TrainConfig
from store import AlarmEvent, LogEvent
from tests.trainers.run_helpers import run_cli, store_runs
from tests.trainers.verdict_helpers import read_store, write_run_config
from trainers.alarms import AlarmState, check_divergence, check_evaluation
from trainers.evaluation import Evaluation

TRAIN = TrainConfig(alarm_collapse_spread=1e-4, alarm_below_baseline_evals=2, alarm_divergence_factor=3.0)


def test_collapse_is_raised_once_when_every_score_is_alike() -> None:
    state = AlarmState()
    healthy = Evaluation({"mrr@10": 0.5}, spread=0.3)
    assert check_evaluation(state, healthy, {"mrr@10": 0.4}, "mrr@10", TRAIN) == []
    collapsed = Evaluation({"mrr@10": 0.5}, spread=2e-6)
    (alarm,) = check_evaluation(state, collapsed, {"mrr@10": 0.4}, "mrr@10", TRAIN)
    assert alarm.kind == "score_collapse" and alarm.value == 2e-6 and "same score" in alarm.message
    assert check_evaluation(state, collapsed, {"mrr@10": 0.4}, "mrr@10", TRAIN) == []  # once per run
    assert isinstance(alarm.event(), AlarmEvent)


def test_below_baseline_needs_consecutive_evaluations_and_respects_the_goal() -> None:
    state = AlarmState()
    below, above = Evaluation({"mrr@10": 0.3}), Evaluation({"mrr@10": 0.5})
    assert check_evaluation(state, below, {"mrr@10": 0.4}, "mrr@10", TRAIN) == []
    assert check_evaluation(state, above, {"mrr@10": 0.4}, "mrr@10", TRAIN) == []  # the streak restarts
    assert check_evaluation(state, below, {"mrr@10": 0.4}, "mrr@10", TRAIN) == []
    (alarm,) = check_evaluation(state, below, {"mrr@10": 0.4}, "mrr@10", TRAIN)
    assert alarm.kind == "below_baseline" and "for 2 evaluations" in alarm.message
    # eval_loss is minimized: a higher loss than the base's is the bad direction.
    state = AlarmState()
    for _ in range(2):
        raised = check_evaluation(state, Evaluation({"eval_loss": 3.0}), {"eval_loss": 2.0}, "eval_loss", TRAIN)
    assert [a.kind for a in raised] == ["below_baseline"]


def test_divergence_is_a_rise_far_above_the_lowest_loss_and_the_start() -> None:
    state = AlarmState()
    raised = []
    for step, loss in enumerate([1.4, 1.0, 0.5, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.06, 0.07], start=1):
        raised += check_divergence(state, loss, step, TRAIN)
    assert raised == []  # noise at a low loss is not divergence: the loss is still below where it started
    for step in range(13, 60):
        raised += check_divergence(state, 50.0, step, TRAIN)
    (alarm,) = raised
    assert alarm.kind == "loss_divergence" and "diverging" in alarm.message and alarm.value > alarm.threshold


def test_an_alarm_is_recorded_marked_printed_and_can_stop_the_run(tmp_path: Path) -> None:
    # A threshold no real spread reaches makes the collapse alarm fire at the first evaluation.
    config = write_run_config(tmp_path, "alarm", max_steps=6, eval_every=2, checkpoint_every=2,
                              alarm_collapse_spread=1e6, auto_promote=False)
    result = run_cli("--run", str(config))
    assert result.returncode == 0, result.stderr
    assert "ALARM: score collapse" in result.stderr and "alarm: score collapse" in result.stdout
    (run,) = store_runs(tmp_path / "db.sqlite")
    assert run.status == "completed" and run.alarm is not None and run.alarm.startswith("score collapse")
    _, events, _ = read_store(tmp_path / "db.sqlite", run.id)
    assert [e.kind for e in events if isinstance(e, AlarmEvent)] == ["score_collapse"]

    stopping = write_run_config(tmp_path, "stop", max_steps=6, eval_every=2, checkpoint_every=2,
                                alarm_collapse_spread=1e6, stop_on_alarm=True)
    stopped = run_cli("--run", str(stopping))
    assert stopped.returncode == 1 and "Traceback" not in stopped.stderr
    assert "stopped by alarm at step 2 ([train].stop_on_alarm = true): score collapse" in stopped.stdout
    failed = next(r for r in store_runs(tmp_path / "db.sqlite") if r.id != run.id)
    assert failed.status == "failed" and "stopped by alarm" in failed.error and not failed.promoted


def test_early_stopping_ends_a_run_that_stops_improving(tmp_path: Path) -> None:
    # A learning rate too small to move any score: the first evaluation is the best, the next is not.
    config = write_run_config(tmp_path, "early", max_steps=20, eval_every=2, checkpoint_every=2,
                              learning_rate=1e-12, early_stopping_patience=1, auto_promote=False)
    result = run_cli("--run", str(config))
    assert result.returncode == 0, result.stderr
    (run,) = store_runs(tmp_path / "db.sqlite")
    _, events, _ = read_store(tmp_path / "db.sqlite", run.id)
    stops = [e.message for e in events if isinstance(e, LogEvent) and e.message.startswith("early stop")]
    assert stops == ["early stop at step 4: no mrr@10 improvement in 1 evaluations"]
    assert run.status == "completed" and "completed after 4 steps" in result.stdout
