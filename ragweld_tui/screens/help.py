"""The `?` help: every binding active where it was opened, plus what each view is for."""

from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from ragweld_tui.screens.base import AppModalScreen
from ragweld_tui.widgets.key_bar import KeyBar

OVERVIEW = (
    "[b]Views[/b] (1-4): runs list · metrics HUD · gradient-descent scatter · debug prompt. "
    "Enter on a run opens the inspector; escape (or the view's number) goes back. In every list "
    "j/k move and g/G (Home/End) jump to the first/last row; ctrl+p opens the command palette. Every run in the store is shown live, "
    "including runs trained by another `ragweld-tui --run` process."
)


class HelpScreen(AppModalScreen[None]):
    """A scrollable list of key → action for the screen below, closed with escape, q or ?."""

    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("q", "close", "Close", show=False),
        Binding("question_mark", "close", "Close", show=False),
    ]

    def __init__(self, screen_name: str, bindings: list[tuple[str, str]], notes: str = "") -> None:
        super().__init__()
        self.screen_name = screen_name
        self.bindings = bindings
        self.notes = notes

    def compose(self) -> ComposeResult:
        keys = "\n".join(f"  [b]{escape(key):>12}[/b]  {escape(text)}" for key, text in self.bindings)
        with Vertical(id="dialog"):
            yield Static(f"Help · {self.screen_name}", classes="dialog-title")
            with VerticalScroll(id="help-body"):
                yield Static(OVERVIEW)
                if self.notes:
                    yield Static(self.notes, id="help-notes")
                yield Static(f"[b]Keys[/b]\n{keys}", id="help-keys")
        yield KeyBar()

    def action_close(self) -> None:
        """Close the help."""
        self.dismiss(None)
