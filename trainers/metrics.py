"""Ranking metrics for reranker evaluation: MRR@10, nDCG@10, Recall@10 and MAP.

Each query is a list of candidate scores and their relevance labels (0 = not relevant, > 0 =
relevant; larger labels are more relevant and count as graded gains in nDCG). Candidates are ranked
by score, highest first. Ties are broken pessimistically: among equal scores, relevant documents
rank after non-relevant ones (and lower grades before higher ones), so a model that scores
everything alike earns the worst ranking, never a lucky one. NaN scores rank below every number.
Per-query values are averaged with equal weight per query.

Judged-but-missed documents: a reranker only sees what a first stage retrieved, so a relevant
document outside the candidate list is a miss. `judged` passes the grades of every relevant
document of the query (from the full qrels); Recall and MAP then divide by all of them and the
ideal DCG sorts all of them, as trec_eval does. Without `judged` the candidate list is the whole
truth (triplet data, where nothing exists outside it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import NDArray

CUTOFF = 10
METRIC_NAMES = ("mrr@10", "ndcg@10", "recall@10", "map")
METRIC_GOALS: dict[str, str] = {
    "mrr@10": "maximize",
    "ndcg@10": "maximize",
    "recall@10": "maximize",
    "map": "maximize",
    "eval_loss": "minimize",
}


def rank_order(scores: Sequence[float] | np.ndarray, labels: Sequence[float] | np.ndarray) -> NDArray[np.intp]:
    """Candidate indices in rank order (best score first), ties broken pessimistically (see the
    module docstring); the order every metric and every written ranking uses."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    if s.shape != y.shape:
        raise ValueError(f"{s.size} scores but {y.size} labels")
    if not np.all(np.isfinite(y)):
        raise ValueError("labels must be finite")
    s = np.where(np.isnan(s), -np.inf, s)
    # lexsort sorts by the last key first: descending score, then ascending label within a tie.
    return np.lexsort((y, -s))


def ranked_labels(scores: Sequence[float] | np.ndarray, labels: Sequence[float] | np.ndarray) -> NDArray[np.float64]:
    """Labels in rank order (best score first), ties broken pessimistically (see the module docstring)."""
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    if np.any(y < 0):
        raise ValueError("labels must be finite and non-negative")
    return y[rank_order(scores, y)]


def reciprocal_rank(ranked: np.ndarray, k: int = CUTOFF) -> float:
    """1 / rank of the first relevant document within the top k (ranks from 1), else 0."""
    hits = np.flatnonzero(ranked[:k] > 0)
    return 1.0 / (hits[0] + 1) if hits.size else 0.0


def ndcg(ranked: np.ndarray, k: int = CUTOFF, judged: np.ndarray | None = None) -> float:
    """DCG@k / ideal DCG@k with linear gains: DCG = sum over ranks i of label_i / log2(i + 1).

    Linear gains are trec_eval's and BEIR's convention; with binary labels they equal 2^label - 1.
    The ideal ordering sorts all relevant grades of the query (`judged`, else the candidates'
    labels); a query with no relevant document scores 0.
    """
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    top = np.clip(ranked[:k], 0.0, None)
    ideal = np.sort(ranked if judged is None else judged)[::-1][:k]
    ideal = np.clip(ideal, 0.0, None)
    idcg = float(ideal @ discounts[: ideal.size])
    return float(top @ discounts[: top.size]) / idcg if idcg > 0 else 0.0


def recall(ranked: np.ndarray, k: int = CUTOFF, n_relevant: int | None = None) -> float:
    """Relevant documents in the top k / all relevant documents (`n_relevant`, else those in the
    candidate list; 0 if none)."""
    relevant = int(np.count_nonzero(ranked > 0)) if n_relevant is None else n_relevant
    return int(np.count_nonzero(ranked[:k] > 0)) / relevant if relevant else 0.0


def average_precision(ranked: np.ndarray, n_relevant: int | None = None) -> float:
    """Sum over retrieved relevant documents of precision at their rank, divided by all relevant
    documents (`n_relevant`, else those in the list): a missed relevant document adds 0."""
    relevant = ranked > 0
    hits = int(np.count_nonzero(relevant))
    total = hits if n_relevant is None else n_relevant
    if not total or not hits:
        return 0.0
    ranks = np.flatnonzero(relevant) + 1
    precision_at_hits = np.arange(1, hits + 1) / ranks
    return float(precision_at_hits.sum() / total)


def query_metrics(scores: Sequence[float] | np.ndarray, labels: Sequence[float] | np.ndarray,
                  judged: Sequence[float] | np.ndarray | None = None) -> dict[str, float]:
    """All four metrics for one query; `judged` = grades of every relevant document (see the module
    docstring), which must include the relevant candidates'."""
    ranked = ranked_labels(scores, labels)
    grades = None if judged is None else np.asarray(judged, dtype=np.float64).reshape(-1)
    if grades is not None:
        grades = grades[grades > 0]
        if grades.size < np.count_nonzero(ranked > 0):
            raise ValueError("judged grades must include every relevant candidate")
    n_relevant = None if grades is None else int(grades.size)
    return {
        "mrr@10": reciprocal_rank(ranked),
        "ndcg@10": ndcg(ranked, judged=grades),
        "recall@10": recall(ranked, n_relevant=n_relevant),
        "map": average_precision(ranked, n_relevant=n_relevant),
    }


Values = Sequence[float] | np.ndarray


def evaluate_rankings(queries: Iterable[tuple[Values, Values] | tuple[Values, Values, Values | None]]) -> dict[str, float]:
    """Mean of each metric over queries given as (scores, labels) or (scores, labels, judged);
    keys exactly METRIC_NAMES."""
    per_query = [query_metrics(*query) for query in queries]
    if not per_query:
        raise ValueError("no queries to evaluate")
    return {name: float(np.mean([m[name] for m in per_query])) for name in METRIC_NAMES}


def improvement(metric: str, baseline: float, candidate: float) -> float:
    """How much better `candidate` is than `baseline` on `metric` (positive = better, whatever the goal)."""
    goal = METRIC_GOALS.get(metric)
    if goal is None:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRIC_GOALS)}")
    return candidate - baseline if goal == "maximize" else baseline - candidate
