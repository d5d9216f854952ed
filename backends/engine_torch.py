"""PyTorch scoring engine: transformers' Qwen3 with SDPA, last-token yes/no projection only.

Rows are right-padded, so the causal mask alone keeps padding out of every real token's attention
and no padding mask is built; the final norm's output is gathered at each row's last real token and
projected on the two head rows `yes` and `no`, never on the full vocabulary.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

import numpy as np
from numpy.typing import NDArray
import torch

from backends.adapters import AdapterError, LoraWeights
from backends.select import torch_dtype

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def cache_argument(module: torch.nn.Module) -> str:
    """The name under which this transformers version passes a key/value cache to `module.forward`.

    transformers 5.x renamed `past_key_values` to `cache` (the old name still works but warns on every
    scoring call); an older version would silently swallow `cache=` in `**kwargs` and score without the
    prefix, so the name is read from the signature rather than assumed.
    """
    return "cache" if "cache" in inspect.signature(module.forward).parameters else "past_key_values"


def hidden_after_prefix(backbone: Any, cache_arg: str, prefix_cache: Any, ids: torch.Tensor) -> torch.Tensor:
    """Hidden states of right-padded `ids` (batch, time) continuing one cached prefix (batch 1).

    The prefix's cache is copied before it is repeated along the batch, so it serves the next batch
    too; positions continue after the prefix. The scorer and the training engine's dev evaluation
    share this, so both reuse a query's prefix in exactly the same way.
    """
    batch, width = ids.shape
    start = prefix_cache.get_seq_length()
    cache = copy.deepcopy(prefix_cache)
    cache.batch_repeat_interleave(batch)
    positions = torch.arange(start, start + width, device=ids.device).expand(batch, -1)
    hidden: torch.Tensor = backbone(input_ids=ids, position_ids=positions, use_cache=True,
                                    **{cache_arg: cache}).last_hidden_state
    return hidden


class LoraMerge:
    """Merges a LoRA into a torch model's linear weights and undoes it (the scorer and the chat
    generator both serve adapters this way: merged, serving costs nothing extra per token)."""

    def __init__(self) -> None:
        self._base: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def apply(self, model: torch.nn.Module, lora: LoraWeights | None) -> None:
        """Serve the base plus `lora` (None: the plain base); replaces any previous adapter."""
        modules = dict(model.named_modules())
        for name, weight in self._base.items():  # back to the plain base first
            modules[name].weight.copy_(weight)
        self._base.clear()
        if lora is None:
            return
        for name in lora.modules:
            module = modules.get(name)
            if module is None or not hasattr(module, "weight"):
                raise AdapterError(f"adapter targets {name}, which this base model does not have")
            delta = lora.delta(name)
            if tuple(delta.shape) != tuple(module.weight.shape):
                raise AdapterError(f"adapter shape {tuple(delta.shape)} for {name} does not match "
                                   f"the base's {tuple(module.weight.shape)}")
        for name in lora.modules:
            weight = modules[name].weight
            self._base[name] = weight.detach().clone()
            # Added in fp32 and rounded once: a bf16 delta added to bf16 weights would round twice,
            # and a small delta largely vanishes in bf16's 8-bit mantissa.
            update = torch.from_numpy(lora.delta(name)).to(weight.device, torch.float32)
            weight.copy_((weight.float() + update).to(weight.dtype))


class TorchEngine:
    """Scores token rows with a transformers causal LM."""

    backend = "torch"

    def __init__(self, model_dir: str, device: str, dtype: str, answer_ids: tuple[int, int],
                 pad_id: int, trust_remote_code: bool = False) -> None:
        from transformers import AutoModelForCausalLM
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a per-load bar is noise in a TUI and in CI logs
        self.device = device
        self.dtype = torch_dtype(dtype, device).dtype
        # Any: the model is driven through its dynamic attributes (`.model`, cache objects), and
        # transformers types the `.to` wrapper as an unbound function.
        model: Any = AutoModelForCausalLM.from_pretrained(
            model_dir, dtype=DTYPES[self.dtype], attn_implementation="sdpa",
            trust_remote_code=trust_remote_code, use_safetensors=True,
        )
        self.model = model.to(device).eval()
        self.answer_ids = list(answer_ids)
        self.pad_id = pad_id
        self._merge = LoraMerge()
        self._weights_version = 0
        self._cached_prefix: tuple[tuple[tuple[int, ...], int], Any] | None = None
        self._cache_arg = cache_argument(self.model.model)
        self._refresh_head()

    def _refresh_head(self) -> None:
        head = self.model.get_output_embeddings().weight
        self._head_rows = head[self.answer_ids].detach().float()

    @torch.inference_mode()
    def logodds(self, rows: list[list[int]]) -> NDArray[np.float64]:
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
        out: NDArray[np.float64] = (logits[:, 0] - logits[:, 1]).double().cpu().numpy()
        return out

    @torch.inference_mode()
    def logodds_prefixed(self, prefix: list[int], tails: list[list[int]]) -> NDArray[np.float64]:
        """Like logodds(prefix + tail for each tail), running the shared prefix only once.

        The prefix's key/value cache is computed once per query and repeated across the batch, so
        the per-document cost covers only the document and the suffix (about a third less work
        for typical passages, since the system prompt, instruction and query come first).
        """
        if not tails:
            return np.zeros(0)
        batch, longest = len(tails), max(len(t) for t in tails)
        ids = torch.full((batch, longest), self.pad_id, dtype=torch.long)
        for i, tail in enumerate(tails):
            ids[i, : len(tail)] = torch.tensor(tail, dtype=torch.long)
        hidden = hidden_after_prefix(self.model.model, self._cache_arg, self._prefix_cache(prefix), ids.to(self.device))
        lengths = torch.tensor([len(t) for t in tails], device=self.device)
        last = hidden[torch.arange(batch, device=self.device), lengths - 1].float()
        logits = last @ self._head_rows.T
        out: NDArray[np.float64] = (logits[:, 0] - logits[:, 1]).double().cpu().numpy()
        return out

    def _prefix_cache(self, prefix: list[int]) -> Any:
        """The key/value cache of `prefix` (one row), memoised for the most recent prefix."""
        key = (tuple(prefix), self._weights_version)
        if self._cached_prefix is None or self._cached_prefix[0] != key:
            ids = torch.tensor([prefix], dtype=torch.long, device=self.device)
            out = self.model.model(input_ids=ids, use_cache=True)
            self._cached_prefix = (key, out[self._cache_arg])
        return self._cached_prefix[1]

    def apply_lora(self, lora: LoraWeights | None) -> None:
        self._weights_version += 1  # a cached prefix computed with the old weights is stale
        self._merge.apply(self.model, lora)
        self._refresh_head()

    def close(self) -> None:
        del self.model
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()
