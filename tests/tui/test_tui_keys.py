"""Pilot tests of the keys themselves: every advertised key does something, typing never runs a
command, the view keys work from drill-downs, and lists move the way lazygit/k9s users expect."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragweld_tui.screens.diff import DiffScreen
from ragweld_tui.screens.inspector import InspectorScreen
from ragweld_tui.screens.repl import ReplScreen
from ragweld_tui.screens.runs import RunsScreen
from ragweld_tui.widgets.history_input import HistoryInput
from ragweld_tui.widgets.nav import NavOptionList
from ragweld_tui.widgets.runs_table import RunsTable
from tests.tui.conftest import fixed_app, screen_text, settle
from tests.tui.fixture_db import RUN_A


async def press(pilot, *keys: str) -> None:
    for key in keys:
        await pilot.press(key)
        await settle(pilot)


async def test_typing_in_the_prompt_after_leaving_it_never_quits(fixture_db: Path, app_config) -> None:
    app = fixed_app(fixture_db, app_config)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await press(pilot, "4", "escape", "4")
        prompt = app.screen.query_one(HistoryInput)
        assert prompt.has_focus  # re-entering the prompt focuses it
        await press(pilot, "escape", *"quick")  # even unfocused, letters type instead of running commands
        assert app.is_running and isinstance(app.screen, ReplScreen)
        assert prompt.has_focus and prompt.value == "quick"
        await press(pilot, "1", "4")  # leaving the view and coming back focuses the prompt too
        assert app.screen.query_one(HistoryInput).has_focus
        await press(pilot, "ctrl+q")  # the prompt's way out
        assert not app.is_running


async def test_view_keys_leave_drill_downs(fixture_db: Path, app_config) -> None:
    app = fixed_app(fixture_db, app_config)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await press(pilot, "enter")
        assert isinstance(app.screen, InspectorScreen)
        await press(pilot, "1")
        assert isinstance(app.screen, RunsScreen)
        await press(pilot, "space", "down", "c")
        assert isinstance(app.screen, DiffScreen)
        await press(pilot, "1")
        assert isinstance(app.screen, RunsScreen)


# Keys from the runs list (cursor on the newest run) to each screen whose key bar is walked.
SCREENS: dict[str, list[str]] = {
    "runs": [],
    "inspector": ["down", "down", "down", "enter"],
    "diff": ["down", "down", "down", "space", "up", "c"],
    "metrics": ["down", "down", "down", "2"],
    "scatter": ["down", "down", "down", "3"],
    "prompt": ["4", "escape"],
    "help": ["question_mark"],
    "confirm": ["down", "d"],
    "picker": ["enter", "c"],
}


# Keys allowed to change nothing here: the key of the view already shown, escape on an unfocused
# prompt, and the HUD's next-chart key, which cycles charts only in the compact layout.
NO_OP_ALLOWED = {"runs": {"1"}, "metrics": {"2", "v"}, "scatter": {"3"}, "prompt": {"4", "escape"}}


def state(app) -> tuple[object, ...]:
    """What a key can change: the screen stack, the focus, the notices and what the screen shows."""
    return (app.current_mode, tuple(type(s).__name__ for s in app.screen_stack), app.focused, len(app.notices),
            screen_text(app))


async def advertised(name: str, fixture_db: Path, app_config) -> list[str]:
    app = fixed_app(fixture_db, app_config)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await press(pilot, *SCREENS[name])
        return sorted({key for key, b in app.screen.active_bindings.items() if b.binding.show and b.binding.description})


@pytest.mark.parametrize("name", list(SCREENS))
async def test_every_advertised_key_does_something(name: str, fixture_db: Path, app_config) -> None:
    keys = await advertised(name, fixture_db, app_config)
    assert keys, f"{name} advertises no keys"
    idle = []
    for key in keys:
        app = fixed_app(fixture_db, app_config)
        async with app.run_test(size=(100, 30)) as pilot:
            await settle(pilot)
            await press(pilot, *SCREENS[name])
            before = state(app)
            await press(pilot, key)  # an exception in a handler fails the test here
            if app.is_running and state(app) == before and key not in NO_OP_ALLOWED.get(name, set()):
                idle.append(key)
    assert not idle, f"on {name}, these advertised keys did nothing: {idle}"


async def test_lists_move_with_j_k_g_and_G(fixture_db: Path, app_config) -> None:
    app = fixed_app(fixture_db, app_config)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(RunsTable)
        await press(pilot, "G")
        assert table.cursor_row == 3 and table.selected_id == RUN_A
        await press(pilot, "g")
        assert table.cursor_row == 0
        await press(pilot, "j", "j", "k")
        assert table.cursor_row == 1
        await press(pilot, "end")
        assert table.cursor_row == 3
        await press(pilot, "home")
        assert table.cursor_row == 0
        await press(pilot, "t")  # the kind (type) filter moved off k
        assert app.screen.kind == "reranker" and table.row_count == 3
        await press(pilot, "G", "enter", "c")  # the run picker moves the same way
        picker = app.screen.query_one(NavOptionList)
        await press(pilot, "G")
        assert picker.highlighted == picker.option_count - 1
        await press(pilot, "g")
        assert picker.highlighted == 0
        await press(pilot, "j")
        assert picker.highlighted == 1


async def test_the_command_palette_reaches_every_keyed_action(fixture_db: Path, app_config) -> None:
    app = fixed_app(fixture_db, app_config)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        assert {"Type", "Status", "Sort", "Scatter", "Delete", "Rollback", "Metrics"} <= set(commands)
        await commands["Type"].callback()
        await settle(pilot)
        assert app.screen.kind == "reranker"


async def test_runs_list_progress_text_filter_and_reversible_sort(fixture_db: Path, app_config) -> None:
    app = fixed_app(fixture_db, app_config)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(RunsTable)
        text = screen_text(app)
        assert "120/120 100%" in text and "12/200 6%" in text  # step/total and %, the latest metric beside
        assert "sort created, newest first" in text
        await press(pilot, "S")
        assert "sort created, oldest first" in screen_text(app) and str(next(iter(table.rows)).value) == RUN_A
        await press(pilot, "slash", *"lr-h")  # name, id or base model
        assert table.row_count == 1 and "“lr-h”" in screen_text(app)
        await press(pilot, "enter", "j")  # the list has the keys again; the filter stays
        assert table.has_focus and table.row_count == 1
        await press(pilot, "slash", "backspace", "backspace", "backspace", "backspace", *"0000000c")
        assert table.row_count == 1 and table.selected_id.endswith("0000000c")
        await press(pilot, "backspace", *"zz")
        assert table.row_count == 0 and "No runs match the filter (4 of 4 hidden)." in screen_text(app)
        await press(pilot, "escape")  # clears it
        assert table.row_count == 4 and "No runs match" not in screen_text(app)


def test_progress_and_eta_cells() -> None:
    from ragweld_tui.format import eta_cell, progress_cell
    from tests.tui.fixture_db import NOW
    from store import RunRecord

    run = RunRecord(id="r1", kind="reranker", name="n", status="running", backend=None, base_model=None,
                    config={"train": {"max_steps": 100}}, dataset_fingerprint=None, created_at=NOW - 60,
                    started_at=NOW - 60, finished_at=None, heartbeat_at=None, primary_metric="mrr@10",
                    goal="maximize", baseline=None, best=None, promoted=False, error=None, owner_pid=None,
                    owner_host=None)
    assert progress_cell(25, 100) == "25/100 25%" and progress_cell(7, None) == "7" and progress_cell(None, 9) == "—"
    times = [(1, 30.0)] + [(s, 1.2) for s in range(2, 26)]  # a slow first step, then 1.2 s a step
    assert eta_cell(run, 25, 100, times) == "1m30s"  # steady: 75 left × 1.2 s (elapsed / steps: 3m00s)
    assert eta_cell(run, 25, 100, []) == "—"
    assert eta_cell(run.model_copy(update={"status": "completed"}), 25, 100, times) == "—"


async def test_small_things_at_80_columns(fixture_db: Path, app_config) -> None:
    from ragweld_tui.format import plural
    from ragweld_tui.screens.repl import AGENT_PLACEHOLDER

    assert (plural(1, "turn"), plural(2, "turn"), plural(0, "turn")) == ("1 turn", "2 turns", "0 turns")
    app = fixed_app(fixture_db, app_config)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press(pilot, "down")  # the failed, alarmed run: the whole detail fits, with its short id
        text = screen_text(app)
        assert "diverged (0000000c) · reranker · torch · Qwen/Qwen3-Reranker-0.6B" in text
        assert "TrainingFailed: loss is nan at step 13" in text and "⚠ loss 8.1e+05 is over 100×" in text
        await press(pilot, "down", "space", "down", "c")  # compare shows both short ids at 80 columns
        assert "A cisi-lr-high (0000000b)  →  B cisi-lora-r8 (0000000a)" in screen_text(app)
        await press(pilot, "4", *"/mode agent", "enter")
        assert app.screen.query_one(HistoryInput).placeholder == AGENT_PLACEHOLDER
        assert "0 turns" in screen_text(app)
