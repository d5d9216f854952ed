"""Pilot tests of the inspector's Config (valid TOML), Artifacts (checkpoints) and Events (wrapping, empty filter)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from textual.widgets import DataTable, Static

from ragweld_tui.config import parse_config
from ragweld_tui.toml_text import to_toml
from ragweld_tui.widgets.event_log import EventLog
from store import CheckpointEvent, LogEvent, MetricsEvent, RunStore
from tests.tui.conftest import fixed_app, screen_text, settle

LONG = "the tokenizer cut " + " ".join(f"document-{i}" for i in range(40)) + " END-OF-MESSAGE"


async def press(pilot, *keys: str) -> None:
    for key in keys:
        await pilot.press(key)
        await settle(pilot)


async def _reranker_run(db: Path) -> tuple[str, Path]:
    """A reranker run stored with the app's whole effective config (nulls and a [chat] section included)."""
    config = json.loads(parse_config({"train": {"max_steps": 4}}, "test").model_dump_json())
    assert config["chat"] and any(v is None for section in config.values() for v in section.values())
    store = await RunStore.open(db)
    try:
        run = await store.create_run("reranker", "toml", "torch", "embedded:tiny-qwen3-reranker", config, None,
                                     "mrr@10")
        await store.set_status(run, "running")
        await store.append_events(run, [(MetricsEvent(values={"train/loss": 1.0}), 1),
                                        (LogEvent(level="warning", message=LONG), 1),
                                        (CheckpointEvent(path="checkpoints/step-0000002", step=2), 2)])
        await store.set_status(run, "completed")
        run_dir = store.artifact_path(run, "checkpoints").parent
    finally:
        await store.close()
    checkpoint = run_dir / "checkpoints" / "step-0000002"
    checkpoint.mkdir(parents=True)
    (checkpoint / "adapter.safetensors").write_bytes(b"x" * 2048)
    return run, run_dir


def test_toml_text_round_trips() -> None:
    data = {"top": 1, "a": {"s": 'quote " and \\ and ünï', "f": 1e-06, "nan": float("nan"), "none": None,
                            "list": [1, 2], "b": {"deep": True}}, "metrics": {"mrr@10": 0.5}}
    parsed = tomllib.loads(to_toml(data))
    assert parsed["a"]["s"] == data["a"]["s"] and parsed["a"]["f"] == 1e-06 and "none" not in parsed["a"]
    assert parsed["a"]["b"] == {"deep": True} and parsed["metrics"] == {"mrr@10": 0.5} and parsed["top"] == 1


async def test_config_tab_is_valid_toml_of_the_effective_config(tmp_path: Path, app_config) -> None:
    db = tmp_path / "store.sqlite"
    run, run_dir = await _reranker_run(db)
    app = fixed_app(db, app_config)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press(pilot, "enter")
        text = str(app.screen.query_one("#config-text", Static).content)
        assert "null" not in text and "[chat]" not in text and f"# run folder: {run_dir}" in text, text
        loaded = parse_config(tomllib.loads(text), "the Config tab")
        assert loaded.train.max_steps == 4 and loaded.train.kind == "reranker"

        await press(pilot, "right_square_bracket", "right_square_bracket")  # Artifacts
        table = app.screen.query_one("#artifacts-table", DataTable)
        rows = [[str(cell) for cell in table.get_row(key)] for key in table.rows]
        assert ["checkpoint", "checkpoints/step-0000002", "2.0 KiB", "—"] in rows, rows

        await press(pilot, "left_square_bracket", "left_square_bracket", "left_square_bracket")  # Events
        text = screen_text(app)
        assert "END-OF-MESSAGE" in text and app.focused is not app.screen.query_one("#event-log"), text
        await press(pilot, "l", "l")  # warning → error: nothing left to show, and it says so
        assert "(no events at level error or above; l changes the level)" in screen_text(app)
        await press(pilot, "l")  # debug: everything again
        log = app.screen.query_one(EventLog)
        assert log.shown == len(log.records) and "no events at level" not in screen_text(app)
