"""End-to-end flows with the real trainer and the embedded tiny model: start a run from the form (its
own process) and watch its metrics arrive, pause it, promote a finished run, and score in the debug prompt."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ragweld_tui.app import make_app
from trainers.settings import AppConfig
from ragweld_tui.config import parse_config
from ragweld_tui.screens.repl import ReplScreen
from ragweld_tui.widgets.runs_table import RunsTable
from tests.tui.conftest import MANUAL, refresh, screen_text, settle

pytestmark = pytest.mark.slow


def tiny_config(folder: Path, **train: object) -> AppConfig:
    """A fast torch run on the bundled demo data, with everything it writes inside `folder`."""
    settings = {"name": "tui-run", "max_steps": 4, "eval_every": 2, "checkpoint_every": 2, "batch_size": 4,
                "group_size": 4, "learning_rate": 1e-3, "max_length": 160, "warmup_steps": 1,
                "auto_promote": False} | train
    return parse_config({"model": {"backend": "torch"},
                         "store": {"path": str(folder / "db.sqlite"), "runs_root": str(folder / "runs")},
                         "serving": {"active_adapter": str(folder / "active" / "reranker")},
                         "data": {"max_queries": 16, "bm25_candidates": 8}, "train": settings}, "test")


async def wait_until(pilot, predicate, what: str, attempts: int = 100) -> str:
    """Refresh the views until `predicate(screen text)` holds (the trainer runs on its own schedule)."""
    import asyncio

    for _ in range(attempts):
        await refresh(pilot)
        text = screen_text(pilot.app)
        if predicate(text):
            return text
        await asyncio.sleep(0.05)
    raise AssertionError(f"never saw {what}; notices {list(pilot.app.notices)}; screen:\n{screen_text(pilot.app)}")


async def test_start_watch_and_cancel_a_run(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, max_steps=400, eval_every=200, checkpoint_every=200)
    app = make_app(config, poll_interval_s=MANUAL)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        await pilot.press("ctrl+s")
        await pilot.press("2")
        app.lag_probe.reset()
        def live(text: str) -> bool:
            steps = re.search(r"step (\d+)/400", text)
            return "tui-run" in text and "· running" in text and steps is not None and int(steps.group(1)) >= 3

        text = await wait_until(pilot, live, "metrics of the live run in the HUD", attempts=600)
        assert "train loss" in text
        lag = app.lag_probe.summary()
        print(f"event-loop lag while training: {lag}")
        assert lag["samples"] > 10 and lag["p99_ms"] < 500  # loose bound on a 2-core CI box; see bench/tui_lag.py
        await pilot.press("1")
        await refresh(pilot)
        table = app.screen.query_one(RunsTable)
        await pilot.press("up")  # the new run is the newest, first row
        await settle(pilot)
        run = app.screen.current_run()
        assert run is not None and run.name == "tui-run" and run.status == "running"
        await pilot.press("x")
        await settle(pilot)
        assert "keeps its checkpoint" in screen_text(app)
        await pilot.press("y")
        await wait_until(pilot, lambda t: "cancelled" in t, "the run cancelled", attempts=600)
        await app.workers.wait_for_complete()  # the launch's watcher ends with its process
        assert table.row_count == 1 and all(started.process.poll() == 130 for started in app.launches)
        assert any("ended: cancelled" in n for n in app.notices)


async def test_promote_a_finished_run_and_score_in_the_prompt(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    app = make_app(config, poll_interval_s=MANUAL)
    async with app.run_test(size=(120, 34)) as pilot:
        await settle(pilot)
        app.start_run(config)
        await settle(pilot)
        await wait_until(pilot, lambda t: "completed" in t, "the run completed", attempts=1200)
        await pilot.press("P")
        await settle(pilot)
        await pilot.press("y")
        await wait_until(pilot, lambda t: "★" in t, "the promoted marker")
        assert any(n.startswith("information: Promoted") for n in app.notices), list(app.notices)
        await pilot.press("4")
        await settle(pilot)
        repl = app.screen
        assert isinstance(repl, ReplScreen)
        assert "active/reranker" in screen_text(app)  # the promoted adapter is the one compared
        repl.query_one("#prompt").value = "citation indexing | citation indexes for science | a recipe for bread"
        await pilot.press("enter")
        await settle(pilot)
        text = screen_text(app)
        assert "adapter" in text and "rk" in text and "no adapter to compare" not in text
        assert "scoring failed" not in text
        await repl.scorers.close()


async def test_agent_mode_streams_a_reply(tmp_path: Path) -> None:
    config = parse_config({"store": {"path": str(tmp_path / "db.sqlite")},
                           "serving": {"active_adapter": str(tmp_path / "active" / "reranker")},
                           "chat": {"max_tokens": 12, "temperature": 0.0}}, "test")
    app = make_app(config, poll_interval_s=MANUAL)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("4")
        await settle(pilot)
        repl = app.screen
        prompt = repl.query_one("#prompt")
        for line in ("/mode agent", "Hello there"):
            prompt.value = line
            await pilot.press("enter")
            await settle(pilot)
        text = screen_text(app)
        assert "mode agent" in text and "embedded:tiny-qwen3-chat" in text
        assert "agent>" in text and "reply in" in text and "chat failed" not in text, text
        assert len(repl.chat.history) == 2 and repl.chat.history[0] == {"role": "user", "content": "Hello there"}
        prompt.value = "/reset"
        await pilot.press("enter")
        await settle(pilot)
        assert repl.chat.history == []
        await repl.chat.close()
