"""PyTorch reranker training engine: the shared LoRA core plus the yes/no log-odds loss.

Only the LoRA matrices train; the base, its embeddings and the head stay frozen. The forward pass
stops at the final norm, gathers each row's last real token and projects it on the `yes`/`no`
head rows, so no full-vocabulary logits exist even during training. A listwise group's rows share
the prompt prefix, instruction and query (about two thirds of each row on the demo): the prefix runs
once per group and its key/value cache, with gradients, is repeated over the group's documents
(where that is exactly the full forward). Dev evaluation reuses each query's prefix the same way.
Setup, AdamW, the schedule, accumulation and state live in `trainers.lora_torch`, shared with the
chat engine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from backends.adapters import LoraWeights
from backends.engine_torch import cache_argument, hidden_after_prefix
from trainers.settings import LoraConfig, TrainConfig
from trainers.engine_base import Batch, pad_rows, shared_prefix_lengths
from trainers.lora_torch import TorchLoraEngine


class TorchTrainEngine(TorchLoraEngine):
    """Trains a peft LoRA adapter on a transformers causal LM on yes−no log-odds (fp32 head and loss)."""

    def __init__(self, model_dir: Path, lora: LoraConfig, train: TrainConfig, answer_ids: tuple[int, int],
                 pad_id: int, *, seed: int | None = None, init_lora: LoraWeights | None = None,
                 device: str = "cpu", eval_batch_size: int = 32) -> None:
        super().__init__(model_dir, lora, train, pad_id, seed=seed, init_lora=init_lora, device=device,
                         eval_batch_size=eval_batch_size)
        self._head_rows: torch.Tensor = self._head[list(answer_ids)].detach().clone()
        self._cache_arg = cache_argument(self._backbone)
        # The shared prefix runs once per group only where that is exactly the full forward: not under
        # checkpointing (layers are recomputed without a cache) nor with LoRA dropout (the documents
        # of a group would share one dropout mask on the prefix instead of drawing their own).
        self._shares_prefix = not train.gradient_checkpointing and lora.dropout == 0.0

    def _forward(self, rows: list[list[int]]) -> torch.Tensor:
        ids, last = pad_rows(rows, self.pad_id)
        hidden = self._hidden(ids)
        return self._logodds_at(hidden, last)

    def _logodds_at(self, hidden: torch.Tensor, last: np.ndarray) -> torch.Tensor:
        """yes − no log-odds at each row's last real token; the projection stays fp32 under bf16/fp16."""
        picked = hidden[torch.arange(hidden.shape[0], device=self.device), torch.from_numpy(last).to(self.device)]
        with self._fp32():
            logits = picked.float() @ self._head_rows.T
            return logits[:, 0] - logits[:, 1]

    def _forward_groups(self, rows: list[list[int]], group_size: int) -> torch.Tensor:
        """`_forward(rows)` for consecutive groups of rows, each group's common prefix run once.

        Prefixes are right-padded (so no query position is fully masked) and the padding is masked
        out of the documents' attention; positions continue from each group's own prefix length, so
        every real token sees exactly what it sees in the full forward.
        """
        lengths = shared_prefix_lengths(rows, group_size)
        groups, width = len(lengths), max(lengths)
        if width == 0:
            return self._forward(rows)
        prefix = torch.full((groups, width), self.pad_id, dtype=torch.long)
        prefix_mask = torch.zeros((groups, width), dtype=torch.long)
        for g, n in enumerate(lengths):
            prefix[g, :n] = torch.tensor(rows[g * group_size][:n])
            prefix_mask[g, :n] = 1
        cache = self._backbone(input_ids=prefix.to(self.device), attention_mask=prefix_mask.to(self.device),
                               use_cache=True)[self._cache_arg]
        cache.batch_repeat_interleave(group_size)
        tails = [row[lengths[i // group_size]:] for i, row in enumerate(rows)]
        ids, last = pad_rows(tails, self.pad_id)
        tail_mask = torch.from_numpy(np.arange(ids.shape[1])[None, :] <= last[:, None]).long()
        mask = torch.cat([prefix_mask.repeat_interleave(group_size, 0), tail_mask], dim=1)
        starts = torch.tensor(lengths).repeat_interleave(group_size)
        positions = starts[:, None] + torch.arange(ids.shape[1])[None, :]
        hidden: torch.Tensor = self._backbone(
            input_ids=torch.from_numpy(ids).to(self.device), attention_mask=mask.to(self.device),
            position_ids=positions.to(self.device), use_cache=True, **{self._cache_arg: cache}).last_hidden_state
        return self._logodds_at(hidden, last)

    def _shard_unit(self) -> int:
        return self.train_cfg.group_size if self.train_cfg.loss == "listwise" else 1

    def _examples(self, batch: Batch) -> int:
        return batch.num_examples(self.train_cfg.loss, self.train_cfg.group_size)

    def _loss_sum(self, batch: Batch) -> torch.Tensor:
        if self.train_cfg.loss == "pointwise":
            z = self._forward(batch.rows)
            labels = torch.tensor(batch.labels, dtype=z.dtype, device=z.device)
            return torch.nn.functional.binary_cross_entropy_with_logits(z, labels, reduction="sum")
        z = (self._forward_groups(batch.rows, self.train_cfg.group_size) if self._shares_prefix
             else self._forward(batch.rows))
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
        out = []
        for i in range(0, len(tails), self.eval_batch_size):
            ids, last = pad_rows(tails[i:i + self.eval_batch_size], self.pad_id)
            hidden = hidden_after_prefix(self._backbone, self._cache_arg, state, torch.from_numpy(ids).to(self.device))
            out.append(self._logodds_at(hidden, last).double().cpu().numpy())
        return np.concatenate(out)
