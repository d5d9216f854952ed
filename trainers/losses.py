"""Reference (numpy, float64) reranker losses; the engines implement the same sums in their framework.

Both losses are sums over examples so that gradient accumulation can divide by the total number of
examples of the whole step once: a mean of per-micro-batch means would weight examples unequally
when micro-batches differ in size.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def softplus(x: np.ndarray) -> NDArray[np.float64]:
    """log(1 + e^x) without overflow."""
    out: NDArray[np.float64] = np.logaddexp(0.0, x)
    return out


def pointwise_bce_sum(logodds: np.ndarray, labels: np.ndarray) -> float:
    """Σ binary cross-entropy of sigmoid(logodds) against 0/1 labels (one example per row)."""
    z = np.asarray(logodds, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    return float(np.sum(y * softplus(-z) + (1.0 - y) * softplus(z)))


def listwise_ce_sum(logodds: np.ndarray, group_size: int) -> float:
    """Σ over groups of softmax cross-entropy with the positive at index 0 of each group of rows."""
    z = np.asarray(logodds, dtype=np.float64).reshape(-1, group_size)
    top = z.max(axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(z - top).sum(axis=1))
    return float(np.sum(lse - z[:, 0]))


def examples_in(num_rows: int, loss: str, group_size: int) -> int:
    """How many examples `num_rows` rows hold: rows (pointwise) or groups (listwise)."""
    if loss == "pointwise":
        return num_rows
    if loss == "listwise":
        if group_size < 2 or num_rows % group_size:
            raise ValueError(f"listwise batch of {num_rows} rows is not whole groups of {group_size}")
        return num_rows // group_size
    raise ValueError(f"unknown loss {loss!r}")
