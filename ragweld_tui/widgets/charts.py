"""The metrics HUD charts: one PlotextPlot subclass per chart, each drawing into its own `self.plt`.

Every chart keeps bounded buffers (the store already downsamples with `RunStore.series`, and the
buffers cap whatever arrives) and redraws with `replot()` = clear → plot (`draw()`) → refresh; the
plot text is built in a thread (see `CachedPlot`). The global `plotext` module is never used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ragweld_tui.format import ema
from ragweld_tui.widgets.cached_plot import CachedPlot
from store import SeriesPoint

MAX_POINTS = 1000
Line = tuple[list[float], list[float]]


def to_line(points: Sequence[SeriesPoint], use_mean: bool = False) -> Line:
    """(x, y) of finite points, x = step (seq when a point has no step), capped at MAX_POINTS.

    One point per step, the latest recorded: a resumed run may have written a step twice, and a
    chart that drew both would fold back on itself.
    """
    by_x: dict[float, float] = {}
    for p in points:
        y = p.mean if use_mean and p.mean is not None else p.value
        x = float(p.step if p.step is not None else p.seq)
        by_x.pop(x, None)  # keep the latest, in its place in seq order
        if math.isfinite(y):
            by_x[x] = y
    pairs = sorted(by_x.items())[-MAX_POINTS:]
    return [x for x, _ in pairs], [y for _, y in pairs]


def step_ticks(lo: float, hi: float, count: int = 5) -> list[int]:
    """At most `count` round integer ticks between lo and hi (steps are whole numbers: no `30.8`)."""
    first, last = math.ceil(lo), math.floor(hi)
    if last <= first:
        return [first if first <= hi else int(lo)]
    magnitude = 1
    while True:
        for m in (1, 2, 2.5, 5):
            spacing = int(m * magnitude)
            if spacing != m * magnitude:
                continue
            ticks = list(range(math.ceil(first / spacing) * spacing, last + 1, spacing))
            if len(ticks) <= max(1, count):
                return ticks or [first, last]
        magnitude *= 10


RAW_MARK, LINE_MARK, OVERLAY_MARK, BASELINE_MARK = "•", "⠤", "⠒", "▄"  # how each series looks in a legend


class SeriesChart(CachedPlot):
    """Shared parts of the HUD charts: a title, an empty-state text and bounded line buffers."""

    TITLE = "chart"

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.main: Line = ([], [])
        self.other: Line = ([], [])
        self.other_label = ""
        self.index = ""  # "2/5" when the HUD shows one chart at a time

    def set_data(self, main: Line, other: Line | None = None, other_label: str = "") -> None:
        """Replace the buffers (capped) and redraw."""
        self.main = (main[0][-MAX_POINTS:], main[1][-MAX_POINTS:])
        self.other = ([], []) if other is None else (other[0][-MAX_POINTS:], other[1][-MAX_POINTS:])
        self.other_label = other_label
        self.replot()

    def _begin(self, title: str, legend: str = "") -> None:
        """Clear, then the title (with the chart index and a legend, kept off the plot area: a legend
        drawn inside covers the curve's start) and an integer `step` axis."""
        plt = self.plt
        plt.clear_figure()
        head = f"{self.index} {title}" if self.index else title
        plt.title(f"{head} · {legend}" if legend and self.main[0] else head if self.main[0] else f"{head} (no data)")
        plt.xlabel("step")

    def fit(self, width: int, height: int) -> None:
        """Integer step ticks, about one per 14 columns."""
        xs = self.main[0] + self.other[0]
        if xs:
            ticks = step_ticks(min(xs), max(xs), max(2, min(6, width // 14)))
            self.plt.xticks([float(t) for t in ticks], [str(t) for t in ticks])

    def draw(self) -> None:
        """clear → plot (the base class refreshes and builds off the loop)."""
        self._begin(self.TITLE)
        if self.main[0]:
            self.plt.plot(*self.main, marker="braille", color="cyan")


class LossChart(SeriesChart):
    """Train loss: raw (bucket values) and smoothed (EMA of bucket means), plus an overlay run."""

    TITLE = "train loss"

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.smooth: Line = ([], [])

    def set_loss(self, points: Sequence[SeriesPoint], other: Line | None = None, other_label: str = "") -> None:
        """Raw and smoothed loss from downsampled points."""
        means = to_line(points, use_mean=True)
        self.smooth = (means[0], ema(means[1], 0.15))
        self.set_data(to_line(points), other, other_label)

    def draw(self) -> None:
        # Raw points as dots, the smoothed curve as a line: told apart without colour.
        legend = f"{RAW_MARK} raw  {LINE_MARK} smoothed"
        if self.other[0]:
            legend += f"  {OVERLAY_MARK} {self.other_label or 'overlay'}"
        self._begin(self.TITLE, legend)
        if self.main[0]:
            self.plt.scatter(*self.main, marker="dot", color="gray")
            self.plt.plot(*self.smooth, marker="braille", color="cyan")
        if self.other[0]:
            self.plt.plot(*self.other, marker="braille", color="magenta")


class EvalChart(SeriesChart):
    """The eval metric against the baseline (the untuned model), plus an overlay run."""

    TITLE = "eval"

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.metric = "metric"
        self.baseline: float | None = None

    def set_eval(self, metric: str, points: Sequence[SeriesPoint], baseline: float | None,
                 other: Line | None = None, other_label: str = "") -> None:
        """The eval series of the primary metric and its baseline."""
        self.metric = metric
        self.baseline = baseline if baseline is not None and math.isfinite(baseline) else None
        self.set_data(to_line(points), other, other_label)

    def draw(self) -> None:
        legend = f"{LINE_MARK} tuned" + (f"  {BASELINE_MARK} baseline" if self.baseline is not None else "")
        if self.other[0]:
            legend += f"  {OVERLAY_MARK} {self.other_label or 'overlay'}"
        self._begin(f"eval {self.metric}", legend)
        if self.main[0]:
            self.plt.plot(*self.main, marker="braille", color="green")
            if self.baseline is not None:
                xs = self.main[0]
                self.plt.plot([xs[0], xs[-1]] if len(xs) > 1 else [xs[0], xs[0] + 1], [self.baseline] * 2,
                              color="red")
        if self.other[0]:
            self.plt.plot(*self.other, marker="braille", color="magenta")


class LearningRateChart(SeriesChart):
    """The learning-rate schedule."""

    TITLE = "learning rate"

    def draw(self) -> None:
        self._begin(self.TITLE)
        if self.main[0]:
            self.plt.plot(*self.main, marker="braille", color="yellow")


class GradNormChart(SeriesChart):
    """The gradient norm before clipping."""

    TITLE = "grad norm"

    def draw(self) -> None:
        self._begin(self.TITLE)
        if self.main[0]:
            self.plt.plot(*self.main, marker="braille", color="orange")


class ThroughputChart(SeriesChart):
    """Training throughput in tokens per second."""

    TITLE = "tokens/s"

    def draw(self) -> None:
        self._begin(self.TITLE)
        if self.main[0]:
            self.plt.plot(*self.main, marker="braille", color="blue")
