"""Quantized copies of tiny test models, made with mlx-lm's own utilities (as mlx-community does)."""

from __future__ import annotations

import shutil
from pathlib import Path


def quantize_copy(src: Path, dest: Path, bits: int, group_size: int = 64) -> Path:
    """Write `src` quantized to `bits` into `dest`, with its tokenizer files; returns `dest`."""
    from mlx_lm.utils import load_model, quantize_model, save_config, save_model

    model, config = load_model(src)
    model, config = quantize_model(model, config, group_size=group_size, bits=bits)
    dest.mkdir(parents=True)
    save_model(dest, model)
    save_config(config, dest / "config.json")
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        shutil.copy(src / name, dest / name)
    return dest
