"""MLX chat training engine: the shared MLX LoRA core plus next-token loss on assistant tokens.

Works on float and on 4-bit quantized bases (QLoRA): the head may be tied or separate, float or
quantized, and is applied only to the gathered target positions.
"""

from __future__ import annotations

from typing import cast

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from backends.mlx_thread import pinned
from trainers.chat_engine import ChatBatch
from trainers.engine_base import bucket
from trainers.lora_mlx import MlxLoraEngine

EVAL_CHUNK = 1024


@mx.custom_function
def _nll_and_probs(logits: mx.array, targets: mx.array) -> tuple[mx.array, mx.array]:
    """−log p(target) per row, and the softmax the gradient needs, from one pass of `exp`.

    MLX's CPU `exp` is the cost of a vocabulary-wide loss (with every token a target it is most of
    a step); `cross_entropy`'s gradient recomputes the softmax, this keeps the forward's instead.
    """
    top = mx.stop_gradient(logits.max(axis=-1, keepdims=True))
    e = mx.exp(logits - top)
    total = e.sum(axis=-1, keepdims=True)
    nll = top + mx.log(total) - mx.take_along_axis(logits, targets[:, None], axis=-1)
    return nll[:, 0], e / total


@_nll_and_probs.vjp
def _nll_vjp(primals: tuple[mx.array, mx.array], cotangents: tuple[mx.array, mx.array],
             outputs: tuple[mx.array, mx.array]) -> tuple[mx.array, mx.array]:
    logits, targets = primals
    onehot = mx.arange(logits.shape[-1])[None, :] == targets[:, None]
    return cotangents[0][:, None] * (outputs[1] - onehot), mx.zeros_like(targets)


class MlxChatEngine(MlxLoraEngine):
    """Trains an mlx-lm LoRA adapter with cross-entropy over target tokens."""

    def _examples(self, batch: ChatBatch) -> int:
        return batch.num_targets()

    def _inputs(self, batch: ChatBatch) -> tuple[mx.array, mx.array, mx.array, mx.array]:
        """Ids, source positions, targets and per-target weights, padded to buckets (`bucket`) so that a
        compiled step traces once per bucket: the target count with weight-0 rows that read position 0,
        whose loss term and gradient are exactly zero."""
        ids, src, tgt = batch.arrays(self.pad_id, bucketed=True)
        count = len(tgt)
        extra = bucket(count) - count
        weight = np.concatenate([np.ones(count, np.float32), np.zeros(extra, np.float32)])
        src, tgt = (np.concatenate([a, np.zeros(extra, a.dtype)]).astype(np.int32) for a in (src, tgt))
        return mx.array(ids.astype(np.int32)), mx.array(src), mx.array(tgt), mx.array(weight)

    def _gather(self, ids: mx.array, src: mx.array) -> mx.array:
        hidden: mx.array = self.model.model(ids)
        return hidden.reshape(-1, hidden.shape[-1])[src]

    def _loss_sum(self, ids: mx.array, src: mx.array, tgt: mx.array, weight: mx.array) -> mx.array:
        logits = self._head_logits(self._gather(ids, src)).astype(mx.float32)
        nll, _ = cast(tuple[mx.array, mx.array], _nll_and_probs(logits, tgt))  # custom_function is untyped
        return (nll * weight).sum()

    @pinned
    def nll(self, batch: ChatBatch) -> tuple[float, int]:
        self.model.eval()
        ids, src, tgt = (mx.array(a.astype(np.int32)) for a in batch.arrays(self.pad_id))
        picked = self._gather(ids, src)
        total = 0.0
        for i in range(0, tgt.shape[0], EVAL_CHUNK):
            logits = self._head_logits(picked[i:i + EVAL_CHUNK]).astype(mx.float32)
            part = nn.losses.cross_entropy(logits, tgt[i:i + EVAL_CHUNK], reduction="sum")
            total += float(part)
        return total, int(tgt.shape[0])
