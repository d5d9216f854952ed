"""An Input with shell-like history: up/down walk previous entries, enter records one."""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import Input


class HistoryInput(Input):
    """Input remembering submitted lines (bounded); `remember()` is called by the owner on submit."""

    BINDINGS = [
        Binding("up", "history(-1)", "Older", show=False),
        Binding("down", "history(1)", "Newer", show=False),
    ]

    def __init__(self, value: str | None = None, placeholder: str = "", *, max_history: int = 500,
                 id: str | None = None, classes: str | None = None, compact: bool = False) -> None:
        # No select-all on focus: coming back to the prompt (or a letter that refocuses it) keeps typing.
        super().__init__(value, placeholder, id=id, classes=classes, compact=compact, select_on_focus=False)
        self.history: list[str] = []
        self.max_history = max_history
        self._cursor = 0
        self._draft = ""

    def remember(self, line: str) -> None:
        """Add a line to the history (skipping an immediate repeat) and reset the cursor."""
        if line and (not self.history or self.history[-1] != line):
            self.history.append(line)
            del self.history[:-self.max_history]
        self._cursor = len(self.history)
        self._draft = ""

    def action_history(self, direction: int) -> None:
        """Show the previous (-1) or next (+1) history entry; past the newest, the unsent draft."""
        if not self.history:
            return
        if self._cursor == len(self.history):
            self._draft = self.value
        self._cursor = max(0, min(len(self.history), self._cursor + direction))
        self.value = self._draft if self._cursor == len(self.history) else self.history[self._cursor]
        self.cursor_position = len(self.value)
