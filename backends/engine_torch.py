"""PyTorch scoring engine: transformers' Qwen3 with SDPA, last-token yes/no projection only.

Rows are right-padded, so the causal mask alone keeps padding out of every real token's attention
and no padding mask is built; the final norm's output is gathered at each row's last real token and
projected on the two head rows `yes` and `no`, never on the full vocabulary.
"""

from __future__ import annotations

import numpy as np
import torch

from backends.adapters import AdapterError, LoraWeights

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def auto_dtype(device: str) -> str:
    """bf16 on CUDA (tensor cores), fp32 on CPU and MPS (exact and, on CPU, faster than bf16)."""
    return "bfloat16" if device.startswith("cuda") else "float32"


class TorchEngine:
    """Scores token rows with a transformers causal LM."""

    backend = "torch"

    def __init__(self, model_dir: str, device: str, dtype: str, answer_ids: tuple[int, int],
                 pad_id: int, trust_remote_code: bool = False) -> None:
        from transformers import AutoModelForCausalLM
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a per-load bar is noise in a TUI and in CI logs
        self.device = device
        self.dtype = auto_dtype(device) if dtype == "auto" else dtype
        self.model = AutoModelForCausalLM.from_pretrained(
            model_dir, dtype=DTYPES[self.dtype], attn_implementation="sdpa",
            trust_remote_code=trust_remote_code, use_safetensors=True,
        ).to(device).eval()
        self.answer_ids = list(answer_ids)
        self.pad_id = pad_id
        self._base: dict[str, torch.Tensor] = {}
        self._refresh_head()

    def _refresh_head(self) -> None:
        head = self.model.get_output_embeddings().weight
        self._head_rows = head[self.answer_ids].detach().float()

    @torch.inference_mode()
    def logodds(self, rows: list[list[int]]) -> np.ndarray:
        if not rows:
            return np.zeros(0)
        longest = max(len(r) for r in rows)
        ids = torch.full((len(rows), longest), self.pad_id, dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        lengths = torch.tensor([len(r) for r in rows], device=self.device)
        hidden = self.model.model(input_ids=ids.to(self.device), use_cache=False).last_hidden_state
        last = hidden[torch.arange(len(rows), device=self.device), lengths - 1].float()
        logits = last @ self._head_rows.T
        return (logits[:, 0] - logits[:, 1]).double().cpu().numpy()

    @torch.no_grad()
    def apply_lora(self, lora: LoraWeights | None) -> None:
        modules = dict(self.model.named_modules())
        for name, weight in self._base.items():  # back to the plain base first
            modules[name].weight.copy_(weight)
        self._base.clear()
        if lora is not None:
            for name in lora.modules:
                module = modules.get(name)
                if module is None or not hasattr(module, "weight"):
                    raise AdapterError(f"adapter targets {name}, which this base model does not have")
                delta = torch.from_numpy(lora.delta(name))
                if tuple(delta.shape) != tuple(module.weight.shape):
                    raise AdapterError(f"adapter shape {tuple(delta.shape)} for {name} does not match "
                                       f"the base's {tuple(module.weight.shape)}")
            for name in lora.modules:  # merge: serving costs nothing extra per token
                weight = modules[name].weight
                self._base[name] = weight.detach().clone()
                weight.add_(torch.from_numpy(lora.delta(name)).to(weight.device, weight.dtype))
        self._refresh_head()

    def close(self) -> None:
        del self.model
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()
