"""Pilot tests of each screen's keys and the main flows on the fixed store (no model, no training)."""

from __future__ import annotations

import re
from pathlib import Path

from textual.widgets import OptionList, Static

from ragweld_tui.config import AppConfig, parse_config
from ragweld_tui.screens.confirm import ConfirmScreen
from ragweld_tui.screens.delete import DeleteScreen
from ragweld_tui.screens.diff import DiffScreen
from ragweld_tui.screens.inspector import InspectorScreen
from ragweld_tui.screens.new_run import NewRunScreen, field_id
from ragweld_tui.screens.promote import PromoteScreen
from ragweld_tui.widgets.event_log import EventLog
from ragweld_tui.widgets.runs_table import RunsTable
from store import RunStore
from tests.tui.conftest import fixed_app, screen_text, settle
from tests.tui.fixture_db import RUN_A, RUN_B, RUN_C
from trainers.promotion import GateDecision, PromotionRefused


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
        assert "learning_rate = 0.0002" in str(screen.query_one("#config-text", Static).content)
        await press(pilot, "right_square_bracket")  # the run's DatasetEvent, not its log lines
        text = screen_text(app)
        assert "16 queries, 64 positives" in text and "split           12 train / 4 dev queries" in text
        assert "source          the bundled demo" in text and re.search(r"  negatives +320\n", text)
        await press(pilot, "right_square_bracket")
        assert "adapter/adapter_model.safetensors  1.5 MiB" in screen_text(app)
        await press(pilot, "right_square_bracket")
        assert '"run_id": "r20250101-120000-0000000a"' in screen_text(app)
        await press(pilot, "right_square_bracket")
        text = screen_text(app)
        assert "gate verdict 2025-01-01 12:04:24Z: promoted" in text and "baseline        0.41  ◂ to beat" in text
        assert "  - improves on the baseline by +0.0600" in text
        log = app.screen.query_one(EventLog)
        assert len(log.records) == 259  # every event of the run is buffered, whatever the filter
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
        assert "alarm      ⚠ loss 8.1e+05 is over 100× its running mean at step 12 (loss" in text
        assert "divergence: 8.1e+05, limit 100)" in text  # a long message wraps under itself
        await press(pilot, "l")
        text = screen_text(app)
        assert "grad norm 1e6 clipped" not in text and "→ failed" in text and "alarm      ⚠" not in text


async def test_sort_filter_mark_and_compare(fixture_db: Path, app_config) -> None:
    app = fixed_app(fixture_db, app_config)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(RunsTable)
        await press(pilot, "t")  # kind (type): reranker
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
        folder = fixture_db.parent / "runs" / RUN_C
        folder.mkdir(parents=True)
        (folder / "adapter.bin").write_bytes(b"x" * 2048)
        await press(pilot, "down", "d")  # it asks whether the run's files go too, with their size
        assert isinstance(app.screen, DeleteScreen) and "holds 2.0 KiB" in screen_text(app)
        await press(pilot, "n")
        assert table.row_count == 4 and folder.exists()
        await press(pilot, "d", "y")
        app.screen.request_refresh()
        await settle(pilot)
        assert table.row_count == 3 and RUN_C not in [str(k.value) for k in table.rows] and not folder.exists()
        assert "Deleted run r20250103-120000-0000000c and its files" in app.notices[-1]
        await press(pilot, "d", "k")  # keep the files: the run goes, its folder stays
        app.screen.request_refresh()
        await settle(pilot)
        assert table.row_count == 2 and "its files are kept" in app.notices[-1]
        await press(pilot, "G", "d")  # the active ★ run: refused before asking
        assert not isinstance(app.screen, DeleteScreen) and "is the active ★ reranker adapter" in app.notices[-1]


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


