"""PyTorch reranker training engine: the shared LoRA core plus the yes/no log-odds loss.

Only the LoRA matrices train; the base, its embeddings and the head stay frozen. The forward pass
stops at the final norm, gathers each row's last real token and projects it on the `yes`/`no`
head rows, so no full-vocabulary logits exist even during training. Setup, AdamW, the schedule,
accumulation and state live in `trainers.lora_torch`, shared with the chat engine.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch

from backends.adapters import LoraWeights
from backends.engine_torch import cache_argument
from trainers.settings import LoraConfig, TrainConfig
from trainers.engine_base import Batch, pad_rows
from trainers.lora_torch import TorchLoraEngine


class TorchTrainEngine(TorchLoraEngine):
    """Trains a peft LoRA adapter on a transformers causal LM, fp32, on yes−no log-odds."""

    def __init__(self, model_dir: Path, lora: LoraConfig, train: TrainConfig, answer_ids: tuple[int, int],
                 pad_id: int, *, seed: int | None = None, init_lora: LoraWeights | None = None,
                 device: str = "cpu", eval_batch_size: int = 32) -> None:
        super().__init__(model_dir, lora, train, pad_id, seed=seed, init_lora=init_lora, device=device,
                         eval_batch_size=eval_batch_size)
        self._head_rows: torch.Tensor = self._head[list(answer_ids)].detach().clone()
        self._cache_arg = cache_argument(self._backbone)

    def _forward(self, rows: list[list[int]]) -> torch.Tensor:
        ids, last = pad_rows(rows, self.pad_id)
        hidden = self._hidden(ids)
        picked = hidden[torch.arange(len(rows), device=self.device), torch.from_numpy(last).to(self.device)]
        logits = picked @ self._head_rows.T
        return logits[:, 0] - logits[:, 1]

    def _examples(self, batch: Batch) -> int:
        return batch.num_examples(self.train_cfg.loss, self.train_cfg.group_size)

    def _loss_sum(self, batch: Batch) -> torch.Tensor:
        z = self._forward(batch.rows)
        if self.train_cfg.loss == "pointwise":
            labels = torch.tensor(batch.labels, dtype=z.dtype, device=z.device)
            return torch.nn.functional.binary_cross_entropy_with_logits(z, labels, reduction="sum")
        groups = z.view(-1, self.train_cfg.group_size)
        return (torch.logsumexp(groups, dim=1) - groups[:, 0]).sum()

    @torch.no_grad()
    def logodds(self, rows: list[list[int]]) -> np.ndarray:
        if not rows:
            return np.zeros(0)
        self.model.eval()
        out = [self._forward(rows[i:i + self.eval_batch_size]).double().cpu().numpy()
               for i in range(0, len(rows), self.eval_batch_size)]
        return np.concatenate(out)

    @torch.no_grad()
    def prefix_state(self, head: list[int]) -> object:
        self.model.eval()
        ids = torch.tensor([head], dtype=torch.long, device=self.device)
        return self._backbone(input_ids=ids, use_cache=True)[self._cache_arg]

    @torch.no_grad()
    def logodds_after(self, state: object, tails: list[list[int]]) -> np.ndarray:
        if not tails:
            return np.zeros(0)
        self.model.eval()
        prefix: Any = state  # a transformers Cache: copied and repeated along each batch
        start = prefix.get_seq_length()
        out = []
        for i in range(0, len(tails), self.eval_batch_size):
            chunk = tails[i:i + self.eval_batch_size]
            ids, last = pad_rows(chunk, self.pad_id)
            cache = copy.deepcopy(prefix)
            cache.batch_repeat_interleave(len(chunk))
            positions = torch.arange(start, start + ids.shape[1], device=self.device).expand(len(chunk), -1)
            hidden = self._backbone(input_ids=torch.from_numpy(ids).to(self.device), position_ids=positions,
                                    use_cache=True, **{self._cache_arg: cache}).last_hidden_state
            picked = hidden[torch.arange(len(chunk), device=self.device), torch.from_numpy(last).to(self.device)]
            logits = picked @ self._head_rows.T
            out.append((logits[:, 0] - logits[:, 1]).double().cpu().numpy())
        return np.concatenate(out)
