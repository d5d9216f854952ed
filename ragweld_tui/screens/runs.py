"""The runs list (mode `runs`): every run in the store, live, with keys for the run lifecycle."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable

from ragweld_tui import operations
from ragweld_tui.format import (
    ALARM_MARK,
    KIND_FILTERS,
    SORT_KEYS,
    STATUS_FILTERS,
    cycle,
    filter_runs,
    format_value,
    short_model,
    sort_runs,
)
from ragweld_tui.messages import GateDecided, RunsLoaded
from ragweld_tui.widgets.key_bar import KeyBar
from ragweld_tui.widgets.status_line import StatusLine
from ragweld_tui.widgets.runs_table import RunsTable
from store import RunRecord, StoreError

WIDE_AT = 120


class RunsScreen(Screen[None]):
    """A table of runs refreshed from the store every poll interval while visible."""

    HELP = "Space marks a run; `c` then compares the marked run with the one under the cursor."
    BINDINGS = [
        Binding("enter", "inspect", "Inspect", show=False),
        Binding("n", "new_run", "New"),
        Binding("x", "cancel_run", "Cancel"),
        Binding("r", "resume_run", "Resume"),
        Binding("p", "promote", "Promote"),
        Binding("P", "promote(True)", "Force promote", show=False),
        Binding("b", "rollback", "Rollback"),
        Binding("d", "delete", "Delete"),
        Binding("space", "mark", "Mark"),
        Binding("c", "compare", "Compare"),
        Binding("m", "show('metrics')", "HUD"),
        Binding("g", "show('scatter')", "Scatter"),
        Binding("s", "sort", "Sort"),
        Binding("k", "kind_filter", "Kind"),
        Binding("f", "status_filter", "Status"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[RunRecord] = []
        self.now = 0.0
        self.sort_key = SORT_KEYS[0]
        self.kind: str | None = None
        self.status: str | None = None
        self.marked: str | None = None

    def compose(self) -> ComposeResult:
        yield StatusLine("", id="runs-title", classes="view-title")
        yield RunsTable(id="runs-table")
        yield StatusLine("", id="run-detail", classes="detail-line")
        yield KeyBar()

    def on_mount(self) -> None:
        self.set_interval(self.app.poll_interval_s, self.request_refresh)  # type: ignore[attr-defined]
        self.request_refresh()

    def on_screen_resume(self) -> None:
        self.request_refresh()

    def request_refresh(self) -> None:
        """Start a store read (skipped while another view is on top)."""
        if self.is_current or not self.runs:
            self._load()

    @work(exclusive=True, group="runs-poll")
    async def _load(self) -> None:
        """Worker: read the runs (marking dead owners interrupted) and post them."""
        try:
            store = await self.app.get_store()  # type: ignore[attr-defined]
            await store.mark_stale_runs()
            runs = await store.list_runs()
        except StoreError:
            return
        self.post_message(RunsLoaded(runs, self.app.clock()))  # type: ignore[attr-defined]

    @on(RunsLoaded)
    def _runs_loaded(self, message: RunsLoaded) -> None:
        self.runs, self.now = message.runs, message.now
        self._render_runs()

    def on_resize(self) -> None:
        self._render_runs()

    def visible_runs(self) -> list[RunRecord]:
        """The runs after the kind/status filters, in the chosen order."""
        return sort_runs(filter_runs(self.runs, self.kind, self.status), self.sort_key)

    def _render_runs(self) -> None:
        runs = self.visible_runs()
        table = self.query_one(RunsTable)
        table.show(runs, self.now, {self.marked} if self.marked else set(), self.size.width >= WIDE_AT)
        title = (f"Runs · {len(runs)} of {len(self.runs)} · sort {self.sort_key} · kind {self.kind or 'all'}"
                 f" · status {self.status or 'all'}")
        if self.marked:
            title += f" · marked {self.marked[-8:]}"
        self.query_one("#runs-title", StatusLine).show(title)
        self._render_detail()

    def _render_detail(self) -> None:
        run = self.current_run()
        text = "No runs yet: press n to start one." if run is None else (
            f"{run.name} {run.id} · {run.backend or '—'} · {short_model(run.base_model, 30)} · "
            f"{run.primary_metric or 'metric'} ({run.goal}) "
            f"{format_value(run.baseline, 3)} → {format_value(run.best, 3)}"
            + (f" · {run.error}" if run.error else "") + (f" · {ALARM_MARK} {run.alarm}" if run.alarm else ""))
        self.query_one("#run-detail", StatusLine).show(text)

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        run = self.current_run()
        if run is not None:
            self.app.selected_run = run.id  # type: ignore[attr-defined]
        self._render_detail()

    @on(DataTable.RowSelected)
    def _selected(self) -> None:
        self.action_inspect()

    def current_run(self) -> RunRecord | None:
        """The run under the cursor."""
        run_id = self.query_one(RunsTable).selected_id
        return next((r for r in self.runs if r.id == run_id), None)

    def _need_run(self) -> RunRecord | None:
        run = self.current_run()
        if run is None:
            self.notify("No run selected.", severity="warning")
        return run

    # -- keys -------------------------------------------------------------------------------------

    def action_inspect(self) -> None:
        """Open the inspector on the run under the cursor."""
        from ragweld_tui.screens.inspector import InspectorScreen

        if (run := self._need_run()) is not None:
            self.app.push_screen(InspectorScreen(run.id))

    def action_new_run(self) -> None:
        """Open the new-run form."""
        from ragweld_tui.screens.new_run import NewRunScreen

        app = self.app
        app.push_screen(NewRunScreen(app.config, app.config_path),  # type: ignore[attr-defined]
                        lambda config: config is not None and app.start_run(config))  # type: ignore[attr-defined]

    def _confirm(self, question: str, then: object) -> None:
        from ragweld_tui.screens.confirm import ConfirmScreen

        self.app.push_screen(ConfirmScreen(question), lambda yes: yes and then())  # type: ignore[operator]

    def action_cancel_run(self) -> None:
        """Cancel the running run under the cursor (after confirmation)."""
        if (run := self._need_run()) is None:
            return
        if run.status not in ("running", "queued"):
            self.notify(f"{run.name} is {run.status}; only running runs can be cancelled.", severity="warning")
            return
        self._confirm(f"Cancel run {run.name} ({run.id})?", lambda: self.app.cancel_run(run))  # type: ignore[attr-defined]

    def action_resume_run(self) -> None:
        """Resume an interrupted run in this process."""
        if (run := self._need_run()) is None:
            return
        if run.status != "interrupted":
            self.notify(f"{run.name} is {run.status}; only interrupted runs can be resumed.", severity="warning")
            return
        self.app.resume_run(run)  # type: ignore[attr-defined]

    def action_promote(self, force: bool = False) -> None:
        """Ask the promotion gate about the run under the cursor, then confirm with its figures (`force`
        waives the metric, never compatibility)."""
        if (run := self._need_run()) is not None:
            self.check_gate(run, force)

    def check_gate(self, run: RunRecord, force: bool) -> None:
        """Compute the gate's dry-run answer in a worker; `_gate_decided` shows the dialog."""
        if run.status != "completed":
            self.notify(f"{run.name} is {run.status}; only completed runs can be promoted.", severity="warning")
            return
        self.notify(f"Checking the promotion gate for {run.name}…")
        self._decide(run, force)

    @work(exclusive=True, group="promote-gate", exit_on_error=False)
    async def _decide(self, run: RunRecord, force: bool) -> None:
        """Worker: the gate's dry run (may evaluate the serving adapter: seconds); posts GateDecided."""
        try:
            store = await self.app.get_store()  # type: ignore[attr-defined]
            view = await operations.decide(store, self.app.config, run.id, force=force)  # type: ignore[attr-defined]
        except Exception as exc:  # a missing trainer, a store or model error: told, never a traceback
            known = isinstance(exc, (operations.Unavailable, StoreError))
            detail = str(exc) if known else f"{type(exc).__name__}: {exc}"
            self.post_message(GateDecided(run, force, None, f"cannot check the promotion gate: {detail}"))
            return
        self.post_message(GateDecided(run, force, view))

    @on(GateDecided)
    def _gate_decided(self, message: GateDecided) -> None:
        from ragweld_tui.screens.promote import PromoteScreen

        run, force = message.run, message.force
        if message.view is None:
            self.notify(message.error or "cannot check the promotion gate", severity="warning")
            return

        def answer(choice: str | None) -> None:
            if choice == "promote":
                self.app.promote_run(run.id, force)  # type: ignore[attr-defined]
            elif choice == "force":
                self.check_gate(run, True)

        self.app.push_screen(PromoteScreen(run, message.view, force), answer)

    def action_rollback(self) -> None:
        """Roll the active adapter of the cursor run's kind back to the previous promotion."""
        run = self.current_run()
        kind = run.kind if run is not None else "reranker"
        self._confirm(f"Roll the active {kind} adapter back to the previous promotion?",
                      lambda: self.app.rollback_active(kind))  # type: ignore[attr-defined]

    def action_delete(self) -> None:
        """Delete the run under the cursor (its files stay on disk)."""
        if (run := self._need_run()) is None:
            return
        self._confirm(f"Delete run {run.name} ({run.id}) and its events? Files on disk are kept.",
                      lambda: self.app.delete_run(run.id))  # type: ignore[attr-defined]

    def action_mark(self) -> None:
        """Mark (or unmark) the run under the cursor for a comparison."""
        if (run := self._need_run()) is None:
            return
        self.marked = None if self.marked == run.id else run.id
        self._render_runs()

    def action_compare(self) -> None:
        """Diff the marked run against the one under the cursor (or pick the other run)."""
        from ragweld_tui.screens.diff import DiffScreen
        from ragweld_tui.screens.run_picker import RunPickerScreen

        if (run := self._need_run()) is None:
            return
        if self.marked and self.marked != run.id:
            self.app.push_screen(DiffScreen(self.marked, run.id))
            return
        self.app.push_screen(RunPickerScreen(self.runs, f"Compare {run.name} with…", exclude=run.id),
                             lambda other: other and self.app.push_screen(DiffScreen(run.id, other)))

    def action_show(self, mode: str) -> None:
        """Follow the run under the cursor in the metrics HUD or the scatter."""
        if (run := self.current_run()) is not None:
            self.app.selected_run = run.id  # type: ignore[attr-defined]
        self.app.switch_mode(mode)

    def action_sort(self) -> None:
        """Cycle the sort order."""
        self.sort_key = cycle(SORT_KEYS, self.sort_key)
        self._render_runs()

    def action_kind_filter(self) -> None:
        """Cycle the kind filter."""
        self.kind = cycle(KIND_FILTERS, self.kind)
        self._render_runs()

    def action_status_filter(self) -> None:
        """Cycle the status filter."""
        self.status = cycle(STATUS_FILTERS, self.status)
        self._render_runs()
