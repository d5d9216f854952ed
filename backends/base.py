"""The small protocol every scoring engine implements, and the results it produces."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, TypeGuard

import numpy as np
from numpy.typing import NDArray

from backends.adapters import LoraWeights


class ScoringEngine(Protocol):
    """A loaded Qwen3 causal LM that returns yes-minus-no log-odds at each row's last token."""

    backend: str
    device: str
    dtype: str

    def logodds(self, rows: list[list[int]]) -> np.ndarray:
        """Log-odds logit_yes − logit_no for each row of token ids (float64, input order)."""
        ...

    def apply_lora(self, lora: LoraWeights | None) -> None:
        """Serve the base plus `lora` (None: the plain base); replaces any previous adapter."""
        ...

    def close(self) -> None:
        """Release the model's memory."""
        ...


class PrefixScoringEngine(ScoringEngine, Protocol):
    """An engine that can run a shared prefix once and score many tails after it."""

    def logodds_prefixed(self, prefix: list[int], tails: list[list[int]]) -> NDArray[np.float64]:
        """Like logodds(prefix + tail for each tail), running the shared prefix only once."""
        ...


def supports_prefix(engine: ScoringEngine) -> TypeGuard[PrefixScoringEngine]:
    """Whether `engine` implements `logodds_prefixed` (the torch and MLX engines do)."""
    return hasattr(engine, "logodds_prefixed")


@dataclass(frozen=True)
class Score:
    """One document's relevance: probability = sigmoid(logit)."""

    index: int
    probability: float
    logit: float


def sigmoid(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Numerically stable logistic function."""
    return np.where(x >= 0, 1.0 / (1.0 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1.0 + np.exp(-np.abs(x))))
