"""PyTorch vs MLX vs the model-card reference, on a tiny Qwen3 and real documents of mixed lengths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backends.base import sigmoid
from backends.scorer import Reranker, ScorerSettings

QUERIES = ["library classification systems", "information retrieval evaluation measures",
           "citation indexing of scientific journals", "automatic indexing of documents",
           "user needs in information seeking"]


@pytest.fixture(scope="module")
def workload(cisi_docs: list[str]) -> list[tuple[str, list[str]]]:
    """5 queries x 12 docs = 60 pairs, lengths from a few words to full abstracts."""
    rng = np.random.default_rng(0)
    work = []
    for qi, query in enumerate(QUERIES):
        docs = []
        for doc in rng.choice(cisi_docs, size=12, replace=False):
            words = doc.split()
            docs.append(" ".join(words[: int(rng.integers(3, max(4, len(words))))]))
        work.append((query, docs))
    return work


@pytest.fixture(scope="module")
def scorers(tiny_model_dir: Path):
    # fp32 pinned: `auto` is bf16 on CPUs with fast bf16 matmul, and these are exactness checks.
    loaded = {b: Reranker.load(ScorerSettings(model=str(tiny_model_dir), backend=b, dtype="float32", max_length=512,
                                              token_budget=2048)) for b in ("torch", "mlx")}
    yield loaded
    for r in loaded.values():
        r.close()


def test_torch_and_mlx_agree(scorers, workload) -> None:
    pairs = 0
    for query, docs in workload:
        t = np.array([s.logit for s in scorers["torch"].score(query, docs)])
        m = np.array([s.logit for s in scorers["mlx"].score(query, docs)])
        pairs += len(docs)
        assert np.max(np.abs(sigmoid(t) - sigmoid(m))) <= 1e-4
        assert np.max(np.abs(t - m)) <= 1e-3
        assert list(np.argsort(-t, kind="stable")) == list(np.argsort(-m, kind="stable"))
        assert np.std(t) > 1e-3  # the fixture model discriminates, so the check has teeth
    assert pairs >= 50


def test_scores_equal_model_card_reference(scorers, workload, tiny_model_dir: Path) -> None:
    from backends.reference import model_card_logodds

    torch_scorer = scorers["torch"]
    model = torch_scorer.engine.model
    for query, docs in workload:
        ours = np.array([s.logit for s in torch_scorer.score(query, docs)])
        ref = model_card_logodds(model, torch_scorer.tokenizer, query, docs, torch_scorer.settings.instruction, 512)
        assert np.max(np.abs(sigmoid(ours) - sigmoid(ref))) <= 1e-5
        assert np.max(np.abs(ours - ref)) <= 1e-4


def test_results_come_back_in_input_order_across_batches(scorers, workload) -> None:
    query, docs = workload[0]
    scorer = scorers["torch"]
    together = [s.logit for s in scorer.score(query, docs)]
    one_by_one = [scorer.score(query, [d])[0].logit for d in docs]
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    assert scorer.last_stats.batches == 1
    scorer.score(query, docs)
    assert scorer.last_stats.pairs == len(docs)


@pytest.mark.parametrize("backend", ["torch", "mlx"])
def test_prefix_cache_path_equals_full_rows(scorers, workload, backend: str) -> None:
    scorer = scorers[backend]
    for query, docs in workload[:2]:
        head, tails = scorer.builder.build_parts(query, docs)
        cached = scorer.score_prefixed(head, tails)
        full = scorer.score_rows([head + t for t in tails])
        assert np.max(np.abs(sigmoid(cached) - sigmoid(full))) <= 1e-5
        np.testing.assert_allclose(cached, full, atol=1e-4)
    # A second query reuses nothing stale from the first one's cache, and score() takes the prefix path.
    other = scorer.score(workload[2][0], workload[2][1])
    assert scorer.last_stats.prefixed and scorer.last_stats.pairs == len(workload[2][1]) > 1
    rows = scorer.builder.build(workload[2][0], workload[2][1])
    assert np.max(np.abs(sigmoid(np.array([s.logit for s in other])) - sigmoid(scorer.score_rows(rows)))) <= 1e-5
    assert not scorer.last_stats.prefixed
    # A new adapter makes the memoised prefix stale: the same query is computed afresh with it.
    from tests.test_service import random_lora

    query, docs = workload[2]
    scorer.engine.apply_lora(random_lora(5))
    try:
        tuned = np.array([s.logit for s in scorer.score(query, docs)])
        assert scorer.last_stats.prefixed and not np.allclose(tuned, [s.logit for s in other], atol=1e-3)
        assert np.max(np.abs(sigmoid(tuned) - sigmoid(scorer.score_rows(rows)))) <= 1e-5
    finally:
        scorer.engine.apply_lora(None)
