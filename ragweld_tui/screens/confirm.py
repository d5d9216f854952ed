"""A yes/no confirmation dialog for destructive or costly actions."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Static

from ragweld_tui.screens.base import AppModalScreen
from ragweld_tui.widgets.key_bar import KeyBar


class ConfirmScreen(AppModalScreen[bool]):
    """Asks a question; `y` answers yes, `n` or escape no. Dismisses with the answer."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "Cancel"),
    ]

    def __init__(self, question: str, title: str = "Confirm") -> None:
        super().__init__()
        self.question = question
        self.title_text = title

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(self.title_text, classes="dialog-title")
            yield Static(self.question, id="question", markup=False)
            yield Static("[b]y[/b] yes   [b]n[/b] no", classes="dialog-hint")
        yield KeyBar()

    def action_answer(self, yes: bool) -> None:
        """Close the dialog with the answer."""
        self.dismiss(yes)
