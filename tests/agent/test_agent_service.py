"""AgentService: a promotion (and a rollback) swaps the adapter of a live generator and changes what
it says; early close, idle unload and refused requests."""

from __future__ import annotations

import contextlib
import shutil
import threading
from pathlib import Path

import pytest

from backends.agent_service import AgentService
from backends.chat_base import ChatInputError
from backends.generator import GeneratorSettings
from trainers.settings import AppConfig
from ragweld_tui.config import parse_config
from store import RunStore
from tests.agent.helpers import OTHER, TAUGHT

QUESTION = TAUGHT[:1]


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def agent_config(tmp_path: Path, model_dir: Path) -> AppConfig:
    return parse_config({"model": {"base": str(model_dir), "backend": "torch"},
                         "serving": {"active_adapter": str(tmp_path / "active" / "reranker")},
                         "store": {"path": str(tmp_path / "db.sqlite"), "runs_root": str(tmp_path / "runs")},
                         "train": {"kind": "agent"}}, "test")


async def completed_run(store: RunStore, model_dir: Path, adapter: Path, name: str) -> str:
    """A completed agent run whose adapter folder is `adapter` and whose eval loss beat its baseline."""
    run_id = await store.create_run("agent", name, backend="torch", base_model=str(model_dir),
                                    primary_metric="eval_loss", goal="minimize")
    await store.set_status(run_id, "running")
    await store.set_baseline(run_id, 9.0)
    await store.set_best(run_id, 1.0)
    shutil.copytree(adapter, store.artifact_path(run_id, "adapter"))
    await store.set_status(run_id, "completed")
    return run_id


async def say(service: AgentService) -> str:
    return await service.reply(QUESTION, temperature=0.0, max_tokens=16)


async def test_promotion_and_rollback_swap_the_live_adapter(tmp_path: Path, chat_model_dir: Path,
                                                            taught_adapter: Path, other_adapter: Path) -> None:
    from trainers.promotion import promote, rollback

    config = agent_config(tmp_path, chat_model_dir)
    store = await RunStore.open(config.store_path(), runs_root=config.runs_root())
    service = AgentService(GeneratorSettings(str(chat_model_dir), backend="torch"), config.active_adapter_dir("agent"),
                           reload_check_s=0.0)
    try:
        first = await completed_run(store, chat_model_dir, taught_adapter, "taught")
        second = await completed_run(store, chat_model_dir, other_adapter, "other")
        base = await say(service)
        assert base not in (TAUGHT[1]["content"], OTHER[1]["content"])
        assert (await promote(store, config, first)).promote
        assert await say(service) == TAUGHT[1]["content"]
        assert (await promote(store, config, second)).promote
        assert await say(service) == OTHER[1]["content"]
        assert await rollback(store, config, "agent") == first
        assert await say(service) == TAUGHT[1]["content"]
        assert await rollback(store, config, "agent") is None
        assert await say(service) == base
        assert service.loads == 1 and service.last_adapter_error is None  # swapped live, never reloaded
    finally:
        await service.close()
        await store.close()


async def test_a_foreign_adapter_is_refused_and_the_base_kept(tmp_path: Path, chat_model_dir: Path,
                                                              tiny_model_dir: Path, taught_adapter: Path) -> None:
    """An agent adapter trained on another base never reaches the model."""
    service = AgentService(GeneratorSettings(str(tiny_model_dir), backend="torch"), taught_adapter)
    try:
        await say(service)
        assert service.adapter_fingerprint is None and "trained on base" in (service.last_adapter_error or "")
    finally:
        await service.close()


async def test_early_close_idle_unload_and_bad_requests(chat_model_dir: Path) -> None:
    clock = ManualClock()
    service = AgentService(GeneratorSettings(str(chat_model_dir), backend="torch"), None, idle_unload_s=10.0,
                           clock=clock)
    try:
        pieces = []
        async with contextlib.aclosing(service.stream(QUESTION, temperature=0.0, max_tokens=200)) as stream:
            async for piece in stream:
                pieces.append(piece)
                if len(pieces) == 2:
                    break
        assert len(pieces) == 2 and service.in_flight == 0
        assert not [t for t in threading.enumerate() if t.name == "torch-generate"]
        with pytest.raises(ChatInputError, match="images are not supported"):
            await service.reply([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "a.png"}}]}])
        with pytest.raises(ChatInputError, match="temperature"):
            await service.reply(QUESTION, temperature=-1.0)
        assert await service.unload_if_idle() is False  # just used
        clock.now += 11.0
        assert await service.unload_if_idle() is True and not service.loaded
        assert await say(service) and service.loads == 2  # loads again on demand
    finally:
        await service.close()
