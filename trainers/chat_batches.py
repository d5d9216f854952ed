"""Chat rows for training and evaluation: tokenize once, length-bucketed batches, resumable by step.

- `tokenize_chats` renders and tokenizes each conversation once (`encode_chat`), cuts rows at
  `max_length` and drops rows left with no target token (counted, for the log).
- `ChatStream.batch(step)` is a pure function of (lengths, batch size, seed, step): each epoch
  shuffles the rows with seed (seed, epoch), sorts windows of `BUCKET` batches by length (little
  padding, still random), and shuffles the batch order; resuming at step k replays the same batches.
- `dev_batches` packs the dev rows longest first under a token budget; the dev loss is a token
  mean, so how rows are grouped does not change it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from backends.batching import token_budget_batches
from backends.chat_template import EncodedChat, encode_chat
from trainers.chat_data import ChatExample
from trainers.chat_engine import ChatBatch
from trainers.errors import DataError
from trainers.splits import make_rng

BUCKET = 8  # batches per length-sorted window


def tokenize_chats(tokenizer: Any, examples: Sequence[ChatExample], max_length: int,
                   train_on: str = "all") -> tuple[list[EncodedChat], int, int]:
    """(rows with at least one target, rows cut at max_length, rows dropped for having no target left)."""
    rows, cut, dropped = [], 0, 0
    for example in examples:
        whole = encode_chat(tokenizer, example.messages, train_on=train_on)
        row = EncodedChat(whole.ids[:max_length], whole.targets[:max_length])
        cut += len(whole.ids) > max_length
        if sum(row.targets[1:]) == 0:
            dropped += 1
            continue
        rows.append(row)
    return rows, cut, dropped


def to_batch(rows: Sequence[EncodedChat]) -> ChatBatch:
    return ChatBatch([list(r.ids) for r in rows], [list(r.targets) for r in rows])


class ChatStream:
    """Endless, deterministic, length-bucketed batches of row indices; `batch(step)` depends on step only."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 0, bucket: int = BUCKET) -> None:
        if not lengths:
            raise DataError("no training conversations (every one was empty after truncation?)")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1 (got {batch_size})")
        self.lengths, self.batch_size, self.seed, self.bucket = list(lengths), batch_size, seed, bucket
        self._cache: tuple[int, list[list[int]]] | None = None
        self.batches_per_epoch = len(self.epoch_batches(0))

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """All batches of one epoch, in order (each row exactly once)."""
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        rng = make_rng((self.seed, epoch))
        order = [int(i) for i in rng.permutation(len(self.lengths))]
        window = self.batch_size * self.bucket
        batches: list[list[int]] = []
        for start in range(0, len(order), window):
            chunk = sorted(order[start:start + window], key=lambda i: self.lengths[i])
            batches += [chunk[j:j + self.batch_size] for j in range(0, len(chunk), self.batch_size)]
        batches = [batches[int(i)] for i in rng.permutation(len(batches))]
        self._cache = (epoch, batches)
        return batches

    def batch(self, step: int) -> list[int]:
        if step < 0:
            raise ValueError(f"step must be non-negative (got {step})")
        epoch, index = divmod(step, self.batches_per_epoch)
        return self.epoch_batches(epoch)[index]


def micro_batches(rows: Sequence[EncodedChat], indices: Sequence[int], parts: int) -> list[ChatBatch]:
    """One step's rows cut into `parts` micro-batches (gradient accumulation); never an empty one."""
    size = -(-len(indices) // parts)
    return [to_batch([rows[i] for i in indices[s:s + size]]) for s in range(0, len(indices), size)]


def dev_batches(rows: Sequence[EncodedChat], token_budget: int, max_batch_size: int) -> list[ChatBatch]:
    lengths = [len(r.ids) for r in rows]
    return [to_batch([rows[i] for i in batch]) for batch in token_budget_batches(lengths, token_budget, max_batch_size)]
