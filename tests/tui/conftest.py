"""TUI test helpers: the fixed store, an app on it with a frozen clock, settling, and screen text."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from rich.console import Console

from ragweld_tui.app import RagweldApp, make_app
from trainers.settings import AppConfig
from ragweld_tui.config import parse_config
from tests.tui.fixture_db import NOW, build_fixture_db

MANUAL = 3600.0  # poll interval that never fires during a test: refreshes are requested explicitly


@pytest.fixture
def fixture_db(tmp_path: Path) -> Path:
    """A fresh copy of the fixed store for one test."""
    return build_fixture_db(tmp_path / "store" / "ragweld.sqlite")


@pytest.fixture
def app_config(tmp_path: Path) -> AppConfig:
    """Defaults, with the active adapter at a relative path (stable text in snapshots)."""
    return parse_config({"serving": {"active_adapter": "no-such-dir/active"}}, "test")


def fixed_app(db: Path, config: AppConfig, poll_interval_s: float = MANUAL) -> RagweldApp:
    """The app on `db` with a frozen clock, manual refreshes and no lag probe."""
    return make_app(config, db, poll_interval_s=poll_interval_s, clock=lambda: NOW, probe_lag=False)


async def settle(pilot, rounds: int = 12) -> None:
    """Let queued messages and the UI's workers finish (no sleeps: waits on the workers themselves).

    A training run's worker lives as long as the run, so it is not waited for.
    """
    app = pilot.app
    for _ in range(rounds):
        await pilot.pause()
        busy = [w for w in app.workers if w.group != "train"]
        if busy:  # (an empty list would mean "all workers" to wait_for_complete)
            await app.workers.wait_for_complete(busy)
        await pilot.pause()
        if not any(w.is_running and w.group != "train" for w in app.workers):
            break


async def refresh(pilot) -> None:
    """Ask every screen in the stack to re-read the store, then settle."""
    for screen in pilot.app.screen_stack:
        if hasattr(screen, "request_refresh"):
            screen.request_refresh()
    await settle(pilot)


def screen_text(app: RagweldApp) -> str:
    """The current screen as plain text (what a user reads; no styles, no cursor blink)."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, color_system=None,
                      record=True, legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return "\n".join(line.rstrip() for line in console.export_text(styles=False).splitlines())


async def wait_for_text(pilot, needle: str, attempts: int = 200) -> str:
    """Refresh until `needle` is on screen (for data another process or a worker writes)."""
    for _ in range(attempts):
        await refresh(pilot)
        text = screen_text(pilot.app)
        if needle in text:
            return text
        await asyncio.sleep(0.05)
    raise AssertionError(f"{needle!r} never appeared; screen:\n{screen_text(pilot.app)}")
