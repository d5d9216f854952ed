"""The new-run form and the debug prompt offer the model catalog (with the local Hugging Face cache)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from backends.settings import EMBEDDED_CHAT, EMBEDDED_RERANKER
from ragweld_tui.screens.new_run import BASE_ID, KIND_ID, NewRunScreen
from tests.hf_layouts import REAL_CONFIG, RERANKER_ID, write_snapshot_files
from tests.tui.conftest import fixed_app, screen_text, settle
from tests.tui.test_tui_flows import press

CACHED_ONLY = "someone/qwen3-reranker-finetune"


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A hub cache with the 0.6B reranker and a model only the cache knows, made huggingface_hub's cache."""
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    for repo in (RERANKER_ID, CACHED_ONLY):
        write_snapshot_files(cache, repo, {"config.json": json.dumps(REAL_CONFIG).encode()})
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


async def test_new_run_form_offers_the_catalog(fixture_db: Path, app_config, hub: Path) -> None:
    app = fixed_app(fixture_db, app_config)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await press(pilot, "n")
        form = app.screen
        assert isinstance(form, NewRunScreen)
        await pilot.app.workers.wait_for_complete()
        await settle(pilot)
        base = form.query_one(f"#{BASE_ID}")
        assert await base.suggester.get_suggestion("Qwen/Qwen3-Reranker-0") == RERANKER_ID
        assert await base.suggester.get_suggestion("someone/") == CACHED_ONLY  # found in the cache only
        assert await base.suggester.get_suggestion("embedded:") == EMBEDDED_RERANKER  # the run's kind first
        base.value = RERANKER_ID
        await settle(pilot)
        assert "reranker · 0.6B · 28 layers × 1024 · mlx, torch · cached" in screen_text(app)
        form.query_one(f"#{KIND_ID}").value = "agent"
        await settle(pilot)
        assert await base.suggester.get_suggestion("embedded:") == EMBEDDED_CHAT
        base.value = "/no/such/folder"  # free text is still accepted by the field
        await settle(pilot)
        assert "not in the catalog" in screen_text(app)


async def test_repl_model_command_lists_and_sets_the_model(fixture_db: Path, app_config, hub: Path) -> None:
    app = fixed_app(fixture_db, app_config)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await press(pilot, "4")
        repl = app.screen
        await pilot.app.workers.wait_for_complete()
        await settle(pilot)
        prompt = repl.query_one("#prompt")
        prompt.value = "/model"
        await press(pilot, "enter")
        text = screen_text(app)
        assert f"model: {EMBEDDED_RERANKER}" in text and f"{RERANKER_ID} · reranker" in text and "cached" in text
        assert "Qwen/Qwen3-1.7B" not in text  # reranker mode lists rerankers
        prompt.value = f"/model {RERANKER_ID}"
        await press(pilot, "enter")
        assert repl.scorers.model == RERANKER_ID and f"model {RERANKER_ID} · backend" in screen_text(app)
        for line in ("/mode agent", "/model"):
            prompt.value = line
            await press(pilot, "enter")
        assert f"model: {EMBEDDED_CHAT}" in screen_text(app) and "Qwen/Qwen3-1.7B · chat" in screen_text(app)
        prompt.value = "/model /my/chat/folder"
        await press(pilot, "enter")
        assert repl.chat.model == "/my/chat/folder" and "model /my/chat/folder · backend" in screen_text(app)
        await repl.scorers.close()
