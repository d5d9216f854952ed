"""The export dialog (inspector, `e`): pick a format and a destination, export in a worker, show parity.

The export runs in a thread (model loads and the parity check take seconds); its result comes back as
an `ExportFinished` message, shown in the dialog: the parity figures, or the one-line refusal.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Checkbox, Input, RadioButton, RadioSet, Static

from ragweld_tui import operations
from ragweld_tui.errors import UserError
from ragweld_tui.messages import ExportFinished
from ragweld_tui.screens.base import AppModalScreen
from ragweld_tui.widgets.key_bar import KeyBar
from store import RunRecord, StoreError
from trainers.promotion import ADAPTER_SUBDIR

FORMAT_LABELS = (("peft", "PEFT (PyTorch, vLLM LoRA)"), ("mlx", "mlx-lm (Apple Silicon)"),
                 ("merged", "merged model (transformers, vLLM)"))


def default_destination(run: RunRecord, fmt: str) -> str:
    return str(Path.cwd() / f"{run.name}-{run.id}-{fmt}")


class ExportScreen(AppModalScreen[None]):
    """Format (radio), destination (input), replace (checkbox); enter or ctrl+s exports, escape closes."""

    BINDINGS = [
        Binding("ctrl+s", "export", "Export", priority=True),
        Binding("escape", "close", "Close"),
    ]

    def __init__(self, run: RunRecord) -> None:
        super().__init__()
        self.run = run
        self.fmt = "peft"
        self.busy = False

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static("Export adapter", classes="dialog-title")
            yield Static(f"{self.run.name} ({self.run.id}) as:", markup=False)
            with RadioSet(id="export-format"):
                for fmt, label in FORMAT_LABELS:
                    yield RadioButton(label, value=fmt == self.fmt, id=f"fmt-{fmt}")
            yield Input(default_destination(self.run, self.fmt), placeholder="destination folder", id="export-dest")
            yield Checkbox("replace the folder if it is not empty", id="export-force")
            yield Static("", id="export-status", markup=False)
            yield Static("[b]enter[/b]/[b]ctrl+s[/b] export   [b]escape[/b] close", classes="dialog-hint")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one("#export-dest", Input).focus()

    @on(RadioSet.Changed, "#export-format")
    def _format(self, event: RadioSet.Changed) -> None:
        fmt = (event.pressed.id or "fmt-peft").removeprefix("fmt-")
        dest = self.query_one("#export-dest", Input)
        if dest.value == default_destination(self.run, self.fmt):  # not edited: follow the format
            dest.value = default_destination(self.run, fmt)
        self.fmt = fmt

    @on(Input.Submitted, "#export-dest")
    def _submitted(self) -> None:
        self.action_export()

    def action_export(self) -> None:
        """Start the export (one at a time)."""
        if self.busy:
            return
        dest = self.query_one("#export-dest", Input).value.strip()
        if not dest:
            self._status("give a destination folder")
            return
        self.busy = True
        self._status(f"exporting as {self.fmt} to {dest} and checking parity…")
        self._export(self.fmt, Path(dest).expanduser(), self.query_one("#export-force", Checkbox).value)

    @work(exclusive=True, group="export", exit_on_error=False)
    async def _export(self, fmt: str, out: Path, force: bool) -> None:
        """Worker: the export and its parity check in a thread; posts ExportFinished."""
        try:
            store = await self.ragweld_app.get_store()
            adapter = store.artifact_path(self.run.id, ADAPTER_SUBDIR)
            text = await asyncio.to_thread(operations.export_adapter, adapter, self.ragweld_app.config, fmt, out,
                                           force)
        except (UserError, StoreError) as exc:
            self.post_message(ExportFinished(False, f"error: {exc}"))
            return
        except Exception as exc:  # a library failure: told in one line, never a traceback
            self.post_message(ExportFinished(False, f"error: {type(exc).__name__}: {exc}"))
            return
        self.post_message(ExportFinished(True, text))

    @on(ExportFinished)
    def _finished(self, message: ExportFinished) -> None:
        self.busy = False
        self._status(message.text)
        self.notify(message.text, severity="information" if message.ok else "error")

    def _status(self, text: str) -> None:
        self.query_one("#export-status", Static).update(text)

    def action_close(self) -> None:
        """Close the dialog (not while an export is running: it would finish unseen)."""
        if self.busy:
            self._status("an export is running; it closes when it is done")
            return
        self.dismiss(None)
