#!/usr/bin/env bash
# GPU check for a CUDA machine, unattended, under 8 minutes: bf16 scoring pairs/s and MFU, training
# tokens/s and peak memory (fp32/bf16, gradient checkpointing off/on, 1 vs all GPUs) at Qwen3-0.6B sizes.
# Usage: bash bench/gpu_check.sh [OUT_FILE]   (default: $OUT/gpu_check.md, else ./gpu_check.md)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || command -v python3 )}"
OUT_FILE="${1:-${OUT:+$OUT/gpu_check.md}}"
OUT_FILE="${OUT_FILE:-gpu_check.md}"
if ! command -v nvidia-smi >/dev/null 2>&1 || ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: no CUDA device here; nothing measured (run it on a machine with NVIDIA GPUs)"
    exit 0
fi
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export RAGWELD_HOME="${RAGWELD_HOME:-$(mktemp -d)}"   # runs of the check never land in the user's store
exec timeout 470 "$PY" bench/gpu_check.py --out "$OUT_FILE" "${@:2}"
