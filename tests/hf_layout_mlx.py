"""A Hugging Face cache holding an mlx-community 4-bit Qwen3 reranker conversion, built offline.

`build_mlx_community_reranker_cache(hf_home)` writes what `hf download
mlx-community/Qwen3-Reranker-0.6B-4bit` leaves on disk:

    <hf_home>/hub/models--mlx-community--Qwen3-Reranker-0.6B-4bit/
        refs/main                        the snapshot's commit hash
        blobs/<sha256>                   each file's bytes, named by content hash
        snapshots/<40 hex>/<file>        symlinks into blobs/

with the files of an mlx-lm conversion (`mlx_lm.convert --quantize`, as mlx-community makes them):
config.json (with mlx-lm's `quantization` block {"group_size": 64, "bits": 4} and its copy
`quantization_config`), model.safetensors (U32 packed weights, bf16 scales and biases, metadata
format "mlx") with model.safetensors.index.json (mlx-lm always writes the index, even for one
shard), tokenizer.json, tokenizer_config.json, vocab.json, merges.txt, special_tokens_map.json,
added_tokens.json and generation_config.json. The weights are random and quantized by mlx-lm's own
`quantize_model`, so the tensor names, dtypes and packing are the real ones.

What differs from the real repository, and why:
- 1 decoder layer (the real model has 28) and the Qwen3-0.6B widths otherwise (hidden 1024,
  intermediate 3072, 16 heads, 8 KV heads, head_dim 128): the layouts and quantization groups are
  the real ones while a test step stays a few seconds on a CPU.
- The vocabulary is the embedded tokenizer's (`backends/embedded.py`: Qwen's BPE cut to its first
  16,384 ranks, then the 26 Qwen3 specials, 16,410 in all) instead of 151,669: ids below 16,384
  (`yes` = 9693, `no` = 2152) are Qwen's own, the specials' ids are lower than in Qwen3 (e.g.
  `<|im_end|>` = 16,386, not 151,645), and config.json's token ids say so.
- Random weights; the commit hash is made up; no README.md or .gitattributes (nothing reads them).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

MLX_REPO_ID = "mlx-community/Qwen3-Reranker-0.6B-4bit"
MLX_REVISION = "0b6d5c8e2f1a4c3d9e7f8a1b2c3d4e5f6a7b8c9d"  # made up: any 40-hex commit works offline
MLX_GROUP_SIZE, MLX_BITS = 64, 4


def qwen3_06b_spec(num_layers: int = 1):
    """Qwen3-0.6B's widths with `num_layers` decoder layers (the real model has 28)."""
    from backends.embedded import TinyQwen3Spec

    return TinyQwen3Spec(hidden_size=1024, intermediate_size=3072, num_hidden_layers=num_layers,
                         num_attention_heads=16, num_key_value_heads=8, head_dim=128, seed=13,
                         init_std=0.02, embed_std=0.05)


def mlx_community_env(hf_home: Path) -> dict[str, str]:
    """The environment under which the hub id resolves to the built cache, with the hub offline."""
    return {"HF_HOME": str(hf_home), "HF_HUB_CACHE": str(hf_home / "hub"), "HF_HUB_OFFLINE": "1"}


def build_mlx_community_reranker_cache(hf_home: Path, num_layers: int = 1) -> Path:
    """Write the cache under `hf_home` (see the module docstring); returns the snapshot folder."""
    from backends.mlx_thread import mlx_worker

    with tempfile.TemporaryDirectory(prefix="mlx-community-") as work:
        files = Path(work) / "files"
        mlx_worker().call(_convert, Path(work) / "float", files, num_layers)
        return _into_cache(files, hf_home / "hub")


def _convert(float_dir: Path, dest: Path, num_layers: int) -> None:
    """Make a float Qwen3 with 0.6B widths, then convert it as `mlx_lm.convert -q` does."""
    import mlx.core as mx
    from mlx_lm.utils import load_model, quantize_model, save_config, save_model

    from backends.embedded import write_tiny_qwen3

    write_tiny_qwen3(float_dir, qwen3_06b_spec(num_layers))
    model, config = load_model(float_dir)
    model.set_dtype(mx.bfloat16)  # the real checkpoint is bf16; mlx-lm quantizes from its dtype
    model, config = quantize_model(model, config, group_size=MLX_GROUP_SIZE, bits=MLX_BITS)
    config["quantization"] = {"group_size": MLX_GROUP_SIZE, "bits": MLX_BITS}
    config["torch_dtype"] = "bfloat16"
    save_model(dest, model, donate_model=True)
    save_config(config, dest / "config.json")  # adds `quantization_config`, a copy of `quantization`
    shutil.copy(float_dir / "generation_config.json", dest / "generation_config.json")
    _write_tokenizer_files(float_dir, dest)


def _write_tokenizer_files(src: Path, dest: Path) -> None:
    """The tokenizer files a Qwen2 tokenizer's `save_pretrained` writes, from the embedded tokenizer."""
    tokenizer = json.loads((src / "tokenizer.json").read_text())
    shutil.copy(src / "tokenizer.json", dest / "tokenizer.json")
    added = {t["content"]: t["id"] for t in tokenizer["added_tokens"]}
    specials = [t["content"] for t in tokenizer["added_tokens"] if t["special"]]
    config = json.loads((src / "tokenizer_config.json").read_text())
    config["added_tokens_decoder"] = {str(t["id"]): {k: t[k] for k in ("content", "lstrip", "normalized", "rstrip",
                                                                       "single_word", "special")}
                                      for t in tokenizer["added_tokens"]}
    config["additional_special_tokens"] = [t for t in specials if t not in ("<|endoftext|>",)]
    (dest / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False))
    (dest / "vocab.json").write_text(json.dumps(tokenizer["model"]["vocab"], ensure_ascii=False))
    merges = tokenizer["model"]["merges"]
    lines = [" ".join(m) if isinstance(m, list) else m for m in merges]
    (dest / "merges.txt").write_text("#version: 0.2\n" + "\n".join(lines) + "\n")
    (dest / "added_tokens.json").write_text(json.dumps(added, indent=2, ensure_ascii=False))
    special_map = {"additional_special_tokens": config["additional_special_tokens"],
                   "eos_token": {"content": "<|im_end|>", "lstrip": False, "normalized": False, "rstrip": False,
                                 "single_word": False},
                   "pad_token": {"content": "<|endoftext|>", "lstrip": False, "normalized": False,
                                 "rstrip": False, "single_word": False}}
    (dest / "special_tokens_map.json").write_text(json.dumps(special_map, indent=2, ensure_ascii=False))


def _into_cache(files: Path, hub: Path) -> Path:
    """Move `files` into the hub cache layout: content-named blobs, a snapshot of symlinks, refs/main."""
    repo = hub / ("models--" + MLX_REPO_ID.replace("/", "--"))
    blobs, snapshot = repo / "blobs", repo / "snapshots" / MLX_REVISION
    blobs.mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for path in sorted(files.iterdir()):
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        blob = blobs / digest.hexdigest()
        shutil.move(str(path), blob)
        link = snapshot / path.name
        link.unlink(missing_ok=True)
        os.symlink(os.path.relpath(blob, snapshot), link)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(MLX_REVISION)
    return snapshot
