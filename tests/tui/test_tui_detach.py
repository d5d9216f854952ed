"""Runs started from the TUI are their own processes: they go on when the TUI quits or gets SIGHUP
(an SSH drop), a reopened TUI shows how they ended, and x pauses / r resumes them through the store
and a signal to their process. Real training of the embedded tiny model."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ragweld_tui.app import make_app
from ragweld_tui.screens.confirm import ConfirmScreen
from store import RunRecord, RunStore
from tests.trainers.run_helpers import write_config
from tests.tui.conftest import MANUAL, screen_text, settle
from tests.tui.test_tui_training import tiny_config, wait_until
from tests.tui.test_tui_tmux import REPO, Pane

pytestmark = pytest.mark.slow


async def runs_in(db: Path) -> list[RunRecord]:
    store = await RunStore.open(db)
    try:
        return await store.list_runs()
    finally:
        await store.close()


async def wait_for_run(db: Path, predicate, what: str, timeout: float = 300) -> RunRecord:
    """Poll the store (no TUI open) until one run satisfies `predicate`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.exists():
            for run in await runs_in(db):
                if predicate(run):
                    return run
        await asyncio.sleep(0.2)
    raise AssertionError(f"never saw {what}: {[(r.id, r.status) for r in await runs_in(db)] if db.exists() else []}")


async def test_pause_resume_and_quit_leave_the_run_training(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, max_steps=60, eval_every=5, checkpoint_every=50)
    db = tmp_path / "db.sqlite"
    app = make_app(config, poll_interval_s=MANUAL)
    async with app.run_test(size=(120, 34)) as pilot:
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        await pilot.press("ctrl+s")
        run = await wait_for_run(db, lambda r: r.status == "running", "the run started")
        evaluated = await wait_for_run(db, lambda r: r.best is not None, "a first evaluation")
        assert evaluated.id == run.id and run.owner_pid == app.launches[0].pid != os.getpid()
        await wait_until(pilot, lambda t: "tui-run" in t and "running" in t, "the run in the list", attempts=600)
        await pilot.press("x")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        question = screen_text(app)
        assert f"Pause run tui-run ({run.id})?" in question and "keeps its" in question and "r resumes it" in question
        await pilot.press("y")
        paused = await wait_for_run(db, lambda r: r.status == "cancelled", "the run paused")
        store = await app.get_store()
        reasons = [e.event.reason for e in await store.events_since(run.id, 0, 10_000) if e.event.type == "state"]
        assert paused.id == run.id and "checkpoint at step" in (reasons[-1] or ""), reasons
        kinds = {a.kind for a in await store.artifacts(run.id)}
        assert {"adapter", "checkpoint"} <= kinds  # what the inspector's Artifacts tab lists
        await wait_until(pilot, lambda t: "cancelled" in t, "the paused run in the list", attempts=600)
        await pilot.press("r")
        await wait_for_run(db, lambda r: r.status == "running" and r.owner_pid == app.launches[-1].pid,
                           "the run resumed by a new process")
        await pilot.press("q")  # no question: the run goes on
        await pilot.pause()
    assert not app.is_running
    assert any("1 run keeps training; reopen ragweld-tui to watch them" in n for n in app.notices), list(app.notices)
    assert app.launches[-1].process.poll() is None  # still training after the TUI is gone
    done = await wait_for_run(db, lambda r: r.status == "completed", "the run completed after the TUI quit")
    assert done.id == run.id
    assert app.launches[-1].process.wait(timeout=60) == 0

    reopened = make_app(config, poll_interval_s=MANUAL)
    async with reopened.run_test(size=(120, 34)) as pilot:
        await wait_until(pilot, lambda t: "tui-run" in t and "completed" in t, "the completed run after reopening")


async def test_a_run_that_dies_before_it_exists_is_reported_with_its_last_line(tmp_path: Path) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text('{"query": "q", "negatives": ["b"]}\n')
    config = tiny_config(tmp_path).model_copy(deep=True)
    config.data.path = data
    app = make_app(config, poll_interval_s=MANUAL)
    async with app.run_test(size=(120, 34)) as pilot:
        await settle(pilot)
        app.start_run(config)
        await settle(pilot)
        await app.workers.wait_for_complete()
        errors = [n for n in app.notices if n.startswith("error:")]
        assert errors and "before creating the run: error:" in errors[-1] and "bad.jsonl:1" in errors[-1], errors
        assert str(app.launches[0].log) in errors[-1]


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_sighup_to_the_tui_leaves_the_run_training(tmp_path: Path) -> None:
    config = write_config(tmp_path, "torch", max_steps=40, eval_every=20, checkpoint_every=20, auto_promote=False)
    db = tmp_path / "db.sqlite"
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAGWELD_HOME": str(tmp_path / "home"), "TERM": "xterm-256color"}
    command = f"exec {shlex.quote(sys.executable)} -m ragweld_tui.cli --config {shlex.quote(str(config))}"
    pane = Pane(tmp_path / "tmux.sock")
    env_args = [arg for key in ("PYTHONPATH", "RAGWELD_HOME", "HF_HUB_OFFLINE") if key in env
                for arg in ("-e", f"{key}={env[key]}")]
    pane.tmux("-f", "/dev/null", "new-session", "-d", "-s", "tui", "-x", "120", "-y", "34", *env_args, command)
    try:
        tui_pid = int(pane.tmux("display-message", "-p", "-t", "tui", "#{pane_pid}").strip())
        pane.wait_for("No runs yet")
        pane.keys("n")
        pane.wait_for("New run")
        pane.keys("C-s")
        run = asyncio.run(wait_for_run(db, lambda r: r.status == "running", "the run started"))
        assert run.owner_pid != tui_pid
        os.kill(tui_pid, signal.SIGHUP)  # what an SSH drop sends
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and Path(f"/proc/{tui_pid}").exists():
            time.sleep(0.1)
        assert not Path(f"/proc/{tui_pid}").exists(), "the TUI survived SIGHUP"
        done = asyncio.run(wait_for_run(db, lambda r: r.id == run.id and r.status != "running", "the run ended"))
        assert done.status == "completed", done.error
    finally:
        subprocess.run(["tmux", "-S", pane.socket, "kill-server"], capture_output=True)
