"""The async model manager: adapter hot reload, refusal of half-written adapters, idle unload."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from backends.adapters import LoraWeights, Manifest, write_manifest, write_mlx_adapter, write_peft_adapter
from backends.models import base_fingerprint
from backends.prompt import template_fingerprint
from backends.scorer import Reranker, ScorerSettings
from backends.service import RerankService
from tests.serve.server_helpers import random_lora

QUERY = "citation indexing"
DOCS = ["citation indexes for science", "a recipe for bread", "indexing of journals by citation", "weather"]


class ManualClock:
    """A monotonic clock the test advances explicitly, so throttling is checked without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def write_adapter(folder: Path, lora: LoraWeights, model_dir: Path, fmt: str = "peft") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "peft":
        write_peft_adapter(folder, lora, str(model_dir))
    else:
        write_mlx_adapter(folder, lora, num_layers=2)
    write_manifest(folder, Manifest(base_model=str(model_dir), base_fingerprint=base_fingerprint(model_dir),
                                    template_fingerprint=template_fingerprint(), backend=fmt, files={}))
    return folder


def settings(model_dir: Path, backend: str = "torch") -> ScorerSettings:
    return ScorerSettings(model=str(model_dir), backend=backend, max_length=256)


def logits(response) -> list[float]:
    return [s.logit for s in response.scores]


async def test_hot_reload_follows_the_active_adapter(tiny_model_dir: Path, tmp_path: Path) -> None:
    active = tmp_path / "active"
    clock = ManualClock()
    service = RerankService(settings(tiny_model_dir), active, reload_check_s=2.0, clock=clock)
    base = logits(await service.score(QUERY, DOCS))

    write_adapter(active, random_lora(1), tiny_model_dir)
    clock.now += 1.0  # inside the throttle window: not looked at yet
    assert logits(await service.score(QUERY, DOCS)) == base
    clock.now += 1.5  # past the window: swapped in
    first = await service.score(QUERY, DOCS)
    assert first.adapter_fingerprint is not None and not np.allclose(logits(first), base, atol=1e-3)

    # The same adapter served directly gives the same scores (the merge is exact).
    direct = Reranker.load(settings(tiny_model_dir))
    direct.use_adapter(active)
    np.testing.assert_allclose(logits(first), [s.logit for s in direct.score(QUERY, DOCS)], atol=1e-5)

    # Half-written: new weights but no manifest yet -> the old adapter keeps serving.
    staging = tmp_path / "staging"
    write_adapter(staging, random_lora(2), tiny_model_dir)
    (active / "manifest.json").unlink()
    shutil.copy(staging / "adapter_model.safetensors", active / "adapter_model.safetensors")
    clock.now += 5
    assert logits(await service.score(QUERY, DOCS)) == logits(first)

    # Manifest whose hashes do not match the weights -> refused, old one keeps serving.
    manifest = json.loads((staging / "manifest.json").read_text())
    manifest["files"]["adapter_model.safetensors"] = "0" * 64
    (active / "manifest.json").write_text(json.dumps(manifest))
    clock.now += 5
    assert logits(await service.score(QUERY, DOCS)) == logits(first)
    assert "sha256 does not match" in (service.last_adapter_error or "")

    # Writer finishes properly -> the new adapter is served.
    shutil.copy(staging / "manifest.json", active / "manifest.json")
    clock.now += 5
    second = logits(await service.score(QUERY, DOCS))
    assert not np.allclose(second, logits(first), atol=1e-3)

    # Active adapter removed (rollback to the base) -> base scores again.
    shutil.rmtree(active)
    clock.now += 5
    np.testing.assert_allclose(logits(await service.score(QUERY, DOCS)), base, atol=1e-6)
    await service.close()


async def test_incompatible_adapter_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    active = write_adapter(tmp_path / "active", random_lora(3), tiny_model_dir)
    manifest = json.loads((active / "manifest.json").read_text())
    manifest["base_fingerprint"] = "someotherbase000"
    (active / "manifest.json").write_text(json.dumps(manifest))
    service = RerankService(settings(tiny_model_dir), active, reload_check_s=0.0, clock=ManualClock())
    response = await service.score(QUERY, DOCS)
    assert response.adapter_fingerprint is None
    assert "trained on base" in (service.last_adapter_error or "")
    await service.close()


@pytest.mark.parametrize("backend", ["torch", "mlx"])
def test_adapter_formats_are_interchangeable(tiny_model_dir: Path, tmp_path: Path, backend: str) -> None:
    lora = random_lora(4)
    peft_dir = write_adapter(tmp_path / "peft", lora, tiny_model_dir, "peft")
    mlx_dir = write_adapter(tmp_path / "mlx", lora, tiny_model_dir, "mlx")
    reranker = Reranker.load(settings(tiny_model_dir, backend))
    reranker.use_adapter(peft_dir)
    via_peft = [s.logit for s in reranker.score(QUERY, DOCS)]
    reranker.use_adapter(mlx_dir)
    via_mlx = [s.logit for s in reranker.score(QUERY, DOCS)]
    np.testing.assert_allclose(via_peft, via_mlx, atol=1e-5)
    reranker.close()


async def test_idle_unload_never_interrupts_a_request(tiny_model_dir: Path, cisi_docs: list[str]) -> None:
    clock = ManualClock()
    service = RerankService(settings(tiny_model_dir), None, idle_unload_s=10.0, clock=clock)
    await service.score(QUERY, DOCS[:1])
    clock.now += 100  # long idle: eligible for unload
    request = asyncio.create_task(service.score(QUERY, cisi_docs[:300]))
    while service.in_flight == 0:
        await asyncio.sleep(0)
    assert await service.unload_if_idle() is False  # a request is in flight
    assert service.loaded
    response = await request
    assert len(response.scores) == 300 and service.unloads == 0
    assert await service.unload_if_idle() is False  # just used: not idle yet
    clock.now += 11
    assert await service.unload_if_idle() is True and not service.loaded
    again = await service.score(QUERY, DOCS)  # reloads on demand
    assert service.loads == 2 and len(again.scores) == len(DOCS)
    await service.close()


async def test_concurrent_requests_get_consistent_answers(tiny_model_dir: Path) -> None:
    service = RerankService(settings(tiny_model_dir), None, clock=ManualClock())
    alone = logits(await service.score(QUERY, DOCS))
    results = await asyncio.gather(*(service.score(QUERY, DOCS) for _ in range(4)))
    for response in results:
        np.testing.assert_allclose(logits(response), alone, atol=1e-6)
    assert service.loads == 1
    await service.close()


async def test_a_dangling_active_link_keeps_the_last_good_adapter(tiny_model_dir: Path, tmp_path: Path) -> None:
    version = write_adapter(tmp_path / "versions" / "one", random_lora(1), tiny_model_dir)
    active = tmp_path / "active"
    active.symlink_to(version)
    clock = ManualClock()
    service = RerankService(settings(tiny_model_dir), active, reload_check_s=1.0, clock=clock)
    served = logits(await service.score(QUERY, DOCS))
    shutil.rmtree(version)  # the version folder is gone; the link dangles
    clock.now += 5
    assert logits(await service.score(QUERY, DOCS)) == served  # never silently the plain base
    assert "missing folder" in (service.last_adapter_error or "")
    await service.close()
