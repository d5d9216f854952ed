"""The gradient-descent scatter (mode `scatter`): the run's proj_x/proj_y trajectory, live.

Telemetry events are tailed by sequence number with raw (undecoded) reads, only the telemetry rows
are parsed, and at most a few pages are read per poll so a long backlog streams in without ever
holding the event loop.
"""

from __future__ import annotations

import json

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from ragweld_tui.messages import TrajectoryArrived
from ragweld_tui.screens.base import AppScreen
from ragweld_tui.screens.navigation import pick_run
from ragweld_tui.screens.metrics import default_run
from ragweld_tui.widgets.key_bar import KeyBar
from ragweld_tui.widgets.status_line import StatusLine
from ragweld_tui.widgets.trajectory import Point, TrajectoryChart
from store import StoreError

PAGE = 5000
PAGES_PER_POLL = 4


def telemetry_point(payload: str) -> Point | None:
    """(proj_x, proj_y, loss) from a stored telemetry payload (non-finite values come back as floats)."""
    try:
        data = json.loads(payload)
        return float(data["proj_x"]), float(data["proj_y"]), float(data["loss"])
    except (ValueError, KeyError, TypeError):
        return None


class ScatterScreen(AppScreen[None]):
    """The trajectory of the selected run (or the newest running one), coloured by loss."""

    HELP = ("Each point is one training step: the LoRA weights projected on two fixed random directions; "
            "colour is the loss.")

    BINDINGS = [Binding("r", "pick_run", "Run"), Binding("e", "reload", "Reload")]

    def __init__(self) -> None:
        super().__init__()
        self._tail_run: str | None = None  # worker-owned tail cursor
        self._seq = 0
        self.run_id: str | None = None

    def compose(self) -> ComposeResult:
        yield StatusLine("Gradient descent", id="scatter-title", classes="view-title")
        yield TrajectoryChart(id="trajectory")
        yield Static("s start · * lowest loss · @ current", id="scatter-legend", classes="detail-line",
                     markup=False)
        yield KeyBar()

    def on_mount(self) -> None:
        self.watch(self.app, "selected_run", lambda _: self.request_refresh(), init=False)
        self.set_interval(self.ragweld_app.poll_interval_s, self.request_refresh)
        self.request_refresh()

    def on_screen_resume(self) -> None:
        self.request_refresh()

    def request_refresh(self) -> None:
        """Tail new telemetry (only while visible)."""
        if self.is_current or self.run_id is None:
            self._load(self.ragweld_app.selected_run)

    @work(exclusive=True, group="scatter-poll")
    async def _load(self, run_id: str | None) -> None:
        """Worker: read telemetry after the last seq seen and post the new points."""
        try:
            store = await self.ragweld_app.get_store()
            run_id = run_id or await default_run(store)
            if run_id is None:
                self.post_message(TrajectoryArrived(None, [], reset=True))
                return
            reset = run_id != self._tail_run
            if reset:
                self._tail_run, self._seq = run_id, 0
            run = await store.get_run(run_id)
            points: list[Point] = []
            for _ in range(PAGES_PER_POLL):
                rows = await store.raw_events_since(run_id, self._seq, limit=PAGE)
                if not rows:
                    break
                self._seq = rows[-1].seq
                points.extend(p for r in rows if r.type == "telemetry" and (p := telemetry_point(r.payload)))
                if len(rows) < PAGE:
                    break
        except StoreError:
            self._tail_run = None
            self.post_message(TrajectoryArrived(None, [], reset=True))
            return
        self.post_message(TrajectoryArrived(run, points, reset))

    @on(TrajectoryArrived)
    def _arrived(self, message: TrajectoryArrived) -> None:
        chart = self.query_one(TrajectoryChart)
        run = message.run
        self.run_id = run.id if run else None
        title = "Gradient descent · " + ("no run" if run is None else f"{run.name} · {run.id} · {run.status}")
        self.query_one("#scatter-title", StatusLine).show(title)
        if message.reset:
            chart.reset("trajectory" if run is None else f"{run.name}")
        if message.reset or message.points:
            chart.add_points(message.points)
            self.query_one("#scatter-legend", Static).update(chart.legend())

    def action_reload(self) -> None:
        """Re-read the whole trajectory."""
        self._tail_run = None
        self.request_refresh()

    async def action_pick_run(self) -> None:
        """Choose the run whose trajectory is shown."""
        try:
            runs = await (await self.ragweld_app.get_store()).list_runs()
        except StoreError as exc:
            self.notify(str(exc), severity="error")
            return

        def follow(run_id: str) -> None:
            self.ragweld_app.selected_run = run_id

        pick_run(self, runs, "Show the trajectory of…", follow, exclude=self.run_id)
