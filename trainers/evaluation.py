"""Evaluation of a scorer over each dev query's candidate list, the first stage's own ranking on the
same lists, and the telemetry projection of the trainable parameters onto two fixed random directions.

Every system is measured on identical candidate lists (the first stage's top-k when the data has a
corpus), so the first stage, the base, the serving adapter and the tuned adapter are comparable
figure for figure. Each evaluation keeps its rankings, written as TREC run files, so any IR library
can recompute the reported metrics.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from backends.batching import token_budget_batches
from backends.prompt import PromptBuilder
from trainers.engine_base import RerankScorer
from trainers.data_model import Candidates, QueryExample
from trainers.metrics import evaluate_rankings, rank_order

Ranking = list[tuple[str, float]]  # (document id, score), best first


@dataclass
class Evaluation:
    """One system's dev evaluation: mean metrics, each query's ranking, and what it cost.

    `timing` (rerankers only): latency per query `latency_p50_ms` / `latency_p95_ms` and
    `pairs_per_s`. `spread` is the mean over queries of the standard deviation of the scores (a
    collapsed model scores every candidate alike: spread ~ 0). Agent evaluations carry metrics only.
    """

    metrics: dict[str, float]
    rankings: dict[str, Ranking] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)
    spread: float | None = None
    prefixed_pairs: int = 0  # pairs scored through their query's shared key/value cache


def _summarise(per_query: list[tuple[str, Candidates, np.ndarray]]) -> tuple[dict[str, float], dict[str, Ranking], float]:
    """Mean metrics, rankings in the evaluated (pessimistic-tie) order and the mean score spread."""
    means = evaluate_rankings((scores, cand.labels, cand.judged) for _, cand, scores in per_query)
    rankings = {qid: [(cand.ids[i], float(scores[i])) for i in rank_order(scores, cand.labels)]
                for qid, cand, scores in per_query}
    spreads = [float(np.std(scores)) if len(scores) > 1 else 0.0 for _, _, scores in per_query]
    return means, rankings, float(np.mean(spreads))


def evaluate_queries(engine: RerankScorer, builder: PromptBuilder, queries: Sequence[QueryExample],
                     token_budget: int = 16384, max_batch_size: int = 64) -> Evaluation:
    """MRR@10, nDCG@10, Recall@10 and MAP over the dev queries, timed query by query.

    Each query's candidates are scored as one rerank request would be: the shared head (prompt,
    instruction, query) runs once and its key/value cache serves every candidate, in batches of
    similar tail length under the token budget, so the latency percentiles are those a caller of
    the reranker would see, and a short run spends little of its time evaluating.
    """
    per_query, seconds, pairs, prefixed = [], [], 0, 0
    for example in queries:
        cand = example.candidates()
        head, tails = builder.build_parts(example.query, cand.docs) if cand.docs else ([], [])
        scores = np.empty(len(tails))
        start = time.perf_counter()
        if len(tails) > 1:
            state = engine.prefix_state(head)
            for batch in token_budget_batches([len(t) for t in tails], token_budget, max_batch_size):
                scores[batch] = engine.logodds_after(state, [tails[i] for i in batch])
            prefixed += len(tails)
        elif tails:
            scores[:] = engine.logodds([head + tails[0]])
        seconds.append(time.perf_counter() - start)
        pairs += len(tails)
        per_query.append((example.qid, cand, scores))
    metrics, rankings, spread = _summarise(per_query)
    total = sum(seconds)
    timing = {"latency_p50_ms": float(np.percentile(seconds, 50) * 1e3),
              "latency_p95_ms": float(np.percentile(seconds, 95) * 1e3),
              "pairs_per_s": pairs / total if total > 0 else 0.0}
    return Evaluation(metrics, rankings, timing, spread, prefixed_pairs=prefixed)


def evaluate_first_stage(queries: Sequence[QueryExample]) -> Evaluation | None:
    """The first stage's own order on the dev candidates (None when the data has no first stage)."""
    per_query = []
    for example in queries:
        cand = example.candidates()
        if cand.first_stage_scores is None:
            return None
        per_query.append((example.qid, cand, np.asarray(cand.first_stage_scores, dtype=np.float64)))
    metrics, rankings, spread = _summarise(per_query)
    return Evaluation(metrics, rankings, spread=spread)


def dev_qrels(queries: Sequence[QueryExample]) -> dict[str, dict[str, float]]:
    """The judgments the dev metrics use, per query: every graded document when the data has a
    first stage (retrieved or not), else the candidate list's own labels."""
    qrels = {}
    for example in queries:
        cand = example.candidates()
        if cand.judged is not None:
            qrels[example.qid] = dict(example.grades)
        else:
            qrels[example.qid] = dict(zip(cand.ids, cand.labels))
    return qrels




class Projector:
    """Projects parameter displacement from the start onto two seeded random orthonormal directions.

    The directions depend only on the seed and the parameter count, so a resumed run (and the TUI
    replaying events) draws the same scatter.
    """

    def __init__(self, origin: np.ndarray, seed: int) -> None:
        rng = np.random.default_rng([seed, 0x5CA7])
        basis = rng.standard_normal((2, origin.size))
        basis[0] /= np.linalg.norm(basis[0])
        basis[1] -= basis[1] @ basis[0] * basis[0]
        basis[1] /= np.linalg.norm(basis[1])
        self.origin = origin.astype(np.float64)
        self.basis = basis

    def __call__(self, params: np.ndarray) -> tuple[float, float]:
        x, y = self.basis @ (params.astype(np.float64) - self.origin)
        return float(x), float(y)
