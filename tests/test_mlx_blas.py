"""Pointing the MLX wheel's bundled BLAS at OpenBLAS: idempotent, reversible, reported, and MLX stays exact.

Runs on a scratch copy of the installed wheel's `mlx_cpu.libs` (the real files), never on the venv.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from backends.mlx_blas import (ORIGINAL_SUFFIX, blas_state, bundled_blas, find_openblas, link, main, mlx_libs_dir,
                               restore)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the bundled BLAS is a Linux wheel's")


@pytest.fixture
def libs_copy(tmp_path: Path) -> Path:
    """A copy of the installed wheel's libs folder, with the wheel's own (netlib) BLAS live."""
    libs = mlx_libs_dir()
    if libs is None:
        pytest.skip("no mlx[cpu] wheel libs here")
    copy = tmp_path / "mlx_cpu.libs"
    copy.mkdir()
    for item in libs.iterdir():
        if item.name.endswith(ORIGINAL_SUFFIX):  # the venv is linked: its kept original is the wheel's file
            shutil.copy(item, copy / item.name.removesuffix(ORIGINAL_SUFFIX))
        elif not item.is_symlink():
            shutil.copy(item, copy / item.name)
    return copy


@pytest.fixture
def openblas() -> Path:
    found = find_openblas()
    if found is None:
        pytest.skip("OpenBLAS not installed (apt-get install libopenblas0-pthread)")
    return found


def test_link_is_idempotent_and_restore_gives_back_the_wheels_file(libs_copy: Path, openblas: Path) -> None:
    blas = bundled_blas(libs_copy)
    assert blas is not None
    original_bytes = blas.read_bytes()
    assert blas_state(libs_copy).kind == "netlib"  # type: ignore[union-attr]

    assert "now uses OpenBLAS" in link(libs_copy, openblas)
    state = blas_state(libs_copy)
    assert state is not None and state.kind == "openblas" and state.target == openblas.resolve()
    assert (libs_copy / (blas.name + ORIGINAL_SUFFIX)).read_bytes() == original_bytes
    listing = sorted(p.name for p in libs_copy.iterdir())
    assert "already uses OpenBLAS" in link(libs_copy, openblas)
    assert sorted(p.name for p in libs_copy.iterdir()) == listing

    assert "again" in restore(libs_copy)
    assert not blas.is_symlink() and blas.read_bytes() == original_bytes
    assert not (libs_copy / (blas.name + ORIGINAL_SUFFIX)).exists()
    assert "already uses the wheel's own" in restore(libs_copy)


def test_mlx_linked_to_openblas_computes_what_numpy_does(libs_copy: Path, openblas: Path, tmp_path: Path) -> None:
    """A copy of the mlx package beside the linked libs is imported first, in a fresh process."""
    import mlx

    shutil.copytree(Path(mlx.__path__[0]), tmp_path / "mlx", symlinks=True)
    link(libs_copy, openblas)
    probe = ("import numpy as np, mlx.core as mx, backends.mlx_blas as b; "
             "a = np.random.default_rng(1).standard_normal((64, 300)).astype(np.float32); "
             "got = np.array(mx.array(a) @ mx.array(a.T)); want = a.astype(np.float64) @ a.T.astype(np.float64); "
             "assert mx.__file__.startswith(%r), mx.__file__; "
             "print(b.blas_state(b.mlx_libs_dir()).kind, float(np.abs(got - want).max() / np.abs(want).max()))")
    out = subprocess.run([sys.executable, "-c", probe % str(tmp_path)], capture_output=True, text=True,
                         env={"PYTHONPATH": f"{tmp_path}:{Path.cwd()}", "PATH": "/usr/bin:/bin"}, check=True)
    kind, err = out.stdout.split()
    assert kind == "openblas" and float(err) < 1e-5


def test_status_names_the_blas(libs_copy: Path, openblas: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--libs", str(libs_copy)]) == 0
    assert "reference netlib" in capsys.readouterr().out
    assert main(["link", "--libs", str(libs_copy)]) == 0
    assert main(["status", "--libs", str(libs_copy)]) == 0
    assert "OpenBLAS" in capsys.readouterr().out.splitlines()[-1]
