"""The task-agnostic MLX LoRA core: mlx-lm tuner layers, seeded init, AdamW, schedule, accumulation, state.

It mirrors `trainers.lora_torch` step for step (same init, loss sums, clipping, bias-corrected AdamW
and schedule), so dev runs on a Mac and prod runs on Linux produce the same adapter. Subclasses
define `_examples(batch)`, `_inputs(batch)` (the batch as MLX arrays) and `_loss_sum(*inputs)`.
Every public method runs on the process's MLX thread (`backends.mlx_thread`), callable from any thread.
Quantized bases (QLoRA) work: mlx-lm's LoRALinear wraps QuantizedLinear layers as they are.

`[train].precision` casts the frozen base (`trainers.precision`); the LoRA matrices and AdamW state
stay fp32 whatever it is. `[train].gradient_checkpointing` recomputes each transformer layer in the
backward pass (`checkpoint_layers`). `[train].compile` compiles each micro-batch's loss and gradient
with `mx.compile`, the model's arrays and MLX's global random key (LoRA dropout) as implicit inputs and
outputs, as mlx-lm's trainer does, and the clip-and-AdamW update with the optimizer's state; the
accumulation and the data-parallel sum between them stay eager. Training inputs are padded to length buckets
(`trainers.engine_base.bucket`), so a compiled run traces one graph per bucket, not per batch; eager
steps pad alike, because LoRA dropout's masks depend on the padded shape and the setting must not
change what a step computes.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from pathlib import Path
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten, tree_map, tree_unflatten

from backends.adapters import LoraWeights
from backends.mlx_thread import pinned
from trainers.precision import check_checkpointing, resolve_compile, resolve_precision, stored_precision
from trainers.settings import LoraConfig, TrainConfig
from trainers.engine_base import (
    ADAM_BETAS, ADAM_EPS, StepStats, TrainState, check_lora_shape, default_lora_init, dropout_seed, flatten_lora,
    layers_to_train, matches_target, read_state, write_state)
from trainers.world import Sharded
from trainers.schedule import lr_at

MLX_DTYPES = {"fp32": mx.float32, "bf16": mx.bfloat16, "fp16": mx.float16}


class MlxLoraEngine(Sharded):
    """An mlx-lm model with LoRALinear layers (lora_a (in, r), lora_b (r, out)) and mlx AdamW."""

    backend = "mlx"

    def __init__(self, model_dir: Path, lora: LoraConfig, train: TrainConfig, pad_id: int, *,
                 seed: int | None = None, init_lora: LoraWeights | None = None, device: str = "cpu",
                 eval_batch_size: int = 32) -> None:
        self._setup(Path(model_dir), lora, train, pad_id, seed, init_lora, device, eval_batch_size)

    @pinned
    def _setup(self, model_dir: Path, lora: LoraConfig, train: TrainConfig, pad_id: int, seed: int | None,
               init_lora: LoraWeights | None, device: str, eval_batch_size: int) -> None:
        from mlx_lm.tuner.utils import linear_to_lora_layers
        from mlx_lm.utils import load_model

        self.lora_cfg, self.train_cfg = lora, train
        self.seed = train.seed if seed is None else seed
        self.device, self.pad_id, self.eval_batch_size = device, pad_id, eval_batch_size
        self.step = 0
        mx.set_default_device(mx.gpu if device == "gpu" else mx.cpu)
        self.model, _ = load_model(model_dir)
        self.precision = resolve_precision(train.precision, "mlx", device, stored=stored_precision(model_dir))
        self.model.set_dtype(MLX_DTYPES[self.precision])  # float leaves only: quantized weights stay as they are
        self.model.freeze()
        total_layers = len(self.model.layers)
        layers_to_train(lora.num_layers, total_layers)  # validates num_layers like the torch engine
        keys = sorted(k for k, m in self.model.layers[0].named_modules()
                      if isinstance(m, (nn.Linear, nn.QuantizedLinear)) and matches_target(k, lora.target_modules))
        if not keys:
            raise ValueError(f"[lora].target_modules {lora.target_modules} match no linear layer of {model_dir}")
        linear_to_lora_layers(self.model, lora.num_layers if lora.num_layers != -1 else total_layers,
                              {"rank": lora.rank, "scale": lora.scale, "dropout": lora.dropout, "keys": keys})
        if train.gradient_checkpointing:
            check_checkpointing("mlx", True, lora.dropout)
            checkpoint_layers(self.model)
        # Arrays outside the model that the loss reads, put here by `_after_load` and read from here: a
        # compiled step swaps this dict's values for its inputs (it can take no array from a closure).
        self._held: dict[str, mx.array] = {}
        self._after_load()
        mx.eval(self.model.parameters(), self._held)
        params = dict(tree_flatten(self.model.trainable_parameters()))
        self._names = sorted({k.rsplit(".", 1)[0] for k in params})
        self._shapes = {n: tuple(params[f"{n}.lora_a"].shape[:1]) + tuple(params[f"{n}.lora_b"].shape[1:])
                        for n in self._names}
        init = init_lora or default_lora_init(self._shapes, lora.rank, lora.scale, lora.dropout, self.seed)
        self._set_lora(init)
        self.compiled = resolve_compile(train.compile, "mlx")
        self._value_and_grad = nn.value_and_grad(self.model, self._objective)
        # Runs of the step functions' Python bodies: compiled, once per trace (a new input shape); eager,
        # once per call. The bench and the tests read them.
        self.traces: Counter[str] = Counter()
        state = [self.model.state, mx.random.state, self._held]
        self._grad = mx.compile(self._traced_grad, inputs=state, outputs=state) if self.compiled else self._traced_grad
        self._reset_optimizer()

    # -- what a task defines -------------------------------------------------------------------
    def _after_load(self) -> None:
        """Hook run on the MLX thread once the LoRA model exists (e.g. to pick head rows into `_held`)."""

    def _examples(self, batch: Any) -> int:
        raise NotImplementedError

    def _inputs(self, batch: Any) -> tuple[mx.array | None, ...]:
        """The batch as MLX arrays (and None for absent parts), the arguments of `_loss_sum`."""
        raise NotImplementedError

    def _loss_sum(self, *inputs: Any) -> mx.array:
        raise NotImplementedError

    # -- shared machinery ----------------------------------------------------------------------
    def _objective(self, inputs: tuple[mx.array | None, ...], total: mx.array) -> mx.array:
        return self._loss_sum(*inputs) / total

    def _traced_grad(self, inputs: tuple[mx.array | None, ...], total: mx.array) -> tuple[mx.array, Any]:
        """(Σ loss / total, its LoRA gradient tree) of one micro-batch."""
        self.traces["grad"] += 1
        loss, grads = self._value_and_grad(inputs, total)
        return loss, grads

    def _reset_optimizer(self) -> None:
        """A fresh AdamW with its (zero) moments made now, and the clip-and-update step that uses it,
        compiled with the model's and the optimizer's arrays as implicit state when the step is (a
        fixed state tree from the first step on: no second trace when the moments appear)."""
        cfg = self.train_cfg
        self.optimizer = optim.AdamW(learning_rate=cfg.learning_rate, betas=list(ADAM_BETAS), eps=ADAM_EPS,
                                     weight_decay=cfg.weight_decay, bias_correction=True)
        self.optimizer.init(self.model.trainable_parameters())
        state = [self.model.state, self.optimizer.state]
        self._update = (mx.compile(self._clip_and_update, inputs=state, outputs=state) if self.compiled
                        else self._clip_and_update)

    def _clip_and_update(self, grads: Any) -> mx.array:  # Any: a nested dict/list tree of arrays
        """Clip the gradient tree to `max_grad_norm`, take one AdamW step; the norm before clipping."""
        self.traces["update"] += 1
        grads, grad_norm = optim.clip_grad_norm(grads, self.train_cfg.max_grad_norm)
        self.optimizer.update(self.model, grads)
        norm: mx.array = grad_norm
        return norm

    def _head_logits(self, hidden: mx.array) -> mx.array:
        """Full-vocabulary logits of some hidden states (tied or separate, float or quantized head)."""
        head = getattr(self.model, "lm_head", None)
        logits: mx.array = head(hidden) if head is not None else self.model.model.embed_tokens.as_linear(hidden)
        return logits

    def _set_lora(self, lora: LoraWeights) -> None:
        check_lora_shape(lora, self._shapes, self.lora_cfg.rank)
        flat = []
        for name, (a, b) in lora.modules.items():
            flat += [(f"{name}.lora_a", mx.array(np.ascontiguousarray(a.T, np.float32))),
                     (f"{name}.lora_b", mx.array(np.ascontiguousarray(b.T, np.float32)))]
        self.model.update(tree_unflatten(flat))
        mx.eval(self.model.trainable_parameters())

    @pinned
    def train_step(self, micro_batches: list[Any]) -> StepStats:
        """One AdamW update from all micro-batches together, exactly as if they were one batch."""
        started = time.perf_counter()
        cfg = self.train_cfg
        total = sum(self._examples(b) for b in micro_batches)
        if total == 0:
            raise ValueError("train_step needs at least one example")
        self.model.train()
        if self.lora_cfg.dropout > 0.0:  # LoRALinear's dropout draws from MLX's global key
            mx.random.seed(dropout_seed(self.seed, self.step))
        grads, loss_sum, divisor = None, 0.0, mx.array(total, mx.float32)  # an array: no retrace per total
        for batch in filter(None, map(self._local, micro_batches)):
            loss, g = self._grad(self._inputs(batch), divisor)
            grads = g if grads is None else tree_map(mx.add, grads, g)
            mx.eval(loss, grads)
            loss_sum += float(loss) * total  # back from (sum / total) to the micro-batch's sum
        if self.world.size > 1:  # Σ over ranks of their shards' (sum / total) = the global batch's gradient
            from trainers.distributed_mlx import sum_gradients
            grads, loss_sum = sum_gradients(
                grads if grads is not None else tree_map(mx.zeros_like, self.model.trainable_parameters()), loss_sum)
        lr = lr_at(self.step, cfg.learning_rate, cfg.warmup_steps, cfg.max_steps)
        self.optimizer.learning_rate = lr  # an array in the optimizer's state: no retrace per rate
        grad_norm = self._update(grads)
        mx.eval(self.model.trainable_parameters(), self.optimizer.state, grad_norm)
        self.step += 1
        return StepStats(self.step, loss_sum / total, float(grad_norm), lr,
                         sum(b.num_tokens() for b in micro_batches), total, time.perf_counter() - started)

    @pinned
    def lora_weights(self) -> LoraWeights:
        params = dict(tree_flatten(self.model.trainable_parameters()))
        modules = {n: (np.array(params[f"{n}.lora_a"], dtype=np.float32).T.copy(),
                       np.array(params[f"{n}.lora_b"], dtype=np.float32).T.copy()) for n in self._names}
        return LoraWeights(modules, self.lora_cfg.scale, self.lora_cfg.rank, self.lora_cfg.dropout)

    def trainable_vector(self) -> np.ndarray:
        return flatten_lora(self.lora_weights().modules)

    @pinned
    def save_state(self, folder: Path) -> None:
        flat = dict(tree_flatten(self.optimizer.state)) if self.step > 0 else {}  # zero moments are not state
        moments = {}
        for name in self._names:
            for part, leaf in (("A", "lora_a"), ("B", "lora_b")):
                for moment in ("m", "v"):
                    value = flat.get(f"{name}.{leaf}.{moment}")
                    if value is not None:  # stored transposed like the weights, in neutral layout
                        moments[f"{name}.{part}.{moment}"] = np.array(value, dtype=np.float32).T.copy()
        write_state(folder, TrainState(self.backend, self.step, self.seed, self.lora_weights(), moments))

    @pinned
    def load_state(self, folder: Path) -> None:
        state = read_state(folder)
        self._set_lora(state.lora)
        self._reset_optimizer()
        if state.step > 0:
            flat = []
            for name in self._names:
                for part, leaf in (("A", "lora_a"), ("B", "lora_b")):
                    for moment in ("m", "v"):
                        value = state.moments[f"{name}.{part}.{moment}"].T
                        flat.append((f"{name}.{leaf}.{moment}", mx.array(np.ascontiguousarray(value))))
            _assign(self.optimizer.state, flat)
            self.optimizer.state["step"] = mx.array(state.step, mx.uint64)
            mx.eval(self.optimizer.state)
        self.step, self.seed = state.step, state.seed

    @pinned
    def close(self) -> None:
        if hasattr(self, "model"):
            del self.model, self.optimizer, self._value_and_grad, self._grad, self._update
            mx.clear_cache()


def _assign(tree: dict[str, Any], flat: list[tuple[str, mx.array]]) -> None:
    """Set leaves of a nested dict/list tree in place by dotted path (list indices are digits)."""
    for path, value in flat:
        node: Any = tree  # dicts and lists, nested
        *parents, leaf = path.split(".")
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[leaf] = value


def checkpoint_layers(model: nn.Module) -> None:
    """Recompute each of `model.layers` in the backward pass instead of keeping its activations.

    mlx-lm's `grad_checkpoint` patches the layer class for every instance in the process; this gives
    only these layers a checkpointed subclass, so other models (a scorer beside the trainer) are untouched.
    """
    for layer in model.layers:
        cls: type = type(layer)  # hashable as a class (mypy takes a Module class for its unhashable instances)
        layer.__class__ = _checkpointed(cls)


@functools.cache
def _checkpointed(cls: type) -> type:
    """`cls` with its call wrapped in `mx.checkpoint` over the layer's trainable parameters."""
    call = cls.__call__

    def __call__(self: Any, *args: Any, **kwargs: Any) -> Any:  # Any: an nn.Module of class `cls`
        def inner(params: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            self.update(params)
            return call(self, *args, **kwargs)

        return mx.checkpoint(inner)(self.trainable_parameters(), *args, **kwargs)

    return type(f"Checkpointed{cls.__name__}", (cls,), {"__call__": __call__})
