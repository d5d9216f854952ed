"""Pilot tests of each screen's keys and the main flows on the fixed store (no model, no training)."""

from __future__ import annotations

import types
from pathlib import Path

from textual.widgets import OptionList

from ragweld_tui import operations
from ragweld_tui.screens.confirm import ConfirmScreen
from ragweld_tui.screens.diff import DiffScreen
from ragweld_tui.screens.inspector import InspectorScreen
from ragweld_tui.screens.new_run import NewRunScreen, field_id
from ragweld_tui.widgets.event_log import EventLog
from ragweld_tui.widgets.runs_table import RunsTable
from tests.tui.conftest import fixed_app, screen_text, settle
from tests.tui.fixture_db import RUN_A, RUN_B, RUN_C


async def press(pilot, *keys: str) -> None:
    for key in keys:
        await pilot.press(key)
        await settle(pilot)


async def test_open_a_run_in_the_inspector(fixture_db: Path, app_config) -> None:
    app = fixed_app(fixture_db, app_config)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await press(pilot, "down", "down", "down", "enter")
        screen = app.screen
        assert isinstance(screen, InspectorScreen) and screen.run_id == RUN_A
        assert "learning_rate = 0.0002" in screen_text(app)
        await press(pilot, "right_square_bracket")
        assert "16 queries, 64 positives" in screen_text(app) and "12 train / 4 dev" in screen_text(app)
        await press(pilot, "right_square_bracket")
        assert "adapter/adapter_model.safetensors  1.5 MiB" in screen_text(app)
        await press(pilot, "right_square_bracket")
        assert '"run_id": "r20250101-120000-0000000a"' in screen_text(app)
        await press(pilot, "right_square_bracket")
        assert "gate at the end of the run: promoted: improves on the baseline" in screen_text(app)
        log = app.screen.query_one(EventLog)
        assert len(log.records) == 258  # every event of the run is buffered, whatever the filter
        await press(pilot, "l")  # info → warning: only the lifecycle's warnings remain (none for a completed run)
        assert log.min_level == "warning" and "checkpoint" not in screen_text(app)
        await press(pilot, "l", "l")  # error → debug: metrics and telemetry show up
        assert log.min_level == "debug" and "train/loss=" in screen_text(app)
        await press(pilot, "escape")
        assert isinstance(app.screen.query_one(RunsTable), RunsTable)


async def test_event_log_filters_by_level(fixture_db: Path, app_config) -> None:
    app = fixed_app(fixture_db, app_config)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await press(pilot, "down", "enter", "l")  # the failed run, warning level and up
        text = screen_text(app)
        assert "grad norm 1e6 clipped" in text and "TrainingFailed: loss is nan" in text and "→ running" not in text
        await press(pilot, "l")
        text = screen_text(app)
        assert "grad norm 1e6 clipped" not in text and "→ failed" in text


async def test_sort_filter_mark_and_compare(fixture_db: Path, app_config) -> None:
    app = fixed_app(fixture_db, app_config)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(RunsTable)
        await press(pilot, "k")  # kind: reranker
        assert table.row_count == 3 and "kind reranker" in screen_text(app)
        await press(pilot, "f", "f")  # status: running, then completed
        assert table.row_count == 2
        await press(pilot, "s")  # sort by name; the cursor stays on its run (cisi-lr-high, now second)
        assert [str(k.value) for k in table.rows] == [RUN_A, RUN_B] and table.selected_id == RUN_B
        await press(pilot, "up")
        await press(pilot, "space", "down", "c")
        diff = app.screen
        assert isinstance(diff, DiffScreen) and (diff.a, diff.b) == (RUN_A, RUN_B)
        text = screen_text(app)
        assert "best/mrr@10" in text and "▼ worse" in text and "train.learning_rate" in text
        await press(pilot, "w")  # swap: B → A is an improvement
        assert "▲ better" in screen_text(app)


