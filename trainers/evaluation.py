"""Listwise evaluation of a scorer over each dev query's full candidate list, plus the telemetry
projection of the trainable parameters onto two fixed random directions."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from backends.batching import token_budget_batches
from backends.prompt import PromptBuilder
from trainers.data_model import QueryExample
from trainers.metrics import evaluate_rankings


def evaluate_queries(logodds: Callable[[list[list[int]]], np.ndarray], builder: PromptBuilder,
                     queries: Sequence[QueryExample], token_budget: int = 16384, max_batch_size: int = 64) -> dict[str, float]:
    """MRR@10, nDCG@10, Recall@10 and MAP over the dev queries, scoring in length-sorted batches."""
    rows: list[list[int]] = []
    spans: list[tuple[int, int, list[int]]] = []
    for example in queries:
        docs, labels = example.candidates()
        start = len(rows)
        rows.extend(builder.build(example.query, docs))
        spans.append((start, len(rows), labels))
    scores = np.empty(len(rows))
    lengths = [len(r) for r in rows]
    for batch in token_budget_batches(lengths, token_budget, max_batch_size):
        scores[batch] = logodds([rows[i] for i in batch])
    return evaluate_rankings((scores[a:b], labels) for a, b, labels in spans)


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
