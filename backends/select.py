"""Which backends this machine can run, and the `auto` choice with the reason for it.

Framework imports are guarded and cached (peft's `import_utils` pattern): asking costs one import
attempt per process, and a missing framework is a reason string, not an exception.
"""

from __future__ import annotations

import importlib.util
import platform
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from backends.mlx_blas import blas_state, mlx_libs_dir


@dataclass(frozen=True)
class BackendInfo:
    """One backend's availability on this machine."""

    name: str
    available: bool
    devices: tuple[str, ...]
    detail: str


@dataclass(frozen=True)
class BackendChoice:
    """The backend and device to use, and why."""

    backend: str
    device: str
    reason: str


@dataclass(frozen=True)
class DtypeChoice:
    """The torch dtype `auto` resolves to on a device, and why."""

    dtype: str
    reason: str


def is_apple_silicon() -> bool:
    return sys.platform == "darwin" and platform.machine() == "arm64"


@lru_cache(maxsize=1)
def mlx_info() -> BackendInfo:
    if importlib.util.find_spec("mlx") is None or importlib.util.find_spec("mlx_lm") is None:
        return BackendInfo("mlx", False, (), "mlx / mlx-lm not installed (pip install 'mlx[cpu]' mlx-lm on Linux)")
    from backends.mlx_thread import release_mlx_at_exit

    release_mlx_at_exit()
    try:
        import mlx.core as mx
    except Exception as exc:  # a broken wheel must not crash `backends`
        return BackendInfo("mlx", False, (), f"mlx failed to import: {exc}")
    devices = ["cpu"]
    try:
        if mx.metal.is_available():
            devices.insert(0, "gpu")
    except Exception:
        pass
    detail = f"mlx {getattr(mx, '__version__', '?')}"
    libs = mlx_libs_dir()  # Linux CPU wheels only: which BLAS the bundled libblas resolves to
    state = blas_state(libs) if libs is not None else None
    if state is not None:
        detail += f"; {state.describe()}"
    return BackendInfo("mlx", True, tuple(devices), detail)


@lru_cache(maxsize=1)
def torch_info() -> BackendInfo:
    if importlib.util.find_spec("torch") is None:
        return BackendInfo("torch", False, (), "torch not installed (pip install torch==2.13.0 for the CPU build)")
    try:
        import torch
    except Exception as exc:
        return BackendInfo("torch", False, (), f"torch failed to import: {exc}")
    devices = []
    if torch.cuda.is_available():
        devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    devices.append("cpu")
    detail = f"torch {torch.__version__}"
    if not torch.cuda.is_available():
        detail += "; CUDA not available" + ("" if torch.version.cuda else " (CPU build)")
    return BackendInfo("torch", True, tuple(devices), detail)


def cpu_flags() -> set[str]:
    """This CPU's feature flags from /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return set(line.partition(":")[2].split())


@lru_cache(maxsize=1)
def cpu_bf16_matmul() -> str | None:
    """The CPU feature that makes torch's bf16 matmul fast here (AMX-BF16, AVX512-BF16), or None.

    torch's own probes (`torch.cpu._is_amx_tile_supported`, `_is_avx512_bf16_supported`) check both
    the CPU and what this torch build dispatches to; they are private, so a torch without them falls
    back to the kernel's flags. Without either feature bf16 is emulated and slower than fp32.
    """
    import torch

    probes = (("AMX-BF16", "_is_amx_tile_supported", "amx_bf16"),
              ("AVX512-BF16", "_is_avx512_bf16_supported", "avx512_bf16"))
    flags: set[str] | None = None
    for name, probe, flag in probes:
        check = getattr(torch.cpu, probe, None)
        if check is not None:
            if check():
                return name
            continue
        flags = cpu_flags() if flags is None else flags
        if flag in flags:
            return name
    return None


def torch_dtype(requested: str, device: str) -> DtypeChoice:
    """Resolve a torch `dtype` setting on `device`: `auto` is bf16 on CUDA and on CPUs with fast bf16
    matmul (the yes/no head and log-odds stay fp32 in the scorer), fp32 elsewhere."""
    if requested != "auto":
        return DtypeChoice(requested, f"requested: {requested}")
    if device.startswith("cuda"):
        return DtypeChoice("bfloat16", "auto: bf16 on CUDA (tensor cores)")
    if device == "cpu":
        feature = cpu_bf16_matmul()
        if feature is not None:
            return DtypeChoice("bfloat16", f"auto: bf16 on a CPU with {feature} (float32 for exact scores)")
        return DtypeChoice("float32", "auto: fp32 on a CPU without AMX-BF16 or AVX512-BF16")
    return DtypeChoice("float32", f"auto: fp32 on {device}")


def describe_backends() -> list[BackendInfo]:
    return [mlx_info(), torch_info()]


def choose_backend(requested: str, device: str = "auto") -> BackendChoice:
    """Resolve `auto|mlx|torch` and a device; raise ValueError naming what is missing."""
    if requested not in ("auto", "mlx", "torch"):
        raise ValueError(f"unknown backend {requested!r}; use auto, mlx or torch")
    if requested == "auto":
        mlx, torch = mlx_info(), torch_info()
        if is_apple_silicon() and mlx.available:
            return BackendChoice("mlx", _mlx_device(device), "auto: Apple Silicon with MLX")
        if torch.available and any(d.startswith("cuda") for d in torch.devices):
            return BackendChoice("torch", _torch_device(device), "auto: PyTorch with CUDA")
        if torch.available:
            return BackendChoice("torch", _torch_device(device), "auto: PyTorch on CPU (no Apple Silicon, no CUDA)")
        if mlx.available:
            return BackendChoice("mlx", _mlx_device(device), "auto: MLX on CPU (PyTorch not installed)")
        raise ValueError("no backend available: install torch or mlx (see `ragweld-tui backends`)")
    info = mlx_info() if requested == "mlx" else torch_info()
    if not info.available:
        raise ValueError(f"backend {requested} is not available: {info.detail}")
    device_of = _mlx_device if requested == "mlx" else _torch_device
    return BackendChoice(requested, device_of(device), f"requested: {requested}")


def _torch_device(device: str) -> str:
    devices = torch_info().devices
    if device == "auto":
        return next((d for d in devices if d.startswith("cuda")), "mps" if "mps" in devices else "cpu")
    wanted = "cuda:0" if device == "cuda" else device
    if wanted == "gpu":
        raise ValueError("device 'gpu' is MLX's name; with torch use cuda, cuda:N, mps or cpu")
    if wanted not in devices:
        raise ValueError(f"device {device} is not available to torch here (available: {', '.join(devices)})")
    return wanted


def _mlx_device(device: str) -> str:
    devices = mlx_info().devices
    if device == "auto":
        return devices[0]
    if device not in ("cpu", "gpu"):
        raise ValueError(f"device {device} is not an MLX device (use cpu or gpu)")
    if device not in devices:
        raise ValueError(f"MLX device {device} is not available here (available: {', '.join(devices)})")
    return device
