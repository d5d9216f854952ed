"""The gradient-descent scatter: a run's (proj_x, proj_y) trajectory coloured by loss.

Points arrive incrementally from telemetry events. The buffer is bounded: past `max_points` it
drops every other point (the first is kept), so a long run keeps its overall shape at a fixed
cost. The start, the best (lowest loss ever seen, tracked outside the buffer) and the current
point are always drawn with their own markers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from ragweld_tui.widgets.cached_plot import CachedPlot

Point = tuple[float, float, float]


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
        for point, marker, color, label in ((self.start, "s", "white", "start"), (self.best, "*", "green", "best"),
                                            (self.current, "@", "yellow", "current")):
            if point is not None:
                plt.scatter([point[0]], [point[1]], marker=marker, color=color, label=f"{label} {point[2]:.3g}")
