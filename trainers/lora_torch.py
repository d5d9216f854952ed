"""The task-agnostic PyTorch LoRA core: peft setup, seeded init, AdamW, schedule, accumulation, state.

Subclasses (the reranker engine, the chat engine) differ only in what a micro-batch's loss is: they
implement `_examples(batch)` (how many examples or tokens the batch's loss sums over) and
`_loss_sum(batch)` (that sum, as a tensor with gradients). Everything else — which layers get LoRA,
the init shared with MLX, exact gradient accumulation, clipping, the warmup+cosine rate, dropout
seeding and the neutral on-disk state — is here once.

`[train].precision` (`trainers.precision`): the frozen base is loaded in fp32 and bf16/fp16 run the
forward pass and loss under `torch.autocast`; the LoRA matrices and AdamW state stay fp32, and fp16
scales the loss with a GradScaler (a step whose gradients overflow is skipped). Evaluation runs in
fp32, as the scorer that serves the adapter does. `[train].gradient_checkpointing` recomputes each
decoder layer in the backward pass (non-reentrant, so the frozen inputs need no `requires_grad`).
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from backends.adapters import LoraWeights
from trainers.precision import precision_for
from trainers.settings import LoraConfig, TrainConfig
from trainers.engine_base import (
    ADAM_BETAS, ADAM_EPS, StepStats, TrainState, check_lora_shape, default_lora_init, dropout_seed, flatten_lora,
    layers_to_train, matches_target, read_state, write_state)
from trainers.world import Sharded
from trainers.schedule import lr_at


class TorchLoraEngine(Sharded):
    """A transformers causal LM with peft LoRA layers and torch AdamW; only the LoRA matrices train."""

    backend = "torch"

    def __init__(self, model_dir: Path, lora: LoraConfig, train: TrainConfig, pad_id: int, *,
                 seed: int | None = None, init_lora: LoraWeights | None = None, device: str = "cpu",
                 eval_batch_size: int = 32) -> None:
        from peft import LoraConfig as PeftLoraConfig
        from peft import get_peft_model
        from transformers import AutoModelForCausalLM
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        self.lora_cfg, self.train_cfg = lora, train
        self.seed = train.seed if seed is None else seed
        self.device, self.pad_id, self.eval_batch_size = device, pad_id, eval_batch_size
        self.step = 0
        self.precision = precision_for(train.precision, "torch", device, model_dir)
        self._device_type = torch.device(device).type
        base = AutoModelForCausalLM.from_pretrained(
            model_dir, dtype=torch.float32, attn_implementation="sdpa", use_safetensors=True)
        if train.gradient_checkpointing:
            base.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            # Non-reentrant checkpoints need no grad on the embeddings' output; the hook transformers adds
            # anyway would carry the backward pass through frozen layers below the first LoRA one.
            base.disable_input_require_grads()
        layers = layers_to_train(lora.num_layers, base.config.num_hidden_layers)
        targets = sorted({name.split(".", 3)[3] for name, module in base.named_modules()
                          if isinstance(module, torch.nn.Linear) and name.startswith("model.layers.")
                          and name.count(".") >= 3 and matches_target(name.split(".", 3)[3], lora.target_modules)})
        if not targets:
            raise ValueError(f"[lora].target_modules {lora.target_modules} match no linear layer of {model_dir}")
        # The ignore: peft annotates lora_alpha as int, but any number works (it only scales).
        peft_config = PeftLoraConfig(r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout,  # type: ignore[arg-type]
                                     target_modules=targets, layers_to_transform=layers, bias="none")
        with warnings.catch_warnings():  # peft calls a transformers property deprecated in v5
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            self.model = get_peft_model(base, peft_config).to(device)
        # Any: peft types the wrapped transformers model as a bare nn.Module.
        peft_base: Any = self.model.get_base_model()
        self._backbone = peft_base.model  # Qwen3Model: stops at the final norm
        self._head = peft_base.get_output_embeddings().weight  # frozen (V, hidden)
        self._layers: dict[str, tuple[torch.nn.Parameter, torch.nn.Parameter]] = {}
        for name, module in self.model.named_modules():
            if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
                neutral = name.removeprefix("base_model.model.")
                self._layers[neutral] = (module.lora_A["default"].weight, module.lora_B["default"].weight)
        self._names = sorted(self._layers)
        self._shapes = {n: (a.shape[1], b.shape[0]) for n, (a, b) in self._layers.items()}
        init = init_lora or default_lora_init(self._shapes, lora.rank, lora.scale, lora.dropout, self.seed)
        self._set_lora(init)
        self._params = [p for n in self._names for p in self._layers[n]]
        self.optimizer = torch.optim.AdamW(self._params, lr=train.learning_rate, betas=ADAM_BETAS, eps=ADAM_EPS,
                                           weight_decay=train.weight_decay)
        self._scaler = torch.amp.GradScaler(self._device_type) if self.precision == "fp16" else None

    # -- what a task defines -------------------------------------------------------------------
    def _examples(self, batch: Any) -> int:
        """How many examples (or target tokens) the batch's loss sum covers."""
        raise NotImplementedError

    def _loss_sum(self, batch: Any) -> torch.Tensor:
        """The batch's loss summed over its examples, with gradients."""
        raise NotImplementedError

    # -- shared machinery ----------------------------------------------------------------------
    @torch.no_grad()
    def _set_lora(self, lora: LoraWeights) -> None:
        check_lora_shape(lora, self._shapes, self.lora_cfg.rank)
        for name, (a, b) in lora.modules.items():
            pa, pb = self._layers[name]
            pa.copy_(torch.from_numpy(np.asarray(a, np.float32)))
            pb.copy_(torch.from_numpy(np.asarray(b, np.float32)))

    def _hidden(self, ids: np.ndarray) -> torch.Tensor:
        """Final-norm hidden states (batch, time, hidden) of right-padded ids."""
        hidden: torch.Tensor = self._backbone(input_ids=torch.from_numpy(ids).to(self.device),
                                              use_cache=False).last_hidden_state
        return hidden

    def train_step(self, micro_batches: list[Any]) -> StepStats:
        """One AdamW update from all micro-batches together, exactly as if they were one batch."""
        started = time.perf_counter()
        cfg = self.train_cfg
        total = sum(self._examples(b) for b in micro_batches)
        if total == 0:
            raise ValueError("train_step needs at least one example")
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss_sum = 0.0
        scaler = self._scaler
        with self._dropout_rng():
            for batch in filter(None, map(self._local, micro_batches)):
                with self._autocast():
                    loss = self._loss_sum(batch)
                mean_part = loss / total  # Σ over micro-batches of (sum / total) = one big batch's mean
                (scaler.scale(mean_part) if scaler else mean_part).backward()
                loss_sum += float(loss.detach())
        if self.world.size > 1:  # Σ over ranks of their shards' (sum / total) = the global batch's gradient
            from trainers.distributed_torch import sum_gradients
            loss_sum = sum_gradients(self._params, loss_sum)
        if scaler:  # every rank holds the same summed gradients, so all take the same skip decision
            scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self._params, cfg.max_grad_norm))
        lr = lr_at(self.step, cfg.learning_rate, cfg.warmup_steps, cfg.max_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        skipped = False
        if scaler:
            scale = scaler.get_scale()
            scaler.step(self.optimizer)  # skips the update when the gradients hold inf/nan
            scaler.update()
            skipped = scaler.get_scale() < scale
        else:
            self.optimizer.step()
        self.step += 1
        return StepStats(self.step, loss_sum / total, grad_norm, lr, sum(b.num_tokens() for b in micro_batches),
                         total, time.perf_counter() - started, skipped)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The forward pass's precision: autocast to bf16/fp16, or nothing for fp32."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self._device_type, dtype=dtype)

    def _fp32(self) -> contextlib.AbstractContextManager[Any]:
        """A region computed in fp32 even inside the training autocast (projections, losses)."""
        return torch.autocast(self._device_type, enabled=False)

    @contextlib.contextmanager
    def _dropout_rng(self) -> Iterator[None]:
        """Dropout masks from a generator seeded by (seed, step); the caller's global RNG is untouched."""
        if self.lora_cfg.dropout == 0.0:
            yield
            return
        devices = [torch.device(self.device).index or 0] if self.device.startswith("cuda") else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(dropout_seed(self.seed, self.step))
            yield

    def lora_weights(self) -> LoraWeights:
        modules = {n: (a.detach().cpu().numpy().copy(), b.detach().cpu().numpy().copy())
                   for n, (a, b) in self._layers.items()}
        return LoraWeights(modules, self.lora_cfg.scale, self.lora_cfg.rank, self.lora_cfg.dropout)

    def trainable_vector(self) -> np.ndarray:
        return flatten_lora(self.lora_weights().modules)

    def save_state(self, folder: Path) -> None:
        moments = {}
        for name in self._names:
            for part, param in zip("AB", self._layers[name]):
                state = self.optimizer.state.get(param)
                if state:
                    moments[f"{name}.{part}.m"] = state["exp_avg"].detach().cpu().numpy()
                    moments[f"{name}.{part}.v"] = state["exp_avg_sq"].detach().cpu().numpy()
        write_state(folder, TrainState(self.backend, self.step, self.seed, self.lora_weights(), moments))

    def load_state(self, folder: Path) -> None:
        state = read_state(folder)
        self._set_lora(state.lora)
        saved = self.optimizer.state_dict()
        per_param = {}
        if state.step > 0:
            for index, (name, part) in enumerate((n, p) for n in self._names for p in "AB"):
                per_param[index] = {"step": torch.tensor(float(state.step)),
                                    "exp_avg": torch.from_numpy(state.moments[f"{name}.{part}.m"].copy()),
                                    "exp_avg_sq": torch.from_numpy(state.moments[f"{name}.{part}.v"].copy())}
        self.optimizer.load_state_dict({"state": per_param, "param_groups": saved["param_groups"]})
        self.step, self.seed = state.step, state.seed

    def close(self) -> None:
        if hasattr(self, "model"):
            del self.model, self.optimizer, self._layers, self._params, self._backbone, self._head
            if self.device.startswith("cuda"):
                torch.cuda.empty_cache()
