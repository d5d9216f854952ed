"""MLX LoRA training engine: mlx-lm's model with its tuner's LoRALinear, mlx AdamW.

Mirrors the PyTorch engine step for step (same init, loss sums, clipping, bias-corrected AdamW
and schedule), so that dev runs on a Mac and prod runs on Linux produce the same adapter.

MLX streams belong to the thread that made them, and callers drive engines from whichever worker
`asyncio.to_thread` picks; so all MLX training work of the process runs on one daemon thread, and
every public method may be called from any thread. The thread never ends: when a thread that used
MLX exits while the interpreter is finalizing, MLX's thread-local destructor takes the GIL and the
process aborts ("terminate called without an active exception"), seen with mlx 0.32.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten, tree_map, tree_unflatten

from backends.adapters import LoraWeights
from ragweld_tui.config import LoraConfig, TrainConfig
from trainers.engine_base import (
    ADAM_BETAS, ADAM_EPS, Batch, StepStats, TrainState, check_lora_shape, default_lora_init, dropout_seed,
    flatten_lora, layers_to_train, matches_target, pad_rows, read_state, write_state)
from trainers.schedule import lr_at

T = TypeVar("T")


class MlxWorker:
    """One daemon thread that runs submitted calls in order and returns their results."""

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name="mlx-train", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            fn, args, kwargs, future = self._calls.get()
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args, **kwargs))
                except BaseException as exc:  # handed to the caller, who re-raises it
                    future.set_exception(exc)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if threading.current_thread() is self.thread:
            return fn(*args, **kwargs)
        future: Future = Future()
        self._calls.put((fn, args, kwargs, future))
        return future.result()


@functools.lru_cache(maxsize=1)
def mlx_worker() -> MlxWorker:
    """The process's MLX training thread, started on first use."""
    return MlxWorker()


def _pinned(method: Callable[..., T]) -> Callable[..., T]:
    """Run the method on the MLX training thread."""
    @functools.wraps(method)
    def wrapper(self: MlxTrainEngine, *args: Any, **kwargs: Any) -> T:
        return mlx_worker().call(method, self, *args, **kwargs)
    return wrapper


