"""The runs list (mode `runs`): every run in the store, live, with keys for the run lifecycle, and a
line per HTTP server that serves (or has just died)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Input

from ragweld_tui import operations
from ragweld_tui.config import AppConfig
from ragweld_tui.errors import UserError
from ragweld_tui.eta import WARMUP_STEPS, WINDOW
from ragweld_tui.format import (
    ALARM_MARK,
    KIND_FILTERS,
    SORT_DIRECTIONS,
    SORT_KEYS,
    STATUS_FILTERS,
    clip,
    cycle,
    filter_runs,
    format_value,
    folder_size,
    match_runs,
    run_label,
    server_line,
    short_model,
    sort_runs,
)
from ragweld_tui.messages import DeletePlanned, GateDecided, RollbackPlanned, RunsLoaded
from ragweld_tui.screens.base import AppScreen
from ragweld_tui.screens.confirm import ConfirmScreen
from ragweld_tui.screens.delete import DeleteScreen
from ragweld_tui.screens.inspector import InspectorScreen
from ragweld_tui.screens.navigation import pick_run, show_diff
from ragweld_tui.screens.new_run import NewRunScreen
from ragweld_tui.screens.promote import PromoteScreen
from ragweld_tui.widgets.key_bar import KeyBar
from ragweld_tui.widgets.runs_table import RunsTable
from ragweld_tui.widgets.status_line import StatusLine
from store import RunRecord, ServerRecord, StoreError
from store.reads import RunProgress

WIDE_AT = 120


class RunsScreen(AppScreen[None]):
    """A table of runs refreshed from the store every poll interval while visible."""

    HELP = ("Space marks a run; `c` then compares the marked run with the one under the cursor. "
            "`/` filters by text (name, id or base model; enter keeps it, escape clears it); "
            "`s` cycles the sort key and `S` reverses it.")
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
        Binding("v", "show('scatter')", "Scatter"),
        Binding("s", "sort", "Sort"),
        Binding("S", "reverse_sort", "Reverse", show=False),
        Binding("slash", "text_filter", "Filter"),
        Binding("t", "kind_filter", "Type"),
        Binding("f", "status_filter", "Status"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[RunRecord] = []
        self.servers: list[ServerRecord] = []
        self.now = 0.0
        self.sort_key = SORT_KEYS[0]
        self.reverse = False
        self.text = ""
        self.progress: dict[str, RunProgress] = {}
        self.kind: str | None = None
        self.status: str | None = None
        self.marked: str | None = None

    def compose(self) -> ComposeResult:
        yield StatusLine("", id="runs-title", classes="view-title")
        yield StatusLine("", id="servers")
        yield RunsTable(id="runs-table")
        yield Input(placeholder="filter: name, id or base model (enter keeps, escape clears)", id="runs-filter",
                    compact=True)
        yield StatusLine("", id="run-detail", classes="detail-line")
        yield KeyBar()

    def on_mount(self) -> None:
        self.set_interval(self.ragweld_app.poll_interval_s, self.request_refresh)
        self.request_refresh()

    def on_screen_resume(self) -> None:
        self.request_refresh()

    def request_refresh(self) -> None:
        """Start a store read (skipped while another view is on top)."""
        if self.is_current or not self.runs:
            self._load()

    @work(exclusive=True, group="runs-poll")
    async def _load(self) -> None:
        """Worker: read the runs (marking dead owners interrupted) and the servers, and post them."""
        try:
            store = await self.ragweld_app.get_store()
            await store.mark_stale_runs()
            runs = await store.list_runs()
            servers = await store.list_servers()
            progress = await store.progress(recent_steps=WINDOW + WARMUP_STEPS)  # what steady_eta reads
        except StoreError:
            return
        self.post_message(RunsLoaded(runs, self.ragweld_app.clock(), servers, progress))

    @on(RunsLoaded)
    def _runs_loaded(self, message: RunsLoaded) -> None:
        self.runs, self.now, self.servers = message.runs, message.now, message.servers
        self.progress = message.progress
        self._render_servers()
        self._render_runs()

    def _render_servers(self) -> None:
        """One line per listed server; hidden (taking no row) when there is none."""
        line = self.query_one("#servers", StatusLine)
        line.show("\n".join(server_line(server, self.now) for server in self.servers))
        line.display = bool(self.servers)

    def on_resize(self) -> None:
        self._render_runs()

    def visible_runs(self) -> list[RunRecord]:
        """The runs after the text, kind and status filters, in the chosen order."""
        runs = match_runs(filter_runs(self.runs, self.kind, self.status), self.text)
        return sort_runs(runs, self.sort_key, self.reverse)

    def _render_runs(self) -> None:
        runs = self.visible_runs()
        table = self.query_one(RunsTable)
        served = frozenset(s.adapter_run_id for s in self.servers if s.state == "serving" and s.adapter_run_id)
        table.show(runs, self.now, {self.marked} if self.marked else set(), self.size.width >= WIDE_AT, served,
                   self.progress)
        direction = SORT_DIRECTIONS[self.sort_key][self.reverse]
        title = (f"Runs · {len(runs)} of {len(self.runs)} · sort {self.sort_key}, {direction}"
                 f" · kind {self.kind or 'all'} · status {self.status or 'all'}")
        if self.text:
            title += f" · “{self.text}”"
        if self.marked:
            title += f" · marked {self.marked[-8:]}"
        self.query_one("#runs-title", StatusLine).show(title)
        self._render_detail()

    def _render_detail(self) -> None:
        run = self.current_run()
        hidden = len(self.runs) - len(self.visible_runs())
        empty = (f"No runs match the filter ({hidden} of {len(self.runs)} hidden)." if hidden
                 else "No runs yet: press n to start one.")
        if run is None:
            self.query_one("#run-detail", StatusLine).show(empty)
            return
        # One line each, cut to the pane: what the run is; how it scores (and why it stopped); its alarm.
        width = max(20, self.size.width - 2)
        lines = [f"{run_label(run)} · {run.kind} · {run.backend or '—'} · {short_model(run.base_model, 40)}",
                 f"{run.primary_metric or 'metric'} ({run.goal}) {format_value(run.baseline, 3)} → "
                 f"{format_value(run.best, 3)}" + (f" · {run.error}" if run.error else "")]
        if run.alarm:
            lines.append(f"{ALARM_MARK} {run.alarm}")
        self.query_one("#run-detail", StatusLine).show("\n".join(clip(line, width) for line in lines))

    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        run = self.current_run()
        if run is not None:
            self.ragweld_app.selected_run = run.id
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

        if (run := self._need_run()) is not None:
            self.app.push_screen(InspectorScreen(run.id))

    def action_new_run(self) -> None:
        """Open the new-run form."""
        app = self.ragweld_app

        def start(config: AppConfig | None) -> None:
            if config is not None:
                app.start_run(config)

        self.app.push_screen(NewRunScreen(app.config, app.config_path), start)

    def _confirm(self, question: str, then: Callable[[], None]) -> None:
        """Ask a yes/no question; `then` runs on yes."""

        def answer(yes: bool | None) -> None:
            if yes:
                then()

        self.app.push_screen(ConfirmScreen(question), answer)

    def action_cancel_run(self) -> None:
        """Pause the running run under the cursor (after confirmation): it keeps its checkpoint."""
        if (run := self._need_run()) is None:
            return
        if run.status not in ("running", "queued"):
            self.notify(f"{run.name} is {run.status}; only running runs can be cancelled.", severity="warning")
            return
        self.ragweld_app.ask_to_pause(run)

    def action_resume_run(self) -> None:
        """Resume an interrupted or cancelled (paused) run in a new training process."""
        if (run := self._need_run()) is None:
            return
        if run.status not in ("interrupted", "cancelled"):
            self.notify(f"{run.name} is {run.status}; only interrupted or cancelled runs can be resumed.",
                        severity="warning")
            return
        self.ragweld_app.resume_run(run)

    def action_promote(self, force: bool = False) -> None:
        """Ask the promotion gate about the run under the cursor, then confirm with its figures (`force`
        waives the metric, never compatibility)."""
        if (run := self._need_run()) is not None:
            self.check_gate(run, force)

    def check_gate(self, run: RunRecord, force: bool) -> None:
        """Compute the gate's dry-run answer in a worker; `_gate_decided` shows the dialog."""
        if run.status not in ("completed", "cancelled"):
            self.notify(f"{run.name} is {run.status}; only completed or cancelled runs can be promoted.",
                        severity="warning")
            return
        self.notify(f"Checking the promotion gate for {run.name}…")
        self._decide(run, force)

    @work(exclusive=True, group="promote-gate", exit_on_error=False)
    async def _decide(self, run: RunRecord, force: bool) -> None:
        """Worker: the gate's dry run (may evaluate the serving adapter: seconds); posts GateDecided."""
        try:
            store = await self.ragweld_app.get_store()
            decision = await operations.decide(store, self.ragweld_app.config, run.id, force=force)
        except Exception as exc:  # a store, model or adapter error: told, never a traceback
            known = isinstance(exc, (UserError, StoreError))
            detail = str(exc) if known else f"{type(exc).__name__}: {exc}"
            self.post_message(GateDecided(run, force, None, f"cannot check the promotion gate: {detail}"))
            return
        self.post_message(GateDecided(run, force, decision))

    @on(GateDecided)
    def _gate_decided(self, message: GateDecided) -> None:

        run, force = message.run, message.force
        if message.decision is None:
            self.notify(message.error or "cannot check the promotion gate", severity="warning")
            return

        def answer(choice: str | None) -> None:
            if choice == "promote":
                self.ragweld_app.promote_run(run.id, force)
            elif choice == "force":
                self.check_gate(run, True)

        self.app.push_screen(PromoteScreen(run, message.decision, force), answer)

    def action_rollback(self) -> None:
        """Roll the active adapter of the cursor run's kind back to the previous promotion (asks first,
        naming the run it restores; refuses at once when there is nothing to roll back to)."""
        run = self.current_run()
        self._plan_rollback(run.kind if run is not None else "reranker")

    @work(exclusive=True, group="rollback-plan", exit_on_error=False)
    async def _plan_rollback(self, kind: str) -> None:
        """Worker: read the lineage of `kind`; posts RollbackPlanned."""
        try:
            lineage = await (await self.ragweld_app.get_store()).promotions(kind)
        except StoreError as exc:
            self.post_message(RollbackPlanned(kind, None, None, str(exc)))
            return
        if not lineage:
            self.post_message(RollbackPlanned(kind, None, None, f"no {kind} adapter was ever promoted"))
        elif lineage[-1].run_id is None:
            self.post_message(RollbackPlanned(kind, None, None, f"the base model is already the active {kind}"))
        else:
            self.post_message(RollbackPlanned(kind, lineage[-1].run_id, lineage[-1].replaced_run_id))

    @on(RollbackPlanned)
    def _rollback_planned(self, message: RollbackPlanned) -> None:
        if message.refused:
            self.notify(f"Nothing to roll back: {message.refused}.", severity="warning")
            return
        kind = message.kind
        if kind not in ("reranker", "agent"):
            return
        names = {r.id: run_label(r) for r in self.runs}
        active = names.get(message.active or "", message.active)
        restores = ("the base model (no adapter)" if message.restores is None
                    else f"run {names.get(message.restores, message.restores)}")
        self._confirm(f"Roll the active {kind} adapter back from run {active} to {restores}?",
                      lambda: self.ragweld_app.rollback_active("agent" if kind == "agent" else "reranker"))

    def action_delete(self) -> None:
        """Delete the run under the cursor: refused at once for a running or the active (★) run; asks
        whether its folder of files goes too (with its size)."""
        if (run := self._need_run()) is None:
            return
        if run.status in ("running", "queued"):
            self.notify(f"{run_label(run)} is {run.status}; cancel it (x) before deleting it.", severity="warning")
            return
        if run.promoted:
            self.notify(f"{run_label(run)} is the active ★ {run.kind} adapter; roll back (b) or promote another "
                        "run before deleting it.", severity="warning")
            return
        self._plan_delete(run)

    @work(exclusive=True, group="delete-plan", exit_on_error=False)
    async def _plan_delete(self, run: RunRecord) -> None:
        """Worker: size the run's folder (a disk walk, in a thread); posts DeletePlanned."""
        try:
            folder = (await self.ragweld_app.get_store()).runs_root / run.id
        except StoreError:  # the store failed to open: already reported
            return
        self.post_message(DeletePlanned(run, folder, await asyncio.to_thread(folder_size, folder)))

    @on(DeletePlanned)
    def _delete_planned(self, message: DeletePlanned) -> None:
        run = message.run

        def answer(choice: str | None) -> None:
            if choice:
                self.ragweld_app.delete_run(run.id, remove_files=choice == "files")

        self.app.push_screen(DeleteScreen(run, message.folder, message.size), answer)

    def action_mark(self) -> None:
        """Mark (or unmark) the run under the cursor for a comparison."""
        if (run := self._need_run()) is None:
            return
        self.marked = None if self.marked == run.id else run.id
        self._render_runs()

    def action_compare(self) -> None:
        """Diff the marked run against the one under the cursor (or pick the other run)."""
        if (run := self._need_run()) is None:
            return
        if self.marked and self.marked != run.id:
            show_diff(self, self.marked, run.id)
            return
        pick_run(self, self.runs, f"Compare {run.name} with…", lambda other: show_diff(self, run.id, other),
                      exclude=run.id)

    def action_show(self, mode: str) -> None:
        """Follow the run under the cursor in the metrics HUD or the scatter."""
        if (run := self.current_run()) is not None:
            self.ragweld_app.selected_run = run.id
        self.app.switch_mode(mode)

    def action_sort(self) -> None:
        """Cycle the sort key (each in its natural direction)."""
        self.sort_key, self.reverse = cycle(SORT_KEYS, self.sort_key), False
        self._render_runs()

    def action_reverse_sort(self) -> None:
        """Reverse the sort direction."""
        self.reverse = not self.reverse
        self._render_runs()

    def action_text_filter(self) -> None:
        """Show the text filter and type into it (the list narrows as you type)."""
        box = self.query_one("#runs-filter", Input)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        """Clear and hide the text filter."""
        box = self.query_one("#runs-filter", Input)
        if not box.display and not self.text:
            return
        box.value, box.display, self.text = "", False, ""
        self.query_one(RunsTable).focus()
        self._render_runs()

    @on(Input.Changed, "#runs-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.text = event.value
        self._render_runs()

    @on(Input.Submitted, "#runs-filter")
    def _filter_kept(self, event: Input.Submitted) -> None:
        """Enter keeps the filter (hidden when empty) and hands the keys back to the list."""
        self.query_one("#runs-filter", Input).display = bool(self.text)
        self.query_one(RunsTable).focus()

    def action_kind_filter(self) -> None:
        """Cycle the kind filter."""
        self.kind = cycle(KIND_FILTERS, self.kind)
        self._render_runs()

    def action_status_filter(self) -> None:
        """Cycle the status filter."""
        self.status = cycle(STATUS_FILTERS, self.status)
        self._render_runs()
