"""MLX scoring engine: mlx-lm's model, last-token yes/no projection only.

Works with float and quantized (mlx-community) checkpoints. Adapters are merged into float weights;
on quantized layers, where merging would lose precision, they are served through mlx-lm's LoRALinear.
"""

from __future__ import annotations

from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from backends.adapters import AdapterError, LoraWeights
from backends.mlx_thread import release_mlx_at_exit


def answer_head_rows(model: nn.Module, answer_ids: list[int]) -> mx.array:
    """The head's rows of the answer tokens as a small fp32 matrix (len(answer_ids), hidden), no gradient.

    The head is `lm_head` or, when tied, the embedding; on a quantized head (mlx-community
    conversions quantize it too) only these rows are dequantized, never the vocabulary-sized matrix.
    The scorer and the training engine share it, so both project on exactly the same numbers.
    """
    head: nn.Module = getattr(model, "lm_head", None) or model.model.embed_tokens
    ids = mx.array(answer_ids)
    if hasattr(head, "scales"):
        biases = getattr(head, "biases", None)
        rows = mx.dequantize(head.weight[ids], head.scales[ids], biases[ids] if biases is not None else None,
                             group_size=head.group_size, bits=head.bits, mode=getattr(head, "mode", "affine"))
    else:
        rows = head.weight[ids]
    return mx.stop_gradient(rows.astype(mx.float32))


PrefixKV = list[tuple[mx.array, mx.array]]  # one (keys, values) pair per layer, batch 1


def prefix_kv(model: nn.Module, prefix: list[int]) -> PrefixKV:
    """The keys and values every layer computes for `prefix` (one row), evaluated.

    The scorer and the training engine's dev evaluation share this, so both reuse a query's
    prefix in exactly the same way.
    """
    from mlx_lm.models.cache import make_prompt_cache

    caches = make_prompt_cache(model)
    model.model(mx.array([prefix]), cache=caches)
    kv = [(c.keys[..., : len(prefix), :], c.values[..., : len(prefix), :]) for c in caches]
    mx.eval(kv)
    return kv


def hidden_after_prefix(model: nn.Module, kv: PrefixKV, tails: list[list[int]], pad_id: int) -> mx.array:
    """Final-norm hidden states at each tail's last real token, the tails continuing `kv`'s prefix.

    The prefix's keys and values are repeated along the batch into mlx-lm's KVCache, so each
    tail attends to the prefix and to its own earlier tokens; the tails are right-padded, and the
    causal mask (offset by the prefix) keeps padding out of every real token's attention.
    """
    from mlx_lm.models.cache import KVCache

    batch, longest = len(tails), max(len(t) for t in tails)
    ids = np.full((batch, longest), pad_id, dtype=np.int32)
    for i, tail in enumerate(tails):
        ids[i, : len(tail)] = tail
    caches = []
    for keys, values in kv:
        cache = KVCache()
        cache.state = (mx.repeat(keys, batch, axis=0), mx.repeat(values, batch, axis=0), keys.shape[2])
        caches.append(cache)
    hidden = model.model(mx.array(ids), cache=caches)
    last = mx.array([len(t) - 1 for t in tails])
    picked: mx.array = hidden[mx.arange(batch), last].astype(mx.float32)
    return picked


