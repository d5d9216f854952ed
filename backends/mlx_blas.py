"""Which BLAS the Linux `mlx[cpu]` wheel uses, and pointing it at OpenBLAS (or back) at setup time.

The wheel bundles the reference (netlib) BLAS as `mlx_cpu.libs/libblas-<hash>.so.*`: an MLX matmul
then runs at a few GFLOP/s where OpenBLAS on the same cores does hundreds. Replacing that one file
with a symlink to the system's OpenBLAS (`libopenblas0-pthread` on Debian) makes MLX fast and
touches nothing else: only MLX's own libraries name that hashed file. Interposing OpenBLAS for the
whole process instead (LD_PRELOAD, or an RTLD_GLOBAL load) also rebinds PyTorch's BLAS calls and
slowed PyTorch in the same process 4x, so this module never does that.

The original is kept as `<name>.netlib`, so `restore` puts the wheel back exactly; `link` runs an
MLX matmul against numpy in a fresh process afterwards and restores the original if the results
differ. Never on macOS (MLX uses Accelerate there). Run as `python -m backends.mlx_blas
link|restore|status [--libs DIR]`; `scripts/setup.sh` calls `link`.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ORIGINAL_SUFFIX = ".netlib"
# Debian/Ubuntu multiarch locations of OpenBLAS's BLAS interface, the pthread build first.
OPENBLAS_GLOBS = ("/usr/lib/*-linux-gnu/openblas-pthread/libblas.so.3",
                  "/usr/lib/*-linux-gnu/openblas-openmp/libblas.so.3",
                  "/usr/lib64/libopenblas.so.0", "/usr/lib/libopenblas.so.0")

# A fresh process compares an MLX matmul with numpy's float64 product: a wrong link fails loudly.
_CHECK = """
import numpy as np, mlx.core as mx
rng = np.random.default_rng(0)
a, b = rng.standard_normal((96, 200)).astype(np.float32), rng.standard_normal((200, 72)).astype(np.float32)
got = np.array(mx.matmul(mx.array(a), mx.array(b), stream=mx.cpu))
want = a.astype(np.float64) @ b.astype(np.float64)
err = float(np.abs(got - want).max() / np.abs(want).max())
raise SystemExit(0 if err < 1e-5 else f"MLX matmul differs from numpy by {err:.2e}")
"""


@dataclass(frozen=True)
class BlasState:
    """The bundled BLAS file and what it resolves to: `netlib` (the wheel's own) or `openblas`."""

    kind: str
    path: Path
    target: Path | None

    def describe(self) -> str:
        if self.kind == "openblas":
            return f"BLAS: OpenBLAS ({self.target})"
        if self.kind == "other":
            return f"BLAS: {self.target}"
        return "BLAS: reference netlib (slow; scripts/setup.sh links OpenBLAS)"


def mlx_libs_dir() -> Path | None:
    """The wheel's `mlx_cpu.libs` folder next to the `mlx` package (None: not a Linux CPU wheel)."""
    spec = importlib.util.find_spec("mlx")
    if spec is None or not spec.submodule_search_locations:
        return None
    libs = Path(next(iter(spec.submodule_search_locations))).parent / "mlx_cpu.libs"
    return libs if libs.is_dir() else None


def bundled_blas(libs: Path) -> Path | None:
    """The wheel's `libblas-<hash>.so*` in `libs` (the live name, never the kept original)."""
    found = sorted(p for p in libs.glob("libblas-*.so*") if not p.name.endswith(ORIGINAL_SUFFIX))
    return found[0] if found else None


def blas_state(libs: Path) -> BlasState | None:
    """What the bundled BLAS in `libs` is now (None: the folder has none)."""
    blas = bundled_blas(libs)
    if blas is None:
        return None
    if blas.is_symlink():
        target = blas.resolve()
        return BlasState("openblas" if "openblas" in str(target) else "other", blas, target)
    return BlasState("netlib", blas, None)


def find_openblas() -> Path | None:
    """The system's OpenBLAS BLAS library, if a package manager installed one."""
    for pattern in OPENBLAS_GLOBS:
        hits = sorted(Path("/").glob(pattern.lstrip("/")))
        if hits:
            return hits[0]
    return None


def link(libs: Path, openblas: Path) -> str:
    """Point the bundled BLAS in `libs` at `openblas`, keeping the original; a no-op when done."""
    blas = bundled_blas(libs)
    if blas is None:
        return f"no bundled libblas in {libs}; nothing to do"
    if blas.is_symlink() and blas.resolve() == openblas.resolve():
        return f"MLX already uses OpenBLAS ({openblas})"
    original = blas.with_name(blas.name + ORIGINAL_SUFFIX)
    if not blas.is_symlink():
        os.replace(blas, original)
    staged = blas.with_name(blas.name + ".staged")
    staged.unlink(missing_ok=True)
    staged.symlink_to(openblas)
    os.replace(staged, blas)  # atomic: a process loading MLX meanwhile sees one file or the other
    return f"MLX now uses OpenBLAS ({openblas}); the wheel's BLAS is kept as {original.name}"


def restore(libs: Path) -> str:
    """Put the wheel's own BLAS back in `libs`; a no-op when it is already there."""
    blas = bundled_blas(libs)
    if blas is None or not blas.is_symlink():
        return "MLX already uses the wheel's own BLAS"
    original = blas.with_name(blas.name + ORIGINAL_SUFFIX)
    if not original.is_file():
        return f"{blas.name} is a link but {original.name} is missing; reinstall mlx-cpu to restore it"
    os.replace(original, blas)
    return "MLX uses the wheel's own (reference netlib) BLAS again"


def mlx_matches_numpy() -> str | None:
    """None when a fresh process's MLX matmul equals numpy's; else why not."""
    proc = subprocess.run([sys.executable, "-c", _CHECK], capture_output=True, text=True, timeout=300)
    return None if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["failed"])[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backends.mlx_blas", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=("link", "restore", "status"))
    parser.add_argument("--libs", type=Path, help="the mlx_cpu.libs folder (default: the installed wheel's)")
    args = parser.parse_args(argv)
    if not sys.platform.startswith("linux"):
        print("mlx BLAS: nothing to do off Linux (MLX uses Accelerate on macOS)")
        return 0
    libs = args.libs or mlx_libs_dir()
    state = blas_state(libs) if libs is not None else None
    if libs is None or state is None:
        print("mlx BLAS: no bundled BLAS found (mlx[cpu] not installed?); nothing to do")
        return 0
    if args.action == "status":
        print(state.describe())
        return 0
    if args.action == "restore":
        print(f"mlx BLAS: {restore(libs)}")
        return 0
    openblas = find_openblas()
    if openblas is None:
        print("note: OpenBLAS not found (apt-get install libopenblas0-pthread); MLX keeps its slow reference BLAS",
              file=sys.stderr)
        return 0
    message = link(libs, openblas)
    if args.libs is None and (problem := mlx_matches_numpy()) is not None:
        print(f"note: MLX with OpenBLAS failed its check ({problem}); {restore(libs)}", file=sys.stderr)
        return 1
    print(f"mlx BLAS: {message}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