class MlxTrainEngine:
    """Trains an mlx-lm LoRA adapter (lora_a (in, r), lora_b (r, out)) on an mlx-lm model."""

    backend = "mlx"

    def __init__(self, model_dir: Path, lora: LoraConfig, train: TrainConfig, answer_ids: tuple[int, int],
                 pad_id: int, *, seed: int | None = None, init_lora: LoraWeights | None = None,
                 device: str = "cpu", eval_batch_size: int = 32) -> None:
        self._setup(Path(model_dir), lora, train, answer_ids, pad_id, seed, init_lora, device, eval_batch_size)

    @_pinned
    def _setup(self, model_dir: Path, lora: LoraConfig, train: TrainConfig, answer_ids: tuple[int, int],
               pad_id: int, seed: int | None, init_lora: LoraWeights | None, device: str,
               eval_batch_size: int) -> None:
        from mlx_lm.tuner.utils import linear_to_lora_layers
        from mlx_lm.utils import load_model

        self.lora_cfg, self.train_cfg = lora, train
        self.seed = train.seed if seed is None else seed
        self.device, self.pad_id, self.eval_batch_size = device, pad_id, eval_batch_size
        self.step = 0
        mx.set_default_device(mx.gpu if device == "gpu" else mx.cpu)
        self.model, _ = load_model(model_dir)
        if device == "cpu":
            self.model.set_dtype(mx.float32)  # bf16 is slow on MLX's CPU backend and loses exactness
        self.model.freeze()
        total_layers = len(self.model.layers)
        layers_to_train(lora.num_layers, total_layers)  # validates num_layers like the torch engine
        keys = sorted(k for k, m in self.model.layers[0].named_modules()
                      if isinstance(m, (nn.Linear, nn.QuantizedLinear)) and matches_target(k, lora.target_modules))
        if not keys:
            raise ValueError(f"[lora].target_modules {lora.target_modules} match no linear layer of {model_dir}")
        linear_to_lora_layers(self.model, lora.num_layers if lora.num_layers != -1 else total_layers,
                              {"rank": lora.rank, "scale": lora.scale, "dropout": lora.dropout, "keys": keys})
        head = getattr(self.model, "lm_head", None) or self.model.model.embed_tokens
        if hasattr(head, "scales"):
            raise ValueError("training on a quantized head is not supported; use a float base model")
        self._head_rows = mx.stop_gradient(head.weight[mx.array(list(answer_ids))].astype(mx.float32))
        mx.eval(self.model.parameters(), self._head_rows)
        params = dict(tree_flatten(self.model.trainable_parameters()))
        self._names = sorted({k.rsplit(".", 1)[0] for k in params})
        self._shapes = {n: tuple(params[f"{n}.lora_a"].shape[:1]) + tuple(params[f"{n}.lora_b"].shape[1:])
                        for n in self._names}
        init = init_lora or default_lora_init(self._shapes, lora.rank, lora.scale, lora.dropout, self.seed)
        self._set_lora(init)
        self.optimizer = optim.AdamW(learning_rate=train.learning_rate, betas=list(ADAM_BETAS), eps=ADAM_EPS,
                                     weight_decay=train.weight_decay, bias_correction=True)
        self._value_and_grad = nn.value_and_grad(self.model, self._loss)

    def _set_lora(self, lora: LoraWeights) -> None:
        check_lora_shape(lora, self._shapes, self.lora_cfg.rank)
        flat = []
        for name, (a, b) in lora.modules.items():
            flat += [(f"{name}.lora_a", mx.array(np.ascontiguousarray(a.T, np.float32))),
                     (f"{name}.lora_b", mx.array(np.ascontiguousarray(b.T, np.float32)))]
        self.model.update(tree_unflatten(flat))
        mx.eval(self.model.trainable_parameters())

    def _forward(self, ids: mx.array, last: mx.array) -> mx.array:
        hidden = self.model.model(ids)
        picked = hidden[mx.arange(ids.shape[0]), last].astype(mx.float32)
        logits = picked @ self._head_rows.T
        return logits[:, 0] - logits[:, 1]

    def _loss(self, ids: mx.array, last: mx.array, labels: mx.array | None, total: int) -> mx.array:
        z = self._forward(ids, last)
        if labels is not None:
            loss = labels * nn.softplus(-z) + (1.0 - labels) * nn.softplus(z)
        else:
            groups = z.reshape(-1, self.train_cfg.group_size)
            loss = mx.logsumexp(groups, axis=1) - groups[:, 0]
        return loss.sum() / total

    @_pinned
    def train_step(self, micro_batches: list[Batch]) -> StepStats:
        started = time.perf_counter()
        cfg = self.train_cfg
        total = sum(b.num_examples(cfg.loss, cfg.group_size) for b in micro_batches)
        if total == 0:
            raise ValueError("train_step needs at least one example")
        self.model.train()
        if self.lora_cfg.dropout > 0.0:  # LoRALinear's dropout draws from MLX's global key
            mx.random.seed(dropout_seed(self.seed, self.step))
        grads, loss_sum = None, 0.0
        for batch in micro_batches:
            ids, last = pad_rows(batch.rows, self.pad_id)
            labels = mx.array(np.asarray(batch.labels, np.float32)) if cfg.loss == "pointwise" else None
            loss, g = self._value_and_grad(mx.array(ids.astype(np.int32)), mx.array(last.astype(np.int32)),
                                           labels, total)
            grads = g if grads is None else tree_map(mx.add, grads, g)
            mx.eval(loss, grads)
            loss_sum += float(loss) * total  # back from (sum / total) to the micro-batch's sum
        grads, grad_norm = optim.clip_grad_norm(grads, cfg.max_grad_norm)
        lr = lr_at(self.step, cfg.learning_rate, cfg.warmup_steps, cfg.max_steps)
        self.optimizer.learning_rate = lr
        self.optimizer.update(self.model, grads)
        mx.eval(self.model.trainable_parameters(), self.optimizer.state)
        self.step += 1
        return StepStats(self.step, loss_sum / total, float(grad_norm), lr,
                         sum(b.num_tokens() for b in micro_batches), total, time.perf_counter() - started)

    @_pinned
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

    @_pinned
    def lora_weights(self) -> LoraWeights:
        params = dict(tree_flatten(self.model.trainable_parameters()))
        modules = {n: (np.array(params[f"{n}.lora_a"], dtype=np.float32).T.copy(),
                       np.array(params[f"{n}.lora_b"], dtype=np.float32).T.copy()) for n in self._names}
        return LoraWeights(modules, self.lora_cfg.scale, self.lora_cfg.rank, self.lora_cfg.dropout)

    def trainable_vector(self) -> np.ndarray:
        return flatten_lora(self.lora_weights().modules)

    @_pinned
    def save_state(self, folder: Path) -> None:
        flat = dict(tree_flatten(self.optimizer.state))
        moments = {}
        for name in self._names:
            for part, leaf in (("A", "lora_a"), ("B", "lora_b")):
                for moment in ("m", "v"):
                    value = flat.get(f"{name}.{leaf}.{moment}")
                    if value is not None:  # stored transposed like the weights, in neutral layout
                        moments[f"{name}.{part}.{moment}"] = np.array(value, dtype=np.float32).T.copy()
        write_state(folder, TrainState(self.backend, self.step, self.seed, self.lora_weights(), moments))

    @_pinned
    def load_state(self, folder: Path) -> None:
        state = read_state(folder)
        self._set_lora(state.lora)
        self.optimizer = optim.AdamW(learning_rate=self.train_cfg.learning_rate, betas=list(ADAM_BETAS),
                                     eps=ADAM_EPS, weight_decay=self.train_cfg.weight_decay, bias_correction=True)
        if state.step > 0:
            self.optimizer.init(self.model.trainable_parameters())
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

    @_pinned
    def close(self) -> None:
        if hasattr(self, "model"):
            del self.model, self.optimizer, self._value_and_grad
            mx.clear_cache()


def _assign(tree: dict, flat: list[tuple[str, mx.array]]) -> None:
    """Set leaves of a nested dict/list tree in place by dotted path (list indices are digits)."""
    for path, value in flat:
        node = tree
        *parents, leaf = path.split(".")
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[leaf] = value
