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
    """(x, y) of finite points, x = step (seq when a point has no step), capped at MAX_POINTS."""
    xs, ys = [], []
    for p in points[-MAX_POINTS:]:
        y = p.mean if use_mean and p.mean is not None else p.value
        if math.isfinite(y):
            xs.append(float(p.step if p.step is not None else p.seq))
            ys.append(y)
    return xs, ys


class SeriesChart(CachedPlot):
    """Shared parts of the HUD charts: a title, an empty-state text and bounded line buffers."""

    TITLE = "chart"

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.main: Line = ([], [])
        self.other: Line = ([], [])
        self.other_label = ""

    def set_data(self, main: Line, other: Line | None = None, other_label: str = "") -> None:
        """Replace the buffers (capped) and redraw."""
        self.main = (main[0][-MAX_POINTS:], main[1][-MAX_POINTS:])
        self.other = ([], []) if other is None else (other[0][-MAX_POINTS:], other[1][-MAX_POINTS:])
        self.other_label = other_label
        self.replot()

    def _begin(self, title: str) -> None:
        self.plt.clear_figure()
        self.plt.title(title if self.main[0] else f"{title} (no data)")

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
        self._begin(self.TITLE)
        if self.main[0]:
            self.plt.plot(*self.main, marker="braille", color="gray", label="raw")
            self.plt.plot(*self.smooth, marker="braille", color="cyan", label="smoothed")
        if self.other[0]:
            self.plt.plot(*self.other, marker="braille", color="magenta", label=self.other_label or "overlay")


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
        self._begin(f"eval {self.metric}")
        if self.main[0]:
            self.plt.plot(*self.main, marker="braille", color="green", label="tuned")
            if self.baseline is not None:
                xs = self.main[0]
                self.plt.plot([xs[0], xs[-1]] if len(xs) > 1 else [xs[0], xs[0] + 1], [self.baseline] * 2,
                              color="red", label="baseline")
        if self.other[0]:
            self.plt.plot(*self.other, marker="braille", color="magenta", label=self.other_label or "overlay")


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