async def test_delete_asks_first(fixture_db: Path, app_config) -> None:
    app = fixed_app(fixture_db, app_config)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(RunsTable)
        await press(pilot, "down", "d")
        assert isinstance(app.screen, ConfirmScreen)
        await press(pilot, "n")
        assert table.row_count == 4
        await press(pilot, "d", "y")
        app.screen.request_refresh()
        await settle(pilot)
        assert table.row_count == 3 and RUN_C not in [str(k.value) for k in table.rows]
        await press(pilot, "down", "down", "d", "y")  # the promoted run is refused by the store
        app.screen.request_refresh()
        await settle(pilot)
        assert table.row_count == 3 and "cannot be deleted" in app.notices[-1]


async def test_new_run_form_validates_with_the_config_models(fixture_db: Path, app_config) -> None:
    app = fixed_app(fixture_db, app_config)
    started = []
    app.start_run = lambda config, resume_run_id=None: started.append(config)  # type: ignore[method-assign]
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await press(pilot, "n")
        form = app.screen
        assert isinstance(form, NewRunScreen)
        form.query_one(f"#{field_id('train.max_steps')}").value = "0"
        await press(pilot, "ctrl+s")
        assert "[train].max_steps" in screen_text(app) and not started
        form.query_one(f"#{field_id('train.max_steps')}").value = "7"
        form.query_one(f"#{field_id('train.name')}").value = "from-the-form"
        await press(pilot, "ctrl+s")
        assert [(c.train.name, c.train.max_steps) for c in started] == [("from-the-form", 7)]
        assert not isinstance(app.screen, NewRunScreen)


