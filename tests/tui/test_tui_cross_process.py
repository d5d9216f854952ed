"""The app shows what another process writes to the store: new runs, their events, their status."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from ragweld_tui.screens.inspector import InspectorScreen
from ragweld_tui.widgets.runs_table import RunsTable
from tests.tui.conftest import fixed_app, refresh, screen_text, settle

WRITER = Path(__file__).with_name("external_writer.py")
REPO = Path(__file__).resolve().parents[2]


async def external(*args: str) -> str:
    """Run the writer in its own process (without blocking the app's loop) and return its stdout."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = await asyncio.create_subprocess_exec(sys.executable, str(WRITER), *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode().strip()


async def test_runs_and_events_from_another_process_appear(fixture_db: Path, app_config) -> None:
    app = fixed_app(fixture_db, app_config)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(RunsTable)
        assert table.row_count == 4
        run_id = await external(str(fixture_db), "new", "external-run")
        await refresh(pilot)
        assert table.row_count == 5 and table.selected_id != run_id
        assert "external-run" in screen_text(app)
        await pilot.press("up")
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, InspectorScreen) and app.screen.run_id == run_id
        await pilot.press("left_square_bracket")
        await settle(pilot)
        assert "hello from another process" in screen_text(app)
        # More events while the inspector is open: the tail picks them up by sequence number.
        await external(str(fixture_db), "append", run_id)
        await refresh(pilot)
        text = screen_text(app)
        assert "second message from outside" in text and "→ completed" in text
        await pilot.press("escape", "2")
        await refresh(pilot)
        assert "external-run" in screen_text(app) and "step 5/10" in screen_text(app)