async def test_promote_and_rollback_through_the_real_gate(fixture_db: Path, tmp_path: Path) -> None:
    # The real trainers: run A's adapter folder holds no complete adapter, so the gate refuses it even
    # forced; the lineage (A promoted over the base, the active link serving A's version as the
    # store says) rolls back to the base, then has nothing left.
    version = tmp_path / ".versions" / "active" / RUN_A
    version.mkdir(parents=True)
    (tmp_path / "active").symlink_to(version)
    config = parse_config({"serving": {"active_adapter": str(tmp_path / "active")}}, "test")
    app = fixed_app(fixture_db, config)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        await press(pilot, "down", "down", "down", "p")  # cisi-lora-r8: the gate's dry run, then the dialog
        assert isinstance(app.screen, PromoteScreen)
        text = screen_text(app)
        assert "mrr@10 (maximize) on the run's dev candidates:" in text and "The gate says NO." in text
        assert re.search(r"  baseline +0\.41  ◂ to beat", text) and "  - the run has no complete adapter" in text
        await press(pilot, "P")  # forcing waives the metric, never a missing adapter
        text = screen_text(app)
        assert "Force-promote" in text and "The gate says NO, even forced" in text and "P force" not in text
        await press(pilot, "y")  # tried anyway: refused, and the verdict is recorded
        assert "Not promoted: the run has no complete adapter" in app.notices[-1]
        await press(pilot, "enter", "left_square_bracket", "left_square_bracket")  # the inspector's Promotion tab
        assert "(latest of 2 verdicts)" in screen_text(app) and "not promoted (forced" not in screen_text(app)
        await press(pilot, "escape", "up", "r")  # a completed run is not resumed
        assert "only interrupted or cancelled runs can be resumed" in app.notices[-1]
        await press(pilot, "b")  # the question names what is restored
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.question == ("Roll the active reranker adapter back from run cisi-lora-r8 (0000000a) "
                                       "to the base model (no adapter)?")
        await press(pilot, "y")
        assert "Rolled back: now serving the base model" in app.notices[-1]
        await press(pilot, "b")  # nothing left: refused up front, no question
        assert not isinstance(app.screen, ConfirmScreen)
        assert "Nothing to roll back: the base model is already the active reranker." in app.notices[-1]


async def test_promote_dialog_shows_every_figure_and_forces(fixture_db: Path, app_config, monkeypatch) -> None:
    # The trainers' gate is replaced here only to show figures a fixture run cannot earn (a serving
    # adapter to beat); the decisions are the trainers' own types.
    calls: list[tuple[object, ...]] = []
    figures = {"tuned": 0.43, "baseline": 0.41, "first stage": 0.38, f"serving run {RUN_A}": 0.47}
    below = "improvement -0.0400 over the serving adapter is below epsilon 0.01"

    def decision(force: bool) -> GateDecision:
        if force:
            return GateDecision(True, ["forced"], figures, f"serving run {RUN_A}", "mrr@10", forced=True)
        return GateDecision(False, [below], figures, f"serving run {RUN_A}", "mrr@10")

    async def decide(store: RunStore, config: AppConfig, run_id: str, force: bool = False) -> GateDecision:
        calls.append(("decide", run_id, force))
        return decision(force)

    async def promote(store: RunStore, config: AppConfig, run_id: str, force: bool = False) -> GateDecision:
        calls.append(("promote", run_id, force))
        if not force:
            raise PromotionRefused(decision(force))
        return decision(force)

    async def rollback(store: RunStore, config: AppConfig, kind: str = "reranker") -> str | None:
        calls.append(("rollback", kind))
        return RUN_A

    monkeypatch.setattr("trainers.promotion.decide", decide)
    monkeypatch.setattr("trainers.promotion.promote", promote)
    monkeypatch.setattr("trainers.promotion.rollback", rollback)
    app = fixed_app(fixture_db, app_config)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        await press(pilot, "down", "down", "p")  # cisi-lr-high: the gate's dry run, then the dialog
        assert isinstance(app.screen, PromoteScreen)
        text = screen_text(app)
        assert "mrr@10 (maximize) on the run's dev candidates:" in text and re.search(r"  first stage +0\.38 ", text)
        assert re.search(rf"  serving run {RUN_A} +0\.47  ◂ to beat", text) and "The gate says NO." in text
        assert "P forces it" in text and "y try anyway" in text
        await press(pilot, "y")  # tried anyway: refused
        assert f"Not promoted: {below} (P forces it" in app.notices[-1]
        await press(pilot, "p", "P")  # forcing from the dialog asks the gate again, forced
        text = screen_text(app)
        assert isinstance(app.screen, PromoteScreen) and "Force-promote" in text and "YES (forced" in text
        assert "P force" not in text
        await press(pilot, "y")
        assert "Promoted: forced" in app.notices[-1]
        await press(pilot, "p", "n")  # a dialog answered no changes nothing
        assert not isinstance(app.screen, PromoteScreen)
        await press(pilot, "b", "y")
        assert f"Rolled back: now serving run {RUN_A}" in app.notices[-1]
        await press(pilot, "up", "up", "p")  # an interrupted run cannot be promoted
        assert "only completed or cancelled runs can be promoted" in app.notices[-1]
    assert calls == [("decide", RUN_B, False), ("promote", RUN_B, False), ("decide", RUN_B, False),
                     ("decide", RUN_B, True), ("promote", RUN_B, True), ("decide", RUN_B, False),
                     ("rollback", "reranker")]


