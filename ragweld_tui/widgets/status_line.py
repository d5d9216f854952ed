"""A Static for text that is refreshed often (titles, summaries): it repaints only when the text
changed, and asks for a layout pass only when the number of rows it takes changed.

`Static.update()` defaults to a full layout pass, which re-renders every widget on the screen; on
the metrics HUD that is five charts, once a second, on the event loop.
"""

from __future__ import annotations

from textual.widgets import Static


class StatusLine(Static):
    """Plain text (no markup) updated with `show()`."""

    def __init__(self, text: str = "", *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(text, id=id, classes=classes, markup=False)
        self.text = text

    def show(self, text: str) -> None:
        """Display `text`; no-op when unchanged, no layout pass unless its height changed."""
        if text == self.text:
            return
        layout = self._rows(text) != self._rows(self.text)
        self.text = text
        self.update(text, layout=layout)

    def _rows(self, text: str) -> int:
        """Rows the text takes once wrapped at the current width (an estimate is enough)."""
        width = max(1, self.content_size.width)
        return sum(max(1, -(-len(line) // width)) for line in text.split("\n"))
