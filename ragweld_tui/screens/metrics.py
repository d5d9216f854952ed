"""The metrics HUD (mode `metrics`): live charts, progress with ETA, and a compact summary.

Series come from `RunStore.series(run, key, max_points)`, downsampled in SQL, so a run with a
million points costs the same per refresh as a short one. A refresh is skipped when the run's last
seq has not moved. In a small pane (80×24) one chart is shown at a time (`v` cycles).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal
from textual.widgets import ProgressBar

from ragweld_tui.format import (
    ALARM_MARK,
    ema,
    format_elapsed,
    format_value,
    max_steps_of,
    resolve_chart_keys,
    run_elapsed,
)
from ragweld_tui.eta import early_stop_note, steady_eta
from ragweld_tui.messages import HudLoaded, HudSnapshot
from ragweld_tui.screens.base import AppScreen
from ragweld_tui.screens.navigation import pick_run
from ragweld_tui.widgets.charts import (
    EvalChart,
    GradNormChart,
    LearningRateChart,
    LossChart,
    SeriesChart,
    ThroughputChart,
    to_line,
)
from ragweld_tui.widgets.key_bar import KeyBar
from ragweld_tui.widgets.status_line import StatusLine
from store import RunRecord, RunStore, SeriesPoint, StoreError
from store.reads import STEP_TIME_KEY

SERIES_POINTS = 240  # ~2 braille dots per column of the widest chart; plotext's cost grows with points
CHART_IDS = ("chart-loss", "chart-eval", "chart-lr", "chart-grad", "chart-tokens")
WIDE, TALL = 120, 36  # the breakpoints above which every chart is shown
HUD_INTERVAL_S = 1.0  # charts need no more than one refresh a second


async def default_run(store: RunStore) -> str | None:
    """The run a view follows when none is selected: the newest running run, else the newest run."""
    runs = await store.list_runs()
    chosen = next((r for r in runs if r.status == "running"), runs[0] if runs else None)
    return None if chosen is None else chosen.id


def last_step(points: list[SeriesPoint]) -> int | None:
    """The step of the newest point of a series."""
    return points[-1].step if points else None


def step_durations(s: HudSnapshot) -> list[tuple[int, float]]:
    """(step, seconds) of the recorded training-step times, one per step (the latest after a resume)."""
    by_step = {p.step: p.value for p in s.series.get("step_time", []) if p.step is not None}
    return sorted(by_step.items())


def time_left(s: HudSnapshot, step: int | None, total: int | None) -> str:
    """`ETA 1m02s` for a running run; how long a finished one took and whether it stopped early."""
    run = s.run
    if run is None:
        return ""
    elapsed = run_elapsed(run, s.now)
    if run.status == "running":
        return f"ETA {format_elapsed(steady_eta(step_durations(s), step, total))}"
    note = early_stop_note(run.status, step, total, bool(run.alarm))
    return f"{run.status} in {format_elapsed(elapsed)}" + (f" · {note}" if note else "")


def summary_text(s: HudSnapshot) -> str:
    """Two or three lines of the latest numbers (what the compact view shows instead of five charts)."""
    run = s.run
    if run is None:
        return "No run selected: pick one in the runs list (1) or press r."
    latest = s.latest
    loss = s.series.get("loss", [])
    smoothed = ema([p.mean if p.mean is not None else p.value for p in loss], 0.15)
    step = last_step(loss) or max((p[-1].step or 0 for p in s.series.values() if p), default=None)
    total = max_steps_of(run.config)
    parts = [f"step {step if step is not None else '—'}/{total or '?'}"]
    if "loss" in s.keys:
        parts.append(f"loss {format_value(latest.get(s.keys['loss']))}"
                     + (f" (ema {format_value(smoothed[-1])})" if smoothed else ""))
    metric = run.primary_metric or "metric"
    if "eval" in s.keys:
        parts.append(f"{metric} {format_value(latest.get(s.keys['eval']))}")
    parts.append(f"base {format_value(run.baseline)} best {format_value(run.best)}")
    line2 = []
    for role, label in (("lr", "lr"), ("grad_norm", "grad"), ("tokens", "tok/s")):
        if role in s.keys:
            line2.append(f"{label} {format_value(latest.get(s.keys[role]), 3)}")
    elapsed = run_elapsed(run, s.now)
    line2.append(f"elapsed {format_elapsed(elapsed)}")
    if run.status == "running":
        line2.append(time_left(s, step, total))
    text = " · ".join(parts) + "\n" + " · ".join(line2)
    if s.overlay is not None:
        text += f"\noverlay {s.overlay.name} ({s.overlay.id[-8:]}): best {format_value(s.overlay.best)}"
    return text


class MetricsScreen(AppScreen[None]):
    """Charts of the selected run (or the newest running one), refreshed every poll interval."""

    HELP = ("The HUD follows the run under the cursor in the runs list (or the newest running run). In a small "
            "pane one chart shows at a time: v cycles them. o overlays a second run on loss and eval.")

    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (36, "-tall")]
    BINDINGS = [
        Binding("r", "pick_run", "Run"),
        Binding("o", "overlay", "Overlay"),
        Binding("v", "next_chart", "Next chart"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.overlay_id: str | None = None
        self.shown_chart = 0
        self._cache: tuple[tuple[object, ...], HudSnapshot] | None = None  # worker-owned
        self._drawn: HudSnapshot | None = None

    def compose(self) -> ComposeResult:
        yield StatusLine("Metrics", id="hud-title", classes="view-title")
        yield StatusLine("", id="hud-alarm", classes="alarm-line")
        yield StatusLine("", id="hud-summary")
        with Horizontal(id="hud-progress-row"):
            yield ProgressBar(total=None, show_eta=False, id="hud-progress")
            yield StatusLine("", id="hud-eta")
        with Grid(id="charts"):
            yield LossChart(id="chart-loss", classes="chart -shown")
            yield EvalChart(id="chart-eval", classes="chart")
            yield LearningRateChart(id="chart-lr", classes="chart")
            yield GradNormChart(id="chart-grad", classes="chart")
            yield ThroughputChart(id="chart-tokens", classes="chart")
        yield KeyBar()

    def on_mount(self) -> None:
        self.watch(self.app, "selected_run", lambda _: self.request_refresh(), init=False)
        self.set_interval(max(self.ragweld_app.poll_interval_s, HUD_INTERVAL_S), self.request_refresh)
        self.request_refresh()

    def on_screen_resume(self) -> None:
        self.request_refresh()

    def request_refresh(self) -> None:
        """Read the latest series (only while visible)."""
        if self.is_current or self._drawn is None:
            self._load(self.ragweld_app.selected_run, self.overlay_id)

    async def _series(self, store: RunStore, run: RunRecord,
                      roles: tuple[str, ...] | None = None) -> tuple[dict[str, str], dict[str, list[SeriesPoint]]]:
        recorded = await store.metric_keys(run.id)
        keys = resolve_chart_keys(recorded, run.primary_metric)
        if roles is not None:
            keys = {k: v for k, v in keys.items() if k in roles}
        series = {role: await store.series(run.id, key, SERIES_POINTS) for role, key in keys.items()}
        if roles is None and STEP_TIME_KEY in recorded:
            series["step_time"] = await store.series(run.id, STEP_TIME_KEY, SERIES_POINTS)
        return keys, series

    @work(exclusive=True, group="hud-poll")
    async def _load(self, run_id: str | None, overlay_id: str | None) -> None:
        """Worker: read the run and, when its events moved on, its downsampled series."""
        try:
            store = await self.ragweld_app.get_store()
            run_id = run_id or await default_run(store)
            if run_id is None:
                self.post_message(HudLoaded(HudSnapshot(None)))
                return
            run = await store.get_run(run_id)
            overlay = await store.get_run(overlay_id) if overlay_id and overlay_id != run_id else None
            key = (run_id, await store.last_seq(run_id), overlay_id, overlay and await store.last_seq(overlay.id))
            now = self.ragweld_app.clock()
            if self._cache is not None and self._cache[0] == key:
                self.post_message(HudLoaded(dataclasses.replace(self._cache[1], run=run, overlay=overlay, now=now)))
                return
            keys, series = await self._series(store, run)
            o_keys, o_series = await self._series(store, overlay, ("loss", "eval")) if overlay else ({}, {})
            snapshot = HudSnapshot(run, series, keys, await store.latest_metrics(run_id), overlay, o_series, now)
        except StoreError:
            snapshot = HudSnapshot(None)
        self._cache = None if snapshot.run is None else (key, snapshot)
        self.post_message(HudLoaded(snapshot))

    @on(HudLoaded)
    def _loaded(self, message: HudLoaded) -> None:
        s = message.snapshot
        run = s.run
        title = "Metrics · no run" if run is None else f"Metrics · {run.name} · {run.id} · {run.status}"
        self.query_one("#hud-title", StatusLine).show(title)
        self._alarm(run)
        self.query_one("#hud-summary", StatusLine).show(summary_text(s))
        self._progress(s)
        drawn = self._drawn
        if drawn is None or s.series is not drawn.series or s.overlay_series is not drawn.overlay_series:
            self._draw_charts(s)
        self._drawn = s

    def _alarm(self, run: RunRecord | None) -> None:
        """The run's latest training alarm in a warning line; the line takes no room when there is none."""
        line = self.query_one("#hud-alarm", StatusLine)
        text = f"{ALARM_MARK} {run.alarm}" if run is not None and run.alarm else ""
        line.show(text)
        line.set_class(bool(text), "-active")

    def _progress(self, s: HudSnapshot) -> None:
        bar = self.query_one("#hud-progress", ProgressBar)
        run = s.run
        total = max_steps_of(run.config) if run else None
        step = last_step(s.series.get("loss", [])) if run else None
        bar.update(total=total, progress=float(step or 0))
        self.query_one("#hud-eta", StatusLine).show(time_left(s, step, total))

    def _draw_charts(self, s: HudSnapshot) -> None:
        """Hand each chart its data (each builds its text in a thread; see CachedPlot)."""
        other = s.overlay.name if s.overlay else ""
        compact = self.size.width < WIDE or self.size.height < TALL
        for k, chart_id in enumerate(CHART_IDS):
            self.query_one(f"#{chart_id}", SeriesChart).index = f"{k + 1}/{len(CHART_IDS)}" if compact else ""
        o_loss = to_line(s.overlay_series["loss"]) if "loss" in s.overlay_series else None
        o_eval = to_line(s.overlay_series["eval"]) if "eval" in s.overlay_series else None
        self.query_one(LossChart).set_loss(s.series.get("loss", []), o_loss, other)
        metric = (s.keys.get("eval") or "eval/metric").removeprefix("eval/")
        baseline = s.run.baseline if s.run is not None else None
        self.query_one(EvalChart).set_eval(metric, s.series.get("eval", []), baseline, o_eval, other)
        for chart_id, role in (("chart-lr", "lr"), ("chart-grad", "grad_norm"), ("chart-tokens", "tokens")):
            self.query_one(f"#{chart_id}", SeriesChart).set_data(to_line(s.series.get(role, [])))

    def on_resize(self) -> None:
        if self._drawn is not None:  # the chart index shows only in the compact layout
            self._draw_charts(self._drawn)

    def action_next_chart(self) -> None:
        """Show the next chart in the compact (one chart) layout."""
        self.query_one(f"#{CHART_IDS[self.shown_chart]}").remove_class("-shown")
        self.shown_chart = (self.shown_chart + 1) % len(CHART_IDS)
        self.query_one(f"#{CHART_IDS[self.shown_chart]}").add_class("-shown")

    async def action_pick_run(self) -> None:
        """Choose the run the HUD follows."""
        def follow(run_id: str) -> None:
            self.ragweld_app.selected_run = run_id

        await self._pick("Show metrics of…", follow)

    async def action_overlay(self) -> None:
        """Overlay a second run on the loss and eval charts (again to remove it)."""
        if self.overlay_id is not None:
            self.overlay_id = None
            self.request_refresh()
            return

        def chosen(run_id: str) -> None:
            self.overlay_id = run_id
            self.request_refresh()

        await self._pick("Overlay which run?", chosen)

    async def _pick(self, prompt: str, then: Callable[[str], None]) -> None:
        try:
            runs = await (await self.ragweld_app.get_store()).list_runs()
        except StoreError as exc:
            self.notify(str(exc), severity="error")
            return
        current = self._drawn.run.id if self._drawn and self._drawn.run else None
        pick_run(self, runs, prompt, then, exclude=current)

