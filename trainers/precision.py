"""`[train].precision` resolved for a backend and device, or refused in one line before the run exists.

What each value means where (LoRA matrices and AdamW state are fp32 everywhere; the reranker's
yes/no projection and every loss are computed in fp32):
- torch: `fp32` runs everything in fp32; `bf16` / `fp16` run the forward pass under `torch.autocast`
  (fp16 with a GradScaler). `auto` is bf16 on a CUDA GPU that has it, else fp16 on CUDA; on a CPU with
  fast bf16 matmul (AMX-BF16 or AVX512-BF16, `backends.select.cpu_bf16_matmul`, the rule the scorer's
  dtype follows) bf16 for models at least `CPU_BF16_MIN_HIDDEN` wide, fp32 otherwise; fp32 on MPS
  (MPS autocast is newer and slower to trust; ask for bf16 or fp16 there explicitly).
  Measured with `bench/precision_bench.py` on an AVX512-BF16 CPU (2 layers, 8x256 tokens a step),
  bf16 / fp32 training tokens/s: 0.99x at hidden 64 (the embedded model: too small for the matmuls
  to dominate, so bf16 would cost exactness for nothing), 1.39x at 128, 1.59x at 256, 2.02x at 1024.
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

# `auto` trains in bf16 on a CPU with fast bf16 matmul only from this hidden size up (see above).
CPU_BF16_MIN_HIDDEN = 256

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


def fast_bf16(device: str) -> bool:
    """Whether a torch device has fast bf16 matmuls: a CUDA GPU with bf16, or a CPU with AMX-BF16 or
    AVX512-BF16 (imports torch for those two; MPS and others: False)."""
    if device == "cpu":
        from backends.select import cpu_bf16_matmul

        return cpu_bf16_matmul() is not None
    if not device.startswith("cuda"):
        return False
    import torch

    return bool(torch.cuda.is_bf16_supported())


def hidden_size(model_dir: Path) -> int:
    """The base's hidden size from its config.json (0 when unreadable: `auto` then stays fp32 on a CPU)."""
    try:
        value = json.loads((Path(model_dir) / "config.json").read_text()).get("hidden_size", 0)
    except (OSError, ValueError, AttributeError):
        return 0
    return value if isinstance(value, int) else 0


def resolve_precision(requested: str, backend: str, device: str, *, bf16_supported: bool = False,
                      stored: Precision = "fp32", hidden: int = 0) -> Precision:
    """The concrete precision of `requested` on `backend`/`device`, or ValueError naming the setting.

    `bf16_supported` says whether the torch device has fast bf16 matmul (`fast_bf16()`); `stored`
    is the base's stored precision (MLX's `auto` on the GPU keeps it); `hidden` the base's hidden size
    (a CPU's `auto` picks bf16 only from `CPU_BF16_MIN_HIDDEN`). Pure, so the plan and the engines
    resolve alike.
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
        if cuda:
            return "bf16" if bf16_supported else "fp16"
        return "bf16" if device == "cpu" and bf16_supported and hidden >= CPU_BF16_MIN_HIDDEN else "fp32"
    if requested == "fp16" and device == "cpu":
        raise ValueError(f"{where}: the CPU has no fp16 matmul; use bf16 or fp32")
    if requested == "bf16" and cuda and not bf16_supported:
        raise ValueError(f"{where}: {device} has no bf16 support; use fp16 or fp32")
    return cast(Precision, requested)


def precision_for(requested: str, backend: str, device: str, model_dir: Path) -> Precision:
    """`resolve_precision` with the device's bf16 support, the base's stored precision and its width
    looked up."""
    return resolve_precision(requested, backend, device, bf16_supported=backend == "torch" and fast_bf16(device),
                             stored=stored_precision(model_dir), hidden=hidden_size(model_dir))


def auto_reason(backend: str, device: str) -> str:
    """What `[train].precision = "auto"` picks on `backend`/`device` and why, for `ragweld-tui backends`."""
    if backend == "mlx":
        return "auto: the base as stored on the GPU" if device == "gpu" else "auto: fp32 on MLX's CPU backend"
    if device.startswith("cuda"):
        return "auto: bf16 (tensor cores)" if fast_bf16(device) else "auto: fp16 with a GradScaler (no bf16 here)"
    if device == "cpu":
        from backends.select import cpu_bf16_matmul

        feature = cpu_bf16_matmul()
        if feature is not None:
            return (f"auto: bf16 on a CPU with {feature} for models at least {CPU_BF16_MIN_HIDDEN} wide, "
                    "fp32 below (too small for bf16 to pay)")
        return "auto: fp32 on a CPU without AMX-BF16 or AVX512-BF16"
    return f"auto: fp32 on {device}"


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
    here: no Mac). On MLX's CPU backend it is a wash: `bench/mlx_compile_bench.py` measured compiled /
    eager step time 1.04 on the reranker demo and 0.93-0.94 on the agent bench (8 x 128 tokens) on a
    quiet machine (0.89-0.98 under load), with one trace per length bucket, so `auto` need not tell
    the two devices apart.
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
