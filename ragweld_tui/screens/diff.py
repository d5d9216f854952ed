"""The diff of two runs (pushed): config differences and metric deltas that respect maximize/minimize."""

from __future__ import annotations

import json

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from ragweld_tui.format import config_diff, format_value, metric_deltas, run_label
from ragweld_tui.messages import DiffData, DiffLoaded, StoreFailed
from ragweld_tui.screens.base import AppScreen
from ragweld_tui.widgets.key_bar import KeyBar
from ragweld_tui.widgets.nav import NavTable
from store import RunRecord, StoreError


def _cell(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return format_value(value)
    return value if isinstance(value, str) else json.dumps(value)


def summary_metrics(run: RunRecord, latest: dict[str, float]) -> dict[str, float]:
    """Latest metrics plus the run's `best/` and `baseline/` primary metric."""
    out = dict(latest)
    if run.primary_metric:
        for name, value in (("best", run.best), ("baseline", run.baseline)):
            if value is not None:
                out[f"{name}/{run.primary_metric}"] = value
    return out


class DiffScreen(AppScreen[None]):
    """Run A against run B: what changed in the config, and which metrics got better or worse."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("w", "swap", "Swap A/B"),
        Binding("tab", "focus_next", "Next table", show=False),
    ]

    def __init__(self, a: str, b: str) -> None:
        super().__init__()
        self.a, self.b = a, b

    def compose(self) -> ComposeResult:
        yield Static(f"Diff {self.a} → {self.b}", id="diff-title", classes="view-title", markup=False)
        with Vertical(id="diff-body"):
            yield Static("Metrics (Δ = B − A; ▲ better, ▼ worse for the metric's goal)", classes="section-title")
            yield NavTable[Text | str](id="metrics-diff", cursor_type="row")
            yield Static("Config differences", classes="section-title")
            yield NavTable[str](id="config-diff", cursor_type="row")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one("#metrics-diff", DataTable).add_columns("Metric", "Goal", "A", "B", "Δ", "")
        self.query_one("#config-diff", DataTable).add_columns("Setting", "A", "B")
        self._load()

    @work(exclusive=True, group="diff")
    async def _load(self) -> None:
        """Worker: read both runs and their latest metrics."""
        try:
            store = await self.ragweld_app.get_store()
            a, b = await store.get_run(self.a), await store.get_run(self.b)
            data = DiffData(a, b, await store.latest_metrics(self.a), await store.latest_metrics(self.b))
        except StoreError as exc:
            self.post_message(StoreFailed(str(exc)))
            return
        self.post_message(DiffLoaded(data))

    @on(StoreFailed)
    def _failed(self, message: StoreFailed) -> None:
        self.notify(message.error, severity="error")

    @on(DiffLoaded)
    def _loaded(self, message: DiffLoaded) -> None:
        d = message.data
        self.query_one("#diff-title", Static).update(f"A {run_label(d.a)}  →  B {run_label(d.b)}")
        metrics = summary_metrics(d.a, d.metrics_a), summary_metrics(d.b, d.metrics_b)
        table = self.query_one("#metrics-diff", DataTable)
        table.clear()
        for delta in metric_deltas(metrics[0], metrics[1], d.b.primary_metric or d.a.primary_metric, d.b.goal):
            mark = Text("=", style="dim") if delta.delta == 0 else Text("")
            if delta.better is True:
                mark = Text("▲ better", style="bold green")
            elif delta.better is False:
                mark = Text("▼ worse", style="bold red")
            shown = "—" if delta.delta is None else f"{delta.delta:+.4g}"
            table.add_row(delta.key, delta.goal[:3], format_value(delta.a), format_value(delta.b), shown, mark)
        config = self.query_one("#config-diff", DataTable)
        config.clear()
        for key, va, vb in config_diff(d.a.config, d.b.config):
            config.add_row(key, _cell(va), _cell(vb))
        if config.row_count == 0:
            config.add_row("(identical)", "", "")

    def action_swap(self) -> None:
        """Swap A and B and reload."""
        self.a, self.b = self.b, self.a
        self._load()
