"""`[train].precision` resolved for a backend and device, or refused in one line before the run exists.

What each value means where (LoRA matrices and AdamW state are fp32 everywhere; the reranker's
yes/no projection and every loss are computed in fp32):
- torch: `fp32` runs everything in fp32; `bf16` / `fp16` run the forward pass under `torch.autocast`
  (fp16 with a GradScaler). `auto` is bf16 on a CUDA GPU that has it, else fp16 on CUDA, fp32 on CPU
  and MPS (MPS autocast is newer and slower to trust; ask for bf16 or fp16 there explicitly).
- mlx: the frozen base is cast to the precision. `auto` keeps the base as stored on the GPU and is
  fp32 on MLX's CPU backend, where bf16 is slow and loses exactness.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Literal, cast

from trainers.settings import AppConfig, TrainConfig

Precision = Literal["fp32", "bf16", "fp16"]

# safetensors dtype names of float tensors → the precision that keeps them as they are.
_STORED: dict[str, Precision] = {"F32": "fp32", "BF16": "bf16", "F16": "fp16"}


def stored_precision(model_dir: Path) -> Precision:
    """The precision most of a base's float tensors are stored in (read from a safetensors header,
    not the data; fp32 when the folder has none), which is what mlx-lm loads them as."""
    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        return "fp32"
    with files[0].open("rb") as handle:
        size = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(size))
    counts = Counter(_STORED[t["dtype"]] for name, t in header.items()
                     if name != "__metadata__" and t.get("dtype") in _STORED)
    return counts.most_common(1)[0][0] if counts else "fp32"


def cuda_bf16_supported(device: str) -> bool:
    """Whether a torch device has bf16 matmuls (only asked of CUDA devices; imports torch then)."""
    if not device.startswith("cuda"):
        return False
    import torch

    return bool(torch.cuda.is_bf16_supported())


def resolve_precision(requested: str, backend: str, device: str, *, bf16_supported: bool = False,
                      stored: Precision = "fp32") -> Precision:
    """The concrete precision of `requested` on `backend`/`device`, or ValueError naming the setting.

    `bf16_supported` says whether a CUDA device has bf16; `stored` is the base's stored precision
    (MLX's `auto` on the GPU keeps it). Pure, so the plan and the engines resolve alike.
    """
    where = f"[train].precision = {requested!r}"
    if requested not in ("auto", "fp32", "bf16", "fp16"):
        raise ValueError(f"{where}: must be one of 'auto', 'fp32', 'bf16', 'fp16'")
    if backend == "mlx":
        if requested == "auto":
            return stored if device == "gpu" else "fp32"
        return cast(Precision, requested)
    cuda = device.startswith("cuda")
    if requested == "auto":
        return ("bf16" if bf16_supported else "fp16") if cuda else "fp32"
    if requested == "fp16" and device == "cpu":
        raise ValueError(f"{where}: the CPU has no fp16 matmul; use bf16 or fp32")
    if requested == "bf16" and cuda and not bf16_supported:
        raise ValueError(f"{where}: {device} has no bf16 support; use fp16 or fp32")
    return cast(Precision, requested)


def precision_for(requested: str, backend: str, device: str, model_dir: Path) -> Precision:
    """`resolve_precision` with the device's bf16 support and the base's stored precision looked up."""
    return resolve_precision(requested, backend, device, bf16_supported=cuda_bf16_supported(device),
                             stored=stored_precision(model_dir))


def check_checkpointing(backend: str, checkpointing: bool, dropout: float) -> None:
    """Refuse what `[train].gradient_checkpointing` cannot do: on MLX the recompute would draw new
    LoRA dropout masks (MLX's global random stream cannot be rewound), so the gradients would be wrong."""
    if backend == "mlx" and checkpointing and dropout > 0.0:
        raise ValueError(f"[train].gradient_checkpointing = true with [lora].dropout = {dropout}: MLX would draw "
                         "other dropout masks when it recomputes a layer; set one of them off, or use torch")


def resolve_compile(requested: bool | str, backend: str) -> bool:
    """Whether `[train].compile` compiles the step here: only MLX compiles (torch ignores the setting, so
    one config serves a Mac and a Linux box); `auto` compiles on MLX's GPU and CPU alike.

    On the GPU (Metal) compiling fuses the elementwise kernels, as mlx-lm relies on (not measured
    here: no Mac). On MLX's CPU backend it is no slower: `bench/mlx_compile_bench.py` measured
    compiled / eager step time 0.92-0.98 on the reranker demo and 0.89-0.95 on the agent bench
    (8 x 128 tokens), with one trace per length bucket, so `auto` need not tell the two devices apart.
    """
    if backend != "mlx":
        return False
    return True if requested == "auto" else bool(requested)


def with_resolved_precision(config: AppConfig, backend: str, device: str, model_dir: Path) -> AppConfig:
    """A copy of `config` whose `[train].precision` and `[train].compile` are the ones that run here,
    which the run records (ValueError, before the run exists, when this backend or device cannot run
    what is asked for)."""
    check_checkpointing(backend, config.train.gradient_checkpointing, config.lora.dropout)
    resolved = precision_for(config.train.precision, backend, device, model_dir)
    compiled = resolve_compile(config.train.compile, backend)
    return config.model_copy(update={"train": config.train.model_copy(update={"precision": resolved,
                                                                              "compile": compiled})})


def compute_note(train: TrainConfig) -> str:
    """How a run computes, for its start line: `precision bf16` (`, gradient checkpointing`) (`, compiled step`)."""
    return (f"precision {train.precision}" + (", gradient checkpointing" if train.gradient_checkpointing else "")
            + (", compiled step" if train.compile is True else ""))