class LoraSwap:
    """Serves a LoRA on an mlx-lm model and undoes it: merged into float weights; on quantized
    layers, where merging would lose precision, through mlx-lm's LoRALinear (the scorer and the
    chat generator share this)."""

    def __init__(self) -> None:
        self._base: dict[str, mx.array] = {}
        self._wrapped: dict[str, nn.Module] = {}

    def apply(self, model: nn.Module, lora: LoraWeights | None) -> None:
        """Serve the base plus `lora` (None: the plain base); replaces any previous adapter."""
        from mlx_lm.tuner.lora import LoRALinear

        modules = dict(model.named_modules())
        for name, weight in self._base.items():
            modules[name].weight = weight
        self._base.clear()
        for name, original in self._wrapped.items():
            parent, _, attr = name.rpartition(".")
            setattr(_submodule(model, parent), attr, original)
        self._wrapped.clear()
        if lora is None:
            return
        modules = dict(model.named_modules())
        for name in lora.modules:
            module = modules.get(name)
            if module is None or not hasattr(module, "weight"):
                raise AdapterError(f"adapter targets {name}, which this base model does not have")
        for name, (a, b) in lora.modules.items():
            module = modules[name]
            if hasattr(module, "scales"):  # quantized: keep it and add a LoRA branch
                wrapped = LoRALinear.from_base(module, r=lora.rank, scale=lora.scale, dropout=0.0)
                wrapped.lora_a, wrapped.lora_b = mx.array(a.T), mx.array(b.T)
                parent, _, attr = name.rpartition(".")
                setattr(_submodule(model, parent), attr, wrapped)
                self._wrapped[name] = module
                continue
            delta = lora.delta(name)
            if tuple(delta.shape) != tuple(module.weight.shape):
                raise AdapterError(f"adapter shape {tuple(delta.shape)} for {name} does not match "
                                   f"the base's {tuple(module.weight.shape)}")
            self._base[name] = module.weight
            module.weight = module.weight + mx.array(delta).astype(module.weight.dtype)
        mx.eval(model.parameters())


class MlxEngine:
    """Scores token rows with an mlx-lm model."""

    backend = "mlx"

    def __init__(self, model_dir: str, device: str, dtype: str, answer_ids: tuple[int, int], pad_id: int) -> None:
        from mlx_lm.utils import load_model

        release_mlx_at_exit()  # this engine runs on the caller's thread, the main one included
        self.device = device
        mx.set_default_device(mx.gpu if device == "gpu" else mx.cpu)
        self.model, _ = load_model(Path(model_dir))
        if dtype == "auto" and device == "cpu":
            dtype = "float32"  # bf16 matmuls are slow on MLX's CPU backend
        if dtype != "auto":
            self.model.set_dtype(getattr(mx, dtype))
        self.dtype = dtype if dtype != "auto" else str(self.model.model.embed_tokens.weight.dtype).split(".")[-1]
        self.answer_ids = list(answer_ids)
        self.pad_id = pad_id
        self._swap = LoraSwap()
        self._weights_version = 0
        self._cached_prefix: tuple[tuple[tuple[int, ...], int], PrefixKV] | None = None
        self._refresh_head()

    def _refresh_head(self) -> None:
        self._head_rows = answer_head_rows(self.model, self.answer_ids)
        mx.eval(self._head_rows)

    def logodds(self, rows: list[list[int]]) -> np.ndarray:
        if not rows:
            return np.zeros(0)
        longest = max(len(r) for r in rows)
        ids = np.full((len(rows), longest), self.pad_id, dtype=np.int32)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
        lengths = mx.array([len(r) - 1 for r in rows])
        hidden = self.model.model(mx.array(ids))
        last = hidden[mx.arange(len(rows)), lengths].astype(mx.float32)
        logits = last @ self._head_rows.T
        out = logits[:, 0] - logits[:, 1]
        mx.eval(out)
        return np.array(out, dtype=np.float64)

    def logodds_prefixed(self, prefix: list[int], tails: list[list[int]]) -> np.ndarray:
        """Like logodds(prefix + tail for each tail), running the shared prefix only once.

        The prefix's keys and values (system prompt, instruction, query) are computed once per
        query and memoised for the most recent prefix, so each document costs only its own tokens.
        """
        if not tails:
            return np.zeros(0)
        key = (tuple(prefix), self._weights_version)
        if self._cached_prefix is None or self._cached_prefix[0] != key:
            self._cached_prefix = None  # free the old prefix before computing the new one
            self._cached_prefix = (key, prefix_kv(self.model, prefix))
        logits = hidden_after_prefix(self.model, self._cached_prefix[1], tails, self.pad_id) @ self._head_rows.T
        out = logits[:, 0] - logits[:, 1]
        mx.eval(out)
        return np.array(out, dtype=np.float64)

    def apply_lora(self, lora: LoraWeights | None) -> None:
        self._weights_version += 1  # a cached prefix computed with the old weights is stale
        self._swap.apply(self.model, lora)
        self._refresh_head()

    def close(self) -> None:
        del self.model
        mx.clear_cache()


def _submodule(root: nn.Module, dotted: str) -> nn.Module:
    module = root
    for part in dotted.split("."):
        module = module[int(part)] if part.isdigit() else getattr(module, part)
    return module
