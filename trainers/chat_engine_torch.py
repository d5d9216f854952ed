"""PyTorch chat training engine: the shared LoRA core plus next-token loss on assistant tokens."""

from __future__ import annotations

import torch

from trainers.chat_engine import ChatBatch
from trainers.lora_torch import TorchLoraEngine

EVAL_CHUNK = 1024  # target positions projected on the vocabulary at once when evaluating


class TorchChatEngine(TorchLoraEngine):
    """Trains a peft LoRA adapter on a transformers causal LM with cross-entropy over target tokens."""

    def _examples(self, batch: ChatBatch) -> int:
        return batch.num_targets()

    def _gathered(self, batch: ChatBatch) -> tuple[torch.Tensor, torch.Tensor]:
        ids, src, tgt = batch.arrays(self.pad_id)
        hidden = self._hidden(ids)
        picked = hidden.reshape(-1, hidden.shape[-1])[torch.from_numpy(src).to(self.device)]
        return picked, torch.from_numpy(tgt).to(self.device)

    def _loss_sum(self, batch: ChatBatch) -> torch.Tensor:
        picked, tgt = self._gathered(batch)
        logits = (picked @ self._head.T).float()
        return torch.nn.functional.cross_entropy(logits, tgt, reduction="sum")

    @torch.no_grad()
    def nll(self, batch: ChatBatch) -> tuple[float, int]:
        self.model.eval()
        picked, tgt = self._gathered(batch)
        total = 0.0
        for i in range(0, len(tgt), EVAL_CHUNK):
            logits = (picked[i:i + EVAL_CHUNK] @ self._head.T).double()
            total += float(torch.nn.functional.cross_entropy(logits, tgt[i:i + EVAL_CHUNK], reduction="sum"))
        return total, len(tgt)
