"""The chat (causal LM) training engine protocol, its batch type and the reference loss.

A chat engine is the shared LoRA core (`trainers.lora_torch` / `trainers.lora_mlx`) with a
next-token cross-entropy summed over the target tokens of each row — the assistant tokens that
`backends.chat_template.encode_chat` marked. Only target positions are projected on the vocabulary:
the hidden states are gathered first, so a 151k-token head never produces logits for prompt tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from trainers.engine_base import TrainEngine, bucket


@dataclass(frozen=True)
class ChatBatch:
    """Token rows and, per row, which tokens are loss targets (predicted from the previous token)."""

    rows: list[list[int]]
    targets: list[list[bool]]

    def __post_init__(self) -> None:
        if len(self.rows) != len(self.targets) or any(len(r) != len(t) for r, t in zip(self.rows, self.targets)):
            raise ValueError("a chat batch needs one target flag per token")
        if not self.rows or any(len(r) == 0 for r in self.rows):
            raise ValueError("every row needs at least one token")

    def num_targets(self) -> int:
        return sum(sum(t[1:]) for t in self.targets)

    def num_tokens(self) -> int:
        return sum(len(r) for r in self.rows)

    def shard(self, start: int, stop: int, unit: int = 1) -> ChatBatch | None:
        """Conversations [start, stop) of the batch (`unit` is 1 for chat); None when the range is empty."""
        if stop <= start:
            return None
        return ChatBatch(self.rows[start * unit:stop * unit], self.targets[start * unit:stop * unit])

    def arrays(self, pad_id: int, bucketed: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The model's inputs (B, T), the flat index b·T + t−1 of the input position predicting each
        target, and the target ids. A row's last token predicts nothing, so T is the longest row less
        one token (as mlx-lm's inputs), rounded up to its `bucket` when `bucketed`, right-padded."""
        width = max(1, max(len(r) for r in self.rows) - 1)
        width = bucket(width) if bucketed else width
        ids = np.full((len(self.rows), width), pad_id, dtype=np.int64)
        src, tgt = [], []
        for b, (row, flags) in enumerate(zip(self.rows, self.targets)):
            ids[b, :min(len(row), width)] = row[:width]
            for t in range(1, len(row)):
                if flags[t]:
                    src.append(b * width + t - 1)
                    tgt.append(row[t])
        return ids, np.asarray(src, dtype=np.int64), np.asarray(tgt, dtype=np.int64)


def reference_nll_sum(logits: np.ndarray, batch: ChatBatch) -> float:
    """Σ −log p(target) from full (B, T, V) logits in float64: the check for the engines' gathered loss."""
    _, src, tgt = batch.arrays(0)
    flat = np.asarray(logits, np.float64).reshape(-1, logits.shape[-1])[src]
    top = flat.max(axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(flat - top).sum(axis=1))
    return float(np.sum(lse - flat[np.arange(len(tgt)), tgt]))


class ChatTrainEngine(TrainEngine[ChatBatch], Protocol):
    """A base causal LM with trainable LoRA layers, trained on next-token loss of assistant tokens
    (`train_step`'s loss is the mean over all the micro-batches' target tokens)."""

    def nll(self, batch: ChatBatch) -> tuple[float, int]:
        """(Σ −log p over the batch's targets, number of targets) with the current adapter, no dropout."""
        ...
