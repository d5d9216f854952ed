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
echo "ragweld-tui installed in .venv ($(.venv/bin/python --version))"
