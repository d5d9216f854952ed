"""The server's scoring worker on both backends: batches of concurrent requests, scores unchanged."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from backends.prompt import PromptError
from backends.rerank_worker import QueueFull, RerankWorker
from backends.scorer import Reranker
from backends.service import RerankService
from backends.settings import ScorerSettings
from tests.serve.server_helpers import DOCS, QUERY

REQUESTS = [(f"{QUERY} {i}", DOCS[i % 3:] + DOCS[: i % 3]) for i in range(8)]


def settings(model_dir: Path, backend: str, dtype: str = "auto") -> ScorerSettings:
    return ScorerSettings(model=str(model_dir), backend=backend, dtype=dtype, max_length=256)


async def score_concurrently(worker: RerankWorker) -> list[list[float]]:
    results = await asyncio.gather(*(worker.score(q, d) for q, d in REQUESTS))
    return [[s.logit for s in r.scores] for r in results]


@pytest.mark.parametrize("backend", ["torch", "mlx"])
async def test_batched_requests_score_exactly_as_alone(tiny_model_dir: Path, backend: str) -> None:
    worker = RerankWorker(RerankService(settings(tiny_model_dir, backend)), max_queue=16)
    worker.start()
    try:
        batched = await score_concurrently(worker)
        assert worker.batches < len(REQUESTS) and worker.batched_requests == len(REQUESTS)  # requests were coalesced
    finally:
        await worker.stop()
        await worker.service.close()
    reranker = Reranker.load(settings(tiny_model_dir, backend))
    alone = [[s.logit for s in reranker.score(q, d)] for q, d in REQUESTS]
    reranker.close()
    assert batched == alone  # exactly: a document's score never depends on what else was in flight


async def test_both_backends_agree_through_the_worker(tiny_model_dir: Path) -> None:
    by_backend = {}
    for backend in ("torch", "mlx"):
        # fp32 pinned: a parity check, and `auto` is bf16 on CPUs with fast bf16 matmul.
        worker = RerankWorker(RerankService(settings(tiny_model_dir, backend, "float32")))
        worker.start()
        by_backend[backend] = await score_concurrently(worker)
        await worker.stop()
        await worker.service.close()
    np.testing.assert_allclose(by_backend["mlx"], by_backend["torch"], atol=1e-4)


async def test_token_budget_bounds_a_batch(tiny_model_dir: Path) -> None:
    worker = RerankWorker(RerankService(settings(tiny_model_dir, "torch")), max_queue=16, token_budget=64)
    worker.start()
    try:
        await score_concurrently(worker)
        assert worker.batches == len(REQUESTS)  # every request alone is over the budget: one per batch
    finally:
        await worker.stop()
        await worker.service.close()


async def test_full_queue_and_bad_prompts(tiny_model_dir: Path) -> None:
    worker = RerankWorker(RerankService(settings(tiny_model_dir, "torch")), max_queue=1)
    first = asyncio.create_task(worker.score(QUERY, DOCS))  # queued (the worker is not running yet)
    while worker.waiting == 0:
        await asyncio.sleep(0.01)
    with pytest.raises(QueueFull) as info:
        await worker.score(QUERY, DOCS)
    assert info.value.retry_after_s >= 1
    worker.start()
    assert len((await first).scores) == len(DOCS)
    await worker.stop()
    # A prompt the scorer refuses fails its own request only; the others of its batch are answered.
    worker = RerankWorker(worker.service, max_queue=4)
    pending = [asyncio.create_task(worker.score("word " * 400, DOCS)), asyncio.create_task(worker.score(QUERY, DOCS))]
    while worker.waiting < 2:
        await asyncio.sleep(0.01)
    worker.start()
    results = await asyncio.gather(*pending, return_exceptions=True)
    assert worker.batches == 1
    assert isinstance(results[0], PromptError) and "max_length" in str(results[0])
    assert not isinstance(results[1], BaseException) and len(results[1].scores) == len(DOCS)
    await worker.stop()
    await worker.service.close()
