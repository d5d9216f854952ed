"""The gradient-descent scatter: a run's (proj_x, proj_y) trajectory coloured by loss.

Points arrive incrementally from telemetry events. The buffer is bounded: past `max_points` it
drops every other point (the first is kept), so a long run keeps its overall shape at a fixed
cost. The start, the lowest loss ever seen (tracked outside the buffer; "best" is kept for the best
evaluation) and the current point are always drawn with their own markers. The legend is a line
outside the plot (`legend()`): plotext draws its own over the top-left corner, where a path often
ends, and hid the current point.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from ragweld_tui.widgets.cached_plot import CachedPlot

Point = tuple[float, float, float]
X_LABEL = "proj_x →"  # the weights on two fixed random directions (see the screen's help)
Y_LABEL = "↑ proj_y"


def axis_ticks(lo: float, hi: float, count: int = 5) -> tuple[list[float], list[str]]:
    """At most `count` round ticks between lo and hi, labelled with as few decimals as the spacing needs
    (never `-0.0000`)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo], [f"{lo + 0.0:.3g}"]  # + 0.0 turns -0.0 into 0.0
    magnitude = 10.0 ** (math.floor(math.log10((hi - lo) / max(1, count))) - 1)
    while True:
        for m in (1, 2, 2.5, 5):
            spacing = m * magnitude
            first, last = math.ceil(lo / spacing - 1e-9), math.floor(hi / spacing + 1e-9)
            if last - first + 1 <= max(1, count):
                decimals = max(0, -math.floor(math.log10(spacing) + 1e-9) + (1 if m == 2.5 else 0))
                ticks = [k * spacing for k in range(first, last + 1)]
                return ticks, [f"{round(t, decimals) + 0.0:.{decimals}f}" for t in ticks]
        magnitude *= 10


def loss_color(loss: float, lo: float, hi: float) -> tuple[int, int, int]:
    """Blue (low loss) → red (high loss) on a linear scale between lo and hi."""
    t = 0.5 if hi <= lo or not math.isfinite(loss) else min(1.0, max(0.0, (loss - lo) / (hi - lo)))
    return (int(40 + 215 * t), int(90 + 60 * (1 - abs(2 * t - 1))), int(255 - 215 * t))


class TrajectoryChart(CachedPlot):
    """Scatter of the projected weights, coloured by loss, with start/best/current markers."""

    def __init__(self, *, max_points: int = 2000, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.max_points = max_points
        self.points: list[Point] = []
        self.start: Point | None = None
        self.best: Point | None = None
        self.current: Point | None = None
        self.total = 0
        self.title = "trajectory"

    def reset(self, title: str = "trajectory") -> None:
        """Forget the trajectory (another run was selected)."""
        self.points, self.start, self.best, self.current, self.total = [], None, None, None, 0
        self.title = title

    def add_points(self, points: Iterable[Point]) -> None:
        """Append points (non-finite ones are dropped), decimating past the cap, then redraw."""
        for point in points:
            if not all(math.isfinite(v) for v in point):
                continue
            self.total += 1
            if self.start is None:
                self.start = point
            if self.best is None or point[2] < self.best[2]:
                self.best = point
            self.current = point
            self.points.append(point)
            if len(self.points) > self.max_points:
                self.points = self.points[:1] + self.points[2::2]
        self.replot()

    def draw(self) -> None:
        """clear → plot (the base class refreshes and builds off the loop)."""
        plt = self.plt
        plt.clear_figure()
        if not self.points:
            plt.title(f"{self.title} (no telemetry yet)")
            return
        losses = [p[2] for p in self.points]
        lo, hi = min(losses), max(losses)
        plt.title(f"{self.title} · {self.total} points · loss {lo:.3g} (blue) … {hi:.3g} (red)")
        # plotext colours each point from a list of colours, though its annotation allows one colour only.
        plt.scatter([p[0] for p in self.points], [p[1] for p in self.points], marker="dot",
                    color=[loss_color(v, lo, hi) for v in losses])  # type: ignore[arg-type]
        plt.xlabel(X_LABEL)
        plt.ylabel(Y_LABEL)
        # The current point last, so nothing is drawn over it.
        for point, marker, color in ((self.start, "s", "white"), (self.best, "*", "green"), (self.current, "@", "yellow")):
            if point is not None:
                plt.scatter([point[0]], [point[1]], marker=marker, color=color)

    def fit(self, width: int, height: int) -> None:
        """Round ticks on both axes, as many as fit."""
        if self.points:
            for values, count, set_ticks in (([p[0] for p in self.points], max(2, min(8, width // 14)), self.plt.xticks),
                                             ([p[1] for p in self.points], max(3, min(8, height // 4)), self.plt.yticks)):
                ticks, labels = axis_ticks(min(values), max(values), count)
                set_ticks(ticks, labels)

    def legend(self) -> str:
        """The markers' key with their losses (shown under the chart, never over the points)."""
        parts = [f"{marker} {label} {point[2]:.3g}" for point, marker, label in
                 ((self.start, "s", "start"), (self.best, "*", "lowest loss"), (self.current, "@", "current"))
                 if point is not None]
        return " · ".join(parts) if parts else "s start · * lowest loss · @ current"