async def test_promote_reports_a_gate_that_cannot_be_computed(fixture_db: Path, app_config, monkeypatch) -> None:
    async def decide(store: RunStore, config: AppConfig, run_id: str, force: bool = False) -> GateDecision:
        raise OSError("weights unreadable")

    monkeypatch.setattr("trainers.promotion.decide", decide)
    app = fixed_app(fixture_db, app_config)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await press(pilot, "down", "down", "p")
        assert not isinstance(app.screen, PromoteScreen)
        assert "cannot check the promotion gate: OSError: weights unreadable" in app.notices[-1]


async def test_alarms_show_in_the_runs_list_and_the_hud(fixture_db: Path, app_config) -> None:
    app = fixed_app(fixture_db, app_config)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(RunsTable)
        statuses = {str(key.value): str(table.get_row(key)[3]) for key in table.rows}
        assert statuses[RUN_C] == "⚠ failed 1m05s" and statuses[RUN_B] == "completed 7m11s"
        assert "⚠ failed 1m05s" in screen_text(app)
        await press(pilot, "down")
        assert "⚠ loss 8.1e+05 is" in screen_text(app)
        await press(pilot, "2")  # the HUD follows the alarmed run
        alarm = app.screen.query_one("#hud-alarm")
        assert alarm.display and "⚠ loss 8.1e+05 is over 100× its running mean at step 12" in screen_text(app)
        await press(pilot, "1", "down", "2")  # a run without an alarm: the line takes no room
        assert not alarm.display and "⚠" not in screen_text(app)


async def test_inspector_shows_a_refused_verdict_with_its_figures(fixture_db: Path, app_config) -> None:
    app = fixed_app(fixture_db, app_config)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await press(pilot, "down", "down", "enter", "left_square_bracket", "left_square_bracket")
        text = screen_text(app)
        assert re.search(r"gate verdict 2025-01-02 [\d:]+Z: not promoted\n", text), text
        assert re.search(rf"  serving run {RUN_A} +0\.47  ◂ to beat", text) and re.search(r"  tuned +0\.43\n", text)
        assert "  - improvement -0.0400 over the serving adapter" in text and "promoted: no" in text
        await press(pilot, "right_square_bracket")
        assert "promotion  not promoted on mrr@10 — tuned 0.43 · baseline 0.41" in screen_text(app)


async def test_cancel_routes_to_the_owner(fixture_db: Path, app_config) -> None:
    import socket
    import subprocess
    import sys

    app = fixed_app(fixture_db, app_config)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await press(pilot, "down", "x")  # a failed run cannot be cancelled
        assert "only running runs can be cancelled" in app.notices[-1]
        # The run's owner is another process (a detached run): it gets SIGINT, as Ctrl-C headless.
        owner = subprocess.Popen([sys.executable, "-c", "import signal, sys, time\n"
                                  "signal.signal(signal.SIGINT, lambda *_: sys.exit(130))\n"
                                  "print('ready', flush=True)\ntime.sleep(60)"],
                                 stdout=subprocess.PIPE, text=True)
        try:
            assert owner.stdout is not None and owner.stdout.readline().strip() == "ready"
            run = next(r for r in app.screen.runs if r.id == RUN_C)
            app.cancel_run(run.model_copy(update={"owner_pid": owner.pid, "owner_host": socket.gethostname()}))
            assert owner.wait(timeout=30) == 130
            assert f"sent SIGINT to process {owner.pid}" in app.notices[-1]
        finally:
            owner.kill()
            owner.wait()


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
        for needle in ("Help · Runs", "New", "Promote", "Force promote", "Inspect", "Filter"):
            assert needle in text, needle
        assert ("q", "Quit") in app.screen.bindings and ("S", "Reverse") in app.screen.bindings  # (scrolled)
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
