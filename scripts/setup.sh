#!/usr/bin/env bash
# Create .venv and install ragweld-tui with everything its tests need. Safe to run again.
# torch is pinned first: on this Linux image `torch==2.13.0` is a local CPU wheel, while an
# unpinned `torch` would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==${RAGWELD_TORCH_VERSION:-2.13.0}"
.venv/bin/python -m pip install -q -e ".[dev]"
if ! command -v tmux >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  # The real-terminal smoke test drives the TUI in tmux.
  (apt-get install -y -qq tmux >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq tmux >/dev/null 2>&1; }) \
    || echo "note: tmux could not be installed; the tmux smoke test will be skipped" >&2
fi
if [ "$(uname -s)" = Linux ]; then
  # MLX's Linux wheel bundles the slow reference BLAS; point it (that one file, not the process) at
  # OpenBLAS. Undo: .venv/bin/python -m backends.mlx_blas restore. No apt: MLX stays correct, just slow.
  if ! ls /usr/lib/*-linux-gnu/openblas-pthread/libblas.so.3 >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    (apt-get install -y -qq libopenblas0-pthread >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq libopenblas0-pthread >/dev/null 2>&1; }) \
      || echo "note: libopenblas0-pthread could not be installed; MLX on CPU keeps its slow reference BLAS" >&2
  fi
  .venv/bin/python -m backends.mlx_blas link || echo "note: MLX keeps its reference BLAS" >&2
fi
echo "ragweld-tui installed in .venv ($(.venv/bin/python --version))"
