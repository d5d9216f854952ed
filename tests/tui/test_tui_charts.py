"""Pilot tests of the HUD's charts and ETA and of the scatter (axes, legends, markers, resumed runs)."""

from __future__ import annotations

import re
from pathlib import Path

from ragweld_tui.eta import early_stop_note, steady_eta, steady_step_seconds
from ragweld_tui.widgets.charts import LossChart, step_ticks
from store import MetricsEvent, RunStore, TelemetryEvent
from tests.tui.conftest import fixed_app, screen_text, settle


async def press(pilot, *keys: str) -> None:
    for key in keys:
        await pilot.press(key)
        await settle(pilot)


def test_step_ticks_are_round_integers() -> None:
    assert step_ticks(1, 120, 5) == [25, 50, 75, 100]
    assert step_ticks(1, 120, 6) == [20, 40, 60, 80, 100, 120]
    assert step_ticks(0, 3, 6) == [0, 1, 2, 3]
    assert step_ticks(5, 5, 4) == [5]
    assert all(isinstance(t, int) for t in step_ticks(1, 10**6, 6))


def test_eta_uses_the_steady_step_time() -> None:
    # Warm-up steps of 30 s and an evaluation folded into nothing: the median of the steady steps rules.
    durations = [(1, 30.0), (2, 30.0), (3, 30.0)] + [(s, 1.0) for s in range(4, 11)] + [(11, 9.0)]
    assert steady_step_seconds(durations) == 1.0
    assert steady_eta(durations, 11, 100) == 89.0
    assert steady_eta([(1, 30.0)], 1, 11) == 300.0  # only warm-up known yet: better than nothing
    assert steady_eta([], 5, 100) is None and steady_eta(durations, None, 100) is None
    assert early_stop_note("completed", 60, 120, alarm=False) == "stopped early"
    assert early_stop_note("failed", 12, 200, alarm=True) == "stopped by an alarm"
    assert early_stop_note("completed", 120, 120, alarm=False) == early_stop_note("running", 5, 10, False) == ""


async def test_hud_chart_index_step_axis_and_legend(fixture_db: Path, app_config) -> None:
    app = fixed_app(fixture_db, app_config)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press(pilot, "down", "down", "down", "2")
        text = screen_text(app)
        assert "1/5 train loss · • raw  ⠤ smoothed" in text, text
        assert re.search(r"^ +step$", text, re.M) and re.search(r"^ +25 +50 +75 +100$", text, re.M), text
        assert "30.8" not in text and "raw" not in text.split("smoothed", 1)[1]  # the legend is off the plot
        await press(pilot, "v")
        assert "2/5 eval mrr@10 · ⠤ tuned  ▄ baseline" in screen_text(app)
        await press(pilot, "v", "v", "v", "v")
        assert "1/5 train loss" in screen_text(app)
        await pilot.resize_terminal(160, 48)
        await settle(pilot)
        text = screen_text(app)
        assert "train loss · • raw" in text and "1/5" not in text and "eval mrr@10" in text


async def _resumed_run(db: Path) -> str:
    """A running run of 100 steps that re-emitted steps 8-10 after a resume, with slow warm-up steps."""
    store = await RunStore.open(db)
    try:
        run = await store.create_run("reranker", "resumed", "torch", "embedded:tiny-qwen3-reranker",
                                     {"train": {"max_steps": 100}}, None, "mrr@10")
        await store.set_status(run, "running")

        def step_events(step: int, loss: float) -> list:
            seconds = 30.0 if step <= 3 else 1.0
            return [(MetricsEvent(values={"train/loss": loss, "train/step_time_s": seconds}), step),
                    (TelemetryEvent(proj_x=float(step), proj_y=float(step) - 5.0, loss=loss), step)]

        events = [e for step in range(1, 11) for e in step_events(step, 2.0 - step / 10)]
        events += [e for step in range(8, 11) for e in step_events(step, 5.0)]  # the resumed copies win
        await store.append_events(run, events)
        return run
    finally:
        await store.close()


async def test_hud_draws_each_step_once_and_a_steady_eta(tmp_path: Path, app_config) -> None:
    db = tmp_path / "store.sqlite"
    await _resumed_run(db)
    store = await RunStore.open(db)
    try:  # the runs list reads the last step times of running runs; a resumed step counts once, its latest
        (progress,) = (await store.progress(recent_steps=5)).values()
        assert progress.step == 10 and progress.step_times == ((8, 1.0), (9, 1.0), (10, 1.0))
        assert (await store.progress()).popitem()[1].step_times == ()
    finally:
        await store.close()
    app = fixed_app(db, app_config)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert "10/100 10%" in screen_text(app) and "1m30s" in screen_text(app)  # the runs list agrees
        await press(pilot, "2")
        chart = app.screen.query_one(LossChart)
        assert chart.main[0] == [float(s) for s in range(1, 11)]
        assert chart.main[1][-3:] == [5.0, 5.0, 5.0]
        # 90 steps left at the steady 1 s a step; elapsed / steps would have said far more.
        assert "ETA 1m30s" in screen_text(app), screen_text(app)


async def test_hud_says_a_run_stopped_early(fixture_db: Path, app_config) -> None:
    app = fixed_app(fixture_db, app_config)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press(pilot, "down", "2")  # the run the alarm stopped at step 12 of 200
        assert "6% failed in 1m05s · stopped by an alarm" in screen_text(app)
        await press(pilot, "1", "down", "down", "2")  # a run that ran all its steps says nothing more
        assert re.search(r"100% completed in 12m34s$", screen_text(app), re.M)


async def _run_ending_top_left(db: Path) -> str:
    """A trajectory that ends in the plot's top-left corner (where plotext drew its legend) around 0."""
    store = await RunStore.open(db)
    try:
        run = await store.create_run("reranker", "top-left", "torch", "embedded:tiny-qwen3-reranker",
                                     {"train": {"max_steps": 40}}, None, "mrr@10")
        await store.set_status(run, "running")
        events = [(TelemetryEvent(proj_x=0.002 - step / 10000, proj_y=-0.002 + step / 10000, loss=1.0 + (step == 20)),
                   step) for step in range(1, 41)]
        await store.append_events(run, events)
        return run
    finally:
        await store.close()


def plot_rows(text: str) -> list[str]:
    """The rows inside the scatter's frame."""
    return [row for row in text.splitlines() if re.match(r"^ *[-\d.]*[│┤]", row)]


async def test_scatter_legend_leaves_the_path_end_visible(tmp_path: Path, app_config) -> None:
    db = tmp_path / "store.sqlite"
    await _run_ending_top_left(db)
    for size in ((80, 24), (160, 48)):
        app = fixed_app(db, app_config)
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            await press(pilot, "3")
            text = screen_text(app)
            rows = plot_rows(text)
            assert "@" in rows[0] or "@" in rows[1], text  # the current point, in the top-left corner
            assert not any(word in row for row in rows for word in ("current", "start", "lowest", "best")), text
            assert re.search(r"^↑ proj_y +proj_x →$", text, re.M), text
            assert "s start 1 · * lowest loss 1 · @ current 1" in text and "best" not in text
            assert not re.search(r"-0(\.0+)?(?![.\d])", text) and re.search(r"^ *0\.0+┤", text, re.M), text
