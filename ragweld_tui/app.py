"""The Textual application and its one factory, `make_app`, used by the CLI and the tests.

The app owns the store connection (opened once, shared by every view), the lag probe, the run the
views follow (`selected_run`) and the long actions (promote, rollback, delete), which run in workers
and report back with `ActionDone` messages. Training runs in processes of its own (`launch`): the
app starts them, watches them through the store and leaves them training when it quits.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from textual import on
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.notifications import SeverityLevel
from textual.reactive import reactive
from textual.screen import Screen

from ragweld_tui import launch, operations
from ragweld_tui.config import AppConfig, load_config
from ragweld_tui.errors import UserError
from ragweld_tui.lag import LagProbe
from ragweld_tui.messages import ActionDone, PauseAsked
from ragweld_tui.screens.base import AppScreen
from ragweld_tui.screens.confirm import ConfirmScreen
from ragweld_tui.screens.help import HelpScreen
from ragweld_tui.screens.metrics import MetricsScreen
from ragweld_tui.screens.repl import ReplScreen
from ragweld_tui.screens.runs import RunsScreen
from ragweld_tui.screens.scatter import ScatterScreen
from store import RunRecord, RunStore, StoreError
from store.events import RunKind
from ragweld_tui.studio import Studio
from store.settings import store_location

LAUNCH_POLL_S = 0.25  # how often a launch is checked (its process and its run in the store) while it lives


class RagweldApp(App[None]):
    """Runs list, metrics HUD, gradient-descent scatter and debug prompt over one run store."""

    CSS_PATH = "app.tcss"
    TITLE = "ragweld-tui"
    MODES = {"runs": RunsScreen, "metrics": MetricsScreen, "scatter": ScatterScreen, "repl": ReplScreen}
    DEFAULT_MODE = "runs"
    BINDINGS = [
        Binding("1", "view('runs')", "Runs"),
        Binding("2", "view('metrics')", "Metrics"),
        Binding("3", "view('scatter')", "Scatter"),
        Binding("4", "view('repl')", "Prompt"),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
        Binding("f12", "lag", "Loop lag", show=False),
    ]

    selected_run: reactive[str | None] = reactive(None)

    def __init__(self, config: AppConfig, db_path: Path, *, runs_root: Path | None = None,
                 config_path: str | None = None,
                 poll_interval_s: float = 0.5, clock: Callable[[], float] = time.time,
                 probe_lag: bool = True) -> None:
        super().__init__()
        self.config = config
        self.config_path = config_path
        self.db_path = Path(db_path)
        self.runs_root = runs_root
        self.poll_interval_s = poll_interval_s
        self.clock = clock
        self.lag_probe = LagProbe()
        self.probe_lag = probe_lag
        self.launches: list[launch.Launch] = []  # the training processes started here (they outlive the app)
        self.farewell = ""  # what quitting said about the runs that keep training
        self._store: RunStore | None = None
        self._store_error: str | None = None
        self._store_ready = asyncio.Event()
        self.notices: collections.deque[str] = collections.deque(maxlen=100)  # what notify() said, newest last

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = True) -> None:
        """Show a toast and keep its text in `notices` (a readable history; tests check it)."""
        self.notices.append(f"{severity}: {message}")
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    # -- the store ------------------------------------------------------------------------------

    async def on_load(self) -> None:
        if self.probe_lag:
            self.lag_probe.start()
        self.run_worker(self._open_store(), group="store", exit_on_error=False)

    async def _open_store(self) -> None:
        try:
            self._store = await RunStore.open(self.db_path, runs_root=self.runs_root)
        except (StoreError, OSError) as exc:
            self._store_error = f"cannot open the store {self.db_path}: {exc}"
            self.post_message(ActionDone(self._store_error, "error", refresh=False))
        finally:
            self._store_ready.set()
        if self._store is not None:
            # A promotion or rollback cut short leaves the link and the lineage apart: the link wins.
            with contextlib.suppress(StoreError, OSError):
                for note in await operations.reconcile_active(self._store, self.config):
                    self.post_message(ActionDone(note, "warning"))

    async def get_store(self) -> RunStore:
        """The open store (waits for it to open); StoreError when it could not be opened."""
        await self._store_ready.wait()
        if self._store is None:
            raise StoreError(self._store_error or "the store is closed")
        return self._store

    async def on_unmount(self) -> None:
        self.lag_probe.stop()
        store, self._store = self._store, None
        self._store_error = "the store is closed"
        if store is not None:
            await store.close()

    # -- app-wide keys ----------------------------------------------------------------------------

    async def action_view(self, mode: str) -> None:
        """Show a view (1-4) from anywhere: from a drill-down of the same view (inspector, diff) back to
        the view itself; the view then takes the keyboard again (the prompt focuses its input)."""
        if self.current_mode != mode:
            await self.switch_mode(mode)
        else:
            while len(self.screen_stack) > 1:
                await self.pop_screen()
        if isinstance(screen := self.screen, AppScreen):
            screen.view_shown()

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """The palette (ctrl+p) offers every keyed action of the screen too, named as in the key bar."""
        yield from super().get_system_commands(screen)
        seen: set[str] = set()
        for active in screen.active_bindings.values():
            binding, node = active.binding, active.node
            if not binding.description or binding.action in seen or binding.action == "command_palette":
                continue
            seen.add(binding.action)

            async def run(action: str = binding.action, target: Any = node) -> None:
                await self.run_action(action, target)

            yield SystemCommand(binding.description, f"key {self.get_key_display(binding)}", run)

    def action_help(self) -> None:
        """Show every key active here, with what it does."""

        screen = self.screen
        rows: list[tuple[str, str]] = []
        # The screen's and the app's own keys (hidden ones too, e.g. enter), then what the focused widget shows.
        declared = [b for node in (screen, self) for b in type(node).BINDINGS if isinstance(b, Binding)]
        shown = [a.binding for a in self.active_bindings.values() if a.node not in (screen, self) and a.binding.show]
        for binding in declared + shown:
            row = (self.get_key_display(binding), binding.description)
            if binding.description and row not in rows:
                rows.append(row)
        name = type(screen).__name__.removesuffix("Screen")
        self.push_screen(HelpScreen(name, rows, screen.HELP or ""))

    async def action_quit(self) -> None:
        """Quit; runs keep training in their own processes, and the last line says so."""
        try:
            training = len(await (await self.get_store()).list_runs(status="running"))
        except StoreError:
            training = 0
        if training:
            self.farewell = (f"{training} run{'s' if training > 1 else ''} keep{'' if training > 1 else 's'} "
                             "training; reopen ragweld-tui to watch them")
            self.notices.append(f"information: {self.farewell}")
        self.exit(message=self.farewell or None)

    def action_lag(self) -> None:
        """Show the event loop's lag percentiles (the lag probe)."""
        s = self.lag_probe.summary()
        self.notify(f"loop lag over {s['samples']} ticks: p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms, "
                    f"max {s['max_ms']:.1f} ms")

    # -- long actions (workers post ActionDone) ---------------------------------------------------

    def start_run(self, config: AppConfig, resume_run_id: str | None = None) -> None:
        """Start a training process for the config (or resuming a run) and watch it through the store."""
        self.run_worker(self._launch(config, resume_run_id), group="train", exit_on_error=False)
        self.notify(f"Resuming run {resume_run_id}…" if resume_run_id else f"Starting run {config.train.name}…")

    async def _launch(self, config: AppConfig, resume_run_id: str | None) -> None:
        """Worker: spawn the detached `--run` process, then follow it until it exits: say when its run
        appears in the store, and how it ended (or, when it died before making a run, its last line)."""
        try:
            store = await self.get_store()
            started = await asyncio.to_thread(launch.spawn_run, config, self.db_path, store.runs_root,
                                              resume_run_id)
        except (StoreError, OSError, ValueError) as exc:
            self.post_message(ActionDone(f"cannot start the run: {exc}", "error"))
            return
        self.launches.append(started)
        run: RunRecord | None = None
        while True:
            code = started.process.poll()  # also reaps the child when it is done
            if run is None:
                with contextlib.suppress(StoreError):
                    run = next((r for r in await store.list_runs() if started.is_its_run(r)), None)
                    if run is not None:
                        self.selected_run = run.id
                        self.post_message(ActionDone(f"Run {run.name} ({run.id}) is training in process "
                                                     f"{started.pid}; output in {started.log}"))
            if code is not None:
                break
            await asyncio.sleep(LAUNCH_POLL_S)
        if run is None:
            self.post_message(ActionDone(f"the run process {started.pid} exited ({code}) before "
                                         f"{'resuming' if resume_run_id else 'creating'} the run: "
                                         f"{started.last_log_line()} (log {started.log})", "error"))
            return
        with contextlib.suppress(StoreError):
            run = await store.get_run(run.id)
        self.post_message(ActionDone(f"Run {run.name} ({run.id}) ended: {run.status}",
                                     "information" if run.status == "completed" else "warning"))

    def resume_run(self, run: RunRecord) -> None:
        """Resume an interrupted or cancelled (paused) run with its own stored config, in a new process."""
        self.start_run(operations.config_for_run(run, self.config), resume_run_id=run.id)

    def ask_to_pause(self, run: RunRecord) -> None:
        """Confirm, then pause a run; the question says which step its checkpoint will keep."""
        self.run_worker(self._last_step(run), group="pause", exit_on_error=False)

    async def _last_step(self, run: RunRecord) -> None:
        """Worker: the run's last recorded step (for the question); posts PauseAsked."""
        step = None
        with contextlib.suppress(StoreError):
            points = await (await self.get_store()).series(run.id, "train/loss", 1)
            step = points[-1].step if points else 0
        self.post_message(PauseAsked(run, step))

    @on(PauseAsked)
    def _pause_asked(self, message: PauseAsked) -> None:
        run = message.run
        where = "" if message.step is None else f" (step {message.step} done)"
        question = (f"Pause run {run.name} ({run.id})? It stops after the current step{where} and keeps its "
                    "checkpoint there; r resumes it, p promotes its best adapter.")

        def answer(yes: bool | None) -> None:
            if yes:
                self.cancel_run(run)

        self.push_screen(ConfirmScreen(question, title="Pause run"), answer)

    def cancel_run(self, run: RunRecord) -> None:
        """Pause a run: SIGINT to its process (on this host), which stops after the current step."""
        try:
            self.notify(operations.cancel_foreign(run))
        except UserError as exc:
            self.notify(str(exc), severity="warning")

    def promote_run(self, run_id: str, force: bool = False) -> None:
        """Promote a completed run through the trainers' promotion gate."""
        self.run_worker(self._promote(run_id, force), group="promote", exit_on_error=False)

    async def _promote(self, run_id: str, force: bool) -> None:
        try:
            decision = await operations.promote(await self.get_store(), self.config, run_id, force=force)
        except (UserError, StoreError, ValueError, OSError) as exc:
            self.post_message(ActionDone(str(exc), "warning"))
            return
        ok, text = decision.promote, "; ".join(decision.reasons) or "no reason given"
        hint = "" if ok or force else " (P forces it, waiving the metric gate)"
        self.post_message(ActionDone(("Promoted: " if ok else "Not promoted: ") + text + hint,
                                     "information" if ok else "warning"))

    def rollback_active(self, kind: RunKind = "reranker") -> None:
        """Roll the active adapter of a kind back one promotion."""
        self.run_worker(self._rollback(kind), group="promote", exit_on_error=False)

    async def _rollback(self, kind: RunKind) -> None:
        try:
            text, ok = await operations.rollback(await self.get_store(), self.config, kind)
        except (UserError, StoreError, ValueError, OSError) as exc:
            self.post_message(ActionDone(str(exc), "warning"))
            return
        verdict = "Rolled back: " if ok else "Rollback refused: "
        self.post_message(ActionDone(verdict + text, "information" if ok else "warning"))

    def delete_run(self, run_id: str, remove_files: bool = False) -> None:
        """Delete a run from the store (refused for running and promoted runs), and its folder of files
        when `remove_files`."""
        self.run_worker(self._delete(run_id, remove_files), group="delete", exit_on_error=False)

    async def _delete(self, run_id: str, remove_files: bool) -> None:
        try:
            store = await self.get_store()
            await store.delete_run(run_id)
        except StoreError as exc:
            self.post_message(ActionDone(str(exc), "warning"))
            return
        if not remove_files:
            self.post_message(ActionDone(f"Deleted run {run_id} (its files are kept)"))
            return
        folder = store.runs_root / run_id
        try:
            await asyncio.to_thread(shutil.rmtree, folder)
        except FileNotFoundError:
            pass
        except OSError as exc:
            self.post_message(ActionDone(f"Deleted run {run_id}, but not all of {folder}: {exc}", "warning"))
            return
        self.post_message(ActionDone(f"Deleted run {run_id} and its files"))

    @on(ActionDone)
    def _action_done(self, message: ActionDone) -> None:
        self.notify(message.text, severity=message.severity, timeout=8)
        if message.refresh:
            for screen in self.screen_stack:
                if isinstance(screen, AppScreen):
                    screen.request_refresh()


def make_app(config: AppConfig | None = None, db_path: Path | str | None = None, *,
             config_path: str | None = None, poll_interval_s: float = 0.5,
             clock: Callable[[], float] = time.time, probe_lag: bool = True) -> RagweldApp:
    """Build the app on a store (default: the configured one); the options are RagweldApp's.

    As in the headless CLI, an explicit `db_path` keeps its run folders beside it (`runs/`), while
    the configured store uses `[store].runs_root`.
    """
    config = config or load_config(None)
    path, runs_root = store_location(config.store, db_path)
    app = RagweldApp(config, path, runs_root=runs_root, config_path=config_path, poll_interval_s=poll_interval_s,
                     clock=clock, probe_lag=probe_lag)
    screens_view: Studio = app  # what the screens see of the app: mypy checks that the app provides it
    del screens_view
    return app
