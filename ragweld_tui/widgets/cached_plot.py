"""A PlotextPlot that builds its picture in a thread worker and paints the last build.

A plotext build is 10-25 ms of pure Python, and turning its ANSI text into terminal lines costs
about as much again; PlotextPlot does both inside `render()`, on the event loop, on every repaint
(several times slower while a training thread competes for the GIL). Here the line API is used:
`render_line()` returns rows of the last finished build and, when data, size or theme changed,
asks for a new one. The build (plotext → Rich text → Strips) runs in a thread and comes back as a
`PlotBuilt` message. While a build is in flight the figure belongs to it: `replot()` only records
that newer data is waiting and redraws once the build has landed.
"""

from __future__ import annotations

import threading

from rich.console import Console
from rich.segment import Segment
from rich.text import Text
from textual import on, work
from textual.message import Message
from textual.strip import Strip
from textual_plotext import PlotextPlot


BuildKey = tuple[int, int, int, str]  # what a build depends on: (data version, width, height, theme)


class PlotBuilt(Message):
    """A finished build: its rows and the key they were built for."""

    def __init__(self, key: BuildKey, lines: list[Strip]) -> None:
        super().__init__()
        self.key = key
        self.lines = lines


def text_to_strips(text: Text, width: int, height: int) -> list[Strip]:
    """Rich text as `height` rows of exactly `width` cells (done off the loop)."""
    console = Console(width=width, color_system="truecolor", force_terminal=True, legacy_windows=False)
    rows = Segment.split_and_crop_lines(text.render(console), width, pad=True, include_new_lines=False)
    return [Strip(row, width) for row, _ in zip(rows, range(height), strict=False)]


class CachedPlot(PlotextPlot):
    """Subclasses implement `draw()` (clear → plot into `self.plt`); `replot()` = draw → refresh."""

    # One build at a time across charts: plotext keeps some module-level state, and parallel builds
    # would only fight over the GIL anyway.
    _build_lock = threading.Lock()

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._version = 0
        self._built_key: BuildKey | None = None
        self._lines: list[Strip] = []
        self._building = False
        self._dirty = False

    def draw(self) -> None:
        """Clear and plot the buffers into `self.plt` (cheap: plotext only stores the data here)."""
        raise NotImplementedError

    def fit(self, width: int, height: int) -> None:
        """Adjust the figure to the size it is built at (e.g. how many ticks fit); runs in the build thread."""

    def replot(self) -> None:
        """clear → plot → refresh; deferred while a build of the previous data is running."""
        if self._building:
            self._dirty = True
            return
        self.draw()
        self._version += 1
        self.refresh()

    def render_line(self, y: int) -> Strip:
        """A row of the last build; starts a new build when it is out of date."""
        width, height = self.size
        theme = self._get_plotext_theme_name(self.app.theme)
        key: BuildKey = (self._version, width, height, theme)
        if key != self._built_key and not self._building and width and height:
            self._building = True
            self._build(key)
        if y < len(self._lines) and self._lines[y].cell_length == width:
            return self._lines[y]
        return Strip.blank(width, self.visual_style.rich_style)

    @work(thread=True, group="plot-build")
    def _build(self, key: BuildKey) -> None:
        """Thread worker: size, theme and build the figure, render it to rows, post them."""
        _, width, height, theme = key
        with self._build_lock:
            self.plt.plotsize(width, height)
            self.plt._set_size(width, height)  # as PlotextPlot.render does (textual-plotext issue 5)
            self.fit(width, height)
            self.plt.theme(theme)
            text = Text.from_ansi(self.plt.build())
        self.post_message(PlotBuilt(key, text_to_strips(text, width, height)))

    @on(PlotBuilt)
    def _built(self, message: PlotBuilt) -> None:
        message.stop()
        self._lines, self._built_key, self._building = message.lines, message.key, False
        if self._dirty:
            self._dirty = False
            self.replot()
        self.refresh()
