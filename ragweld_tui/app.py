"""The Textual application and its one factory, `make_app`, used by the CLI and the tests.

The app owns the store connection (opened once, shared by every view), the lag probe, the run the
views follow (`selected_run`) and the long actions (train, cancel, promote, rollback, delete),
which run in workers and report back with `ActionDone` messages.
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

from ragweld_tui import operations
from ragweld_tui.config import AppConfig, load_config
from ragweld_tui.errors import UserError
from ragweld_tui.lag import LagProbe
from ragweld_tui.messages import ActionDone
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

DRAIN_TIMEOUT_S = 30.0  # on quit, how long cancelled in-process runs get to record their final state


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
        self.registry = operations.TrainingRegistry()
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
        self.registry.cancel_all()
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
        """Quit; when a run trains in this process, confirm first (quitting cancels it)."""
        if not self.registry.active:
            self.exit()
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self.registry.cancel_all()
                self.run_worker(self._drain_and_exit(), group="quit")

        self.push_screen(ConfirmScreen("A run is training in this process. Quit and cancel it?"), answer)

    async def _drain_and_exit(self) -> None:
        """Wait for the cancelled in-process runs' workers to record their final state, then exit (a
        trainer stuck in a step longer than DRAIN_TIMEOUT_S is left to the store's stale-run check)."""
        training = [worker for worker in self.workers if worker.group == "train"]
        if training:  # (an empty list would mean every worker, this one included)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.workers.wait_for_complete(training), DRAIN_TIMEOUT_S)
        self.exit()

    def action_lag(self) -> None:
        """Show the event loop's lag percentiles (the lag probe)."""
        s = self.lag_probe.summary()
        self.notify(f"loop lag over {s['samples']} ticks: p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms, "
                    f"max {s['max_ms']:.1f} ms")

    # -- long actions (workers post ActionDone) ---------------------------------------------------

    def start_run(self, config: AppConfig, resume_run_id: str | None = None) -> None:
        """Train a run in this process (thread-heavy work happens inside the trainer)."""
        self.run_worker(self._train(config, resume_run_id), group="train", exit_on_error=False)
        self.notify("Resuming run…" if resume_run_id else f"Starting run {config.train.name}…")

    async def _train(self, config: AppConfig, resume_run_id: str | None) -> None:
        try:
            store = await self.get_store()
            run_id = await operations.train(config, store, self.registry, resume_run_id)
            run = await store.get_run(run_id)
            self.post_message(ActionDone(f"Run {run.name} ({run_id}) ended: {run.status}",
                                         "information" if run.status == "completed" else "warning"))
            self.registry.forget(run_id)
        except (UserError, StoreError) as exc:
            self.post_message(ActionDone(str(exc), "warning"))
        except Exception as exc:  # a trainer bug must not take the UI down; the run is marked by the trainer
            self.post_message(ActionDone(f"training failed: {type(exc).__name__}: {exc}", "error"))

    def resume_run(self, run: RunRecord) -> None:
        """Resume an interrupted run with its own stored config."""
        self.start_run(operations.config_for_run(run, self.config), resume_run_id=run.id)

    def cancel_run(self, run: RunRecord) -> None:
        """Stop a run: its cancel flag when it trains here, SIGINT to its process on this host otherwise."""
        if self.registry.cancel(run.id):
            self.notify(f"Cancelling {run.name}…")
            return
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