async def test_new_run_from_a_config_file(fixture_db: Path, app_config, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nmax_steps = -1\n")
    good = tmp_path / "good.toml"
    good.write_text('[train]\nname = "from-file"\nmax_steps = 9\n')
    app = fixed_app(fixture_db, app_config)
    started = []
    app.start_run = lambda config, resume_run_id=None: started.append(config)  # type: ignore[method-assign]
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await press(pilot, "n")
        app.screen.query_one("#config-file").value = str(bad)
        await press(pilot, "ctrl+o")
        assert "bad.toml: [train].max_steps" in str(app.screen.query_one("#form-errors").content)
        app.screen.query_one("#config-file").value = str(good)
        await press(pilot, "ctrl+o", "ctrl+s")
        assert [(c.train.name, c.train.max_steps) for c in started] == [("from-file", 9)]


async def test_promote_rollback_and_missing_trainer(fixture_db: Path, app_config, monkeypatch) -> None:
    calls = []

    class Refused(Exception):
        pass

    async def promote(store, config, run_id, force=False):
        calls.append(("promote", run_id, force))
        if not force:
            raise Refused("improvement -0.0400 over the baseline 0.4100 is below epsilon 0.01")
        return types.SimpleNamespace(promote=True, reasons=["forced"])

    async def rollback(store, config, kind="reranker"):
        calls.append(("rollback", kind))
        return None

    fake = types.SimpleNamespace(promote=promote, rollback=rollback, PromotionRefused=Refused)
    real_load = operations.load_module

    async def load(name: str, feature: str):
        if name == operations.PROMOTION_MODULE:
            return fake
        return await real_load("trainers.no_such_module", feature)

    monkeypatch.setattr(operations, "load_module", load)
    app = fixed_app(fixture_db, app_config)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        await press(pilot, "down", "down", "p", "y")  # cisi-lr-high: below epsilon
        assert "Not promoted: improvement -0.0400" in app.notices[-1]
        await press(pilot, "P", "y")
        assert "Promoted: forced" in app.notices[-1]
        await press(pilot, "b", "y")
        assert "Rolled back: now serving the base model" in app.notices[-1]
        await press(pilot, "up", "up", "p")  # an interrupted run cannot be promoted
        assert "only completed runs can be promoted" in app.notices[-1]
        await press(pilot, "r")  # resume needs the (missing) trainer module
        await settle(pilot)
        assert "not available yet" in app.notices[-1]
    assert calls == [("promote", RUN_B, False), ("promote", RUN_B, True), ("rollback", "reranker")]


async def test_cancel_routes_to_the_owner(fixture_db: Path, app_config) -> None:
    app = fixed_app(fixture_db, app_config)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await press(pilot, "down", "x")  # a failed run cannot be cancelled
        assert "only running runs can be cancelled" in app.notices[-1]
        import threading

        flag = threading.Event()
        app.registry.register(RUN_C, flag)
        run = next(r for r in app.screen.runs if r.id == RUN_C)
        app.cancel_run(run)
        assert flag.is_set()


async def test_hud_overlay_and_chart_cycling(fixture_db: Path, app_config) -> None:
    app = fixed_app(fixture_db, app_config)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press(pilot, "down", "down", "down", "2")
        assert "step 120/120" in screen_text(app) and "train loss" in screen_text(app)
        await press(pilot, "v")
        assert "eval mrr@10" in screen_text(app)
        await press(pilot, "o")
        picker = app.screen
        picker.query_one(OptionList).highlighted = [r.id for r in picker.runs].index(RUN_B)
        await press(pilot, "enter")
        text = screen_text(app)
        assert "overlay cisi-lr-high" in text and "cisi-lr-high" in text
        await press(pilot, "o")
        assert "overlay" not in screen_text(app)
        await press(pilot, "3")
        assert "120 points" in screen_text(app)


async def test_help_lists_the_screen_keys(fixture_db: Path, app_config) -> None:
    app = fixed_app(fixture_db, app_config)
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await press(pilot, "question_mark")
        text = screen_text(app)
        for needle in ("Help · Runs", "New", "Promote", "Force promote", "Inspect", "Quit"):
            assert needle in text, needle
        await press(pilot, "escape", "2", "question_mark")
        assert "Help · Metrics" in screen_text(app) and "Overlay" in screen_text(app)


async def test_repl_commands_without_a_model(fixture_db: Path, app_config) -> None:
    app = fixed_app(fixture_db, app_config)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await press(pilot, "4")
        prompt = app.screen.query_one("#prompt")
        await pilot.press("/", "h")  # typing goes to the prompt
        assert prompt.value == "/h"
        for line in ("/help", "/mode agent", "/reset", "/mode reranker", "/backend cuda", "/adapter /no/such/dir",
                     "just a query", "/nope"):
            prompt.value = line
            await press(pilot, "enter")
        text = screen_text(app)
        assert "mode: agent · type a message" in text and "new agent conversation" in text
        assert "mode reranker" in text and "backend must be one of" in text and "unknown command /nope" in text
        assert "not an adapter folder" in text and "no documents" in text
        await press(pilot, "up", "up")
        assert app.screen.query_one("#prompt").value == "just a query"
        await press(pilot, "down", "down")
        assert app.screen.query_one("#prompt").value == ""


async def test_an_unreadable_store_is_reported(tmp_path: Path, app_config) -> None:
    bad = tmp_path / "not-a-store.sqlite"
    bad.write_text("this is not sqlite" * 100)
    app = fixed_app(bad, app_config)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert "cannot open the store" in app.notices[-1]
        await press(pilot, "2", "3", "1")
        assert "No runs yet" in screen_text(app)


async def test_quit_with_a_run_training_here_asks_and_cancels_it(fixture_db: Path, app_config, monkeypatch) -> None:
    import asyncio
    import threading

    cancelled = threading.Event()

    async def fake_train(config, store, registry, resume_run_id=None):
        flag = threading.Event()
        registry.register("r20990101-000000-00000000", flag)
        registry.active += 1
        try:
            while not flag.is_set():
                await asyncio.sleep(0.01)
            cancelled.set()
            return "r20990101-000000-00000000"
        finally:
            registry.active -= 1

    monkeypatch.setattr(operations, "train", fake_train)
    app = fixed_app(fixture_db, app_config)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.start_run(app.config)
        await pilot.pause()
        await press(pilot, "q")
        assert isinstance(app.screen, ConfirmScreen) and "Quit and cancel it?" in screen_text(app)
        await press(pilot, "n")
        assert app.is_running and not cancelled.is_set()
        await pilot.press("q", "y")
        await app.workers.wait_for_complete()
    assert cancelled.is_set()
