"""MLX reranker training engine: the shared MLX LoRA core plus the yes/no log-odds loss.

Mirrors the PyTorch engine step for step (same init, loss sums, clipping, bias-corrected AdamW
and schedule), so that dev runs on a Mac and prod runs on Linux produce the same adapter. Quantized
bases (4- and 8-bit mlx-community conversions, head included) train as QLoRA: the base stays frozen
and quantized, LoRA layers and AdamW state are fp32, the yes/no head rows a small fp32 matrix. Setup,
AdamW, the schedule, accumulation, state and the MLX thread live in `trainers.lora_mlx` and
`backends.mlx_thread`, shared with the chat engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from backends.adapters import LoraWeights
from backends.engine_mlx import PrefixKV, answer_head_rows, hidden_after_prefix, prefix_kv
from backends.mlx_thread import MlxWorker, mlx_worker, pinned
from trainers.settings import LoraConfig, TrainConfig
from trainers.engine_base import Batch, pad_rows
from trainers.lora_mlx import MlxLoraEngine

__all__ = ["MlxTrainEngine", "MlxWorker", "mlx_worker"]


class MlxTrainEngine(MlxLoraEngine):
    """Trains an mlx-lm LoRA adapter (lora_a (in, r), lora_b (r, out)) on yes−no log-odds."""

    def __init__(self, model_dir: Path, lora: LoraConfig, train: TrainConfig, answer_ids: tuple[int, int],
                 pad_id: int, *, seed: int | None = None, init_lora: LoraWeights | None = None,
                 device: str = "cpu", eval_batch_size: int = 32) -> None:
        self._answer_ids = list(answer_ids)
        super().__init__(model_dir, lora, train, pad_id, seed=seed, init_lora=init_lora, device=device,
                         eval_batch_size=eval_batch_size)

    def _after_load(self) -> None:
        # Frozen fp32 yes/no rows, dequantized once on a quantized head: the loss never sees the rest
        # of the vocabulary, and the scorer projects on the very same matrix.
        self._held["head_rows"] = answer_head_rows(self.model, self._answer_ids)

    def _forward(self, ids: mx.array, last: mx.array) -> mx.array:
        hidden: mx.array = self.model.model(ids)
        picked = hidden[mx.arange(ids.shape[0]), last].astype(mx.float32)
        logits = picked @ self._held["head_rows"].T
        return logits[:, 0] - logits[:, 1]

    def _shard_unit(self) -> int:
        return self.train_cfg.group_size if self.train_cfg.loss == "listwise" else 1

    def _examples(self, batch: Batch) -> int:
        return batch.num_examples(self.train_cfg.loss, self.train_cfg.group_size)

    def _inputs(self, batch: Batch) -> tuple[mx.array, mx.array, mx.array | None]:
        ids, last = pad_rows(batch.rows, self.pad_id, bucketed=True)
        labels = mx.array(np.asarray(batch.labels, np.float32)) if self.train_cfg.loss == "pointwise" else None
        return mx.array(ids.astype(np.int32)), mx.array(last.astype(np.int32)), labels

    def _loss_sum(self, ids: mx.array, last: mx.array, labels: mx.array | None) -> mx.array:
        z = self._forward(ids, last)
        if labels is not None:
            loss: mx.array = labels * nn.softplus(-z) + (1.0 - labels) * nn.softplus(z)
        else:
            groups = z.reshape(-1, self.train_cfg.group_size)
            loss = mx.logsumexp(groups, axis=1) - groups[:, 0]
        return loss.sum()

    @pinned
    def logodds(self, rows: list[list[int]]) -> np.ndarray:
        if not rows:
            return np.zeros(0)
        self.model.eval()
        out = []
        for i in range(0, len(rows), self.eval_batch_size):
            ids, last = pad_rows(rows[i:i + self.eval_batch_size], self.pad_id)
            z = self._forward(mx.array(ids.astype(np.int32)), mx.array(last.astype(np.int32)))
            mx.eval(z)
            out.append(np.array(z, dtype=np.float64))
        return np.concatenate(out)

    @pinned
    def prefix_state(self, head: list[int]) -> object:
        self.model.eval()
        return prefix_kv(self.model, head)

    @pinned
    def logodds_after(self, state: object, tails: list[list[int]]) -> np.ndarray:
        if not tails:
            return np.zeros(0)
        self.model.eval()
        kv = cast(PrefixKV, state)
        out = []
        for i in range(0, len(tails), self.eval_batch_size):
            picked = hidden_after_prefix(self.model, kv, tails[i:i + self.eval_batch_size], self.pad_id)
            logits = picked @ self._held["head_rows"].T
            z = logits[:, 0] - logits[:, 1]
            mx.eval(z)
            out.append(np.array(z, dtype=np.float64))
        return np.concatenate(out)
