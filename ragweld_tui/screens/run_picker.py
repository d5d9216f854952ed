"""Pick one run from a list (for a HUD overlay, a diff partner, or the run a view follows)."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from ragweld_tui.format import run_label
from ragweld_tui.screens.base import AppModalScreen
from ragweld_tui.widgets.key_bar import KeyBar
from ragweld_tui.widgets.nav import NavOptionList
from store import RunRecord


class RunPickerScreen(AppModalScreen[str | None]):
    """Dismisses with the chosen run id, or None on escape."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, runs: list[RunRecord], prompt: str, exclude: str | None = None) -> None:
        super().__init__()
        self.runs = [r for r in runs if r.id != exclude]
        self.prompt = prompt

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(self.prompt, classes="dialog-title")
            if self.runs:
                options = [Option(Text(f"{run_label(r)}  {r.kind}  {r.status}"), id=r.id) for r in self.runs]
                yield NavOptionList(*options, id="picker")
            else:
                yield Static("No other runs in the store.")
        yield KeyBar()

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        """Close without choosing."""
        self.dismiss(None)
