"""The delete dialog: remove a run from the store, with or without its folder of files."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Static

from ragweld_tui.format import human_bytes, run_label
from ragweld_tui.screens.base import AppModalScreen
from ragweld_tui.widgets.key_bar import KeyBar
from store import RunRecord


class DeleteScreen(AppModalScreen[str | None]):
    """Dismisses with "files" (delete the run and its folder), "keep" (the run only) or None."""

    BINDINGS = [
        Binding("y", "answer('files')", "Delete with files"),
        Binding("k", "answer('keep')", "Keep files"),
        Binding("n", "answer('')", "No"),
        Binding("escape", "answer('')", "Cancel"),
    ]

    def __init__(self, run: RunRecord, folder: Path, size: int | None) -> None:
        super().__init__()
        self.run, self.folder, self.bytes = run, folder, size

    def compose(self) -> ComposeResult:
        files = (f"Its folder {self.folder} holds {human_bytes(self.bytes)}." if self.bytes is not None
                 else f"It has no folder of files ({self.folder} does not exist).")
        with Vertical(id="dialog"):
            yield Static("Delete run", classes="dialog-title")
            yield Static(f"Delete run {run_label(self.run)} and its events from the store?\n{files}",
                         id="question", markup=False)
            hint = "[b]y[/b] delete it and its files   [b]k[/b] delete it, keep the files   [b]n[/b] no"
            yield Static(hint if self.bytes is not None else "[b]y[/b]/[b]k[/b] delete it   [b]n[/b] no",
                         classes="dialog-hint")
        yield KeyBar()

    def action_answer(self, choice: str) -> None:
        """Close the dialog with the choice."""
        self.dismiss(choice or None)
