"""Real Hugging Face layouts, offline: a hub cache folder holding `Qwen/Qwen3-Reranker-0.6B`'s file names.

`write_hub_cache(tmp / "hub")` builds what `hf download Qwen/Qwen3-Reranker-0.6B` leaves behind:
`models--Qwen--Qwen3-Reranker-0.6B/` with `refs/main` naming a 40-hex commit, `snapshots/<commit>/` whose
files are relative symlinks into `blobs/` (named by the sha256 of LFS files and the git blob sha1 of
the others, as the real cache names them). Point `HF_HUB_CACHE` at the folder and set
`HF_HUB_OFFLINE=1`, and the hub id resolves with no network.

The model is `Qwen3-Reranker-0.6B`'s architecture at the real widths (hidden 1024, intermediate 3072,
16 heads, 8 key/value heads, head_dim 128, rope theta 1e6, RMS eps 1e-6, tied embeddings) with random
weights and two shortcuts for test speed, both said in `config.json` itself:
- depth: `num_hidden_layers` 1 (the real model has 28);
- vocabulary: the embedded model's Qwen BPE (`backends.embedded`: the first 16,384 Qwen ranks at their
  real ids, `yes`=9693 and `no`=2152 included, then the 26 Qwen3 special tokens; 16,410 ids) instead of
  151,669, so the embedding is 67 MB instead of 621 MB; the special-token ids in the configs follow it.
The weights are split into `model-0000K-of-0000N.safetensors` shards with `model.safetensors.index.json`
(as the larger Qwen3 checkpoints ship; the real 0.6B reranker has one `model.safetensors`, which
`shards=1` writes), so both loaders' shard handling is exercised.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

RERANKER_ID = "Qwen/Qwen3-Reranker-0.6B"
COMMIT = "f16fc5d5d2b9b1d0db8280929242745d79794ef5"  # any 40-hex revision; the cache only needs the shape

# Qwen3-Reranker-0.6B's config.json, except the depth and the vocabulary size (see the module docstring).
REAL_CONFIG: dict[str, object] = {
    "architectures": ["Qwen3ForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "head_dim": 128,
    "hidden_act": "silu",
    "hidden_size": 1024,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "max_position_embeddings": 40960,
    "max_window_layers": 28,
    "model_type": "qwen3",
    "num_attention_heads": 16,
    "num_hidden_layers": 28,
    "num_key_value_heads": 8,
    "rms_norm_eps": 1e-06,
    "rope_scaling": None,
    "rope_theta": 1000000,
    "sliding_window": None,
    "tie_word_embeddings": True,
    "torch_dtype": "float32",
    "transformers_version": "4.51.0",
    "use_cache": True,
    "use_sliding_window": False,
    "vocab_size": 151669,
}


def repo_folder(cache: Path, repo_id: str) -> Path:
    """The cache folder of a model repository (`models--Owner--Name`)."""
    return cache / ("models--" + repo_id.replace("/", "--"))


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def write_snapshot_files(cache: Path, repo_id: str, files: dict[str, bytes | Callable[[Path], None]],
                         commit: str = COMMIT) -> Path:
    """Write `files` into `repo_id`'s cache entry as the hub client does; returns the snapshot folder.

    A value is the file's bytes, or a function writing the file to the path it is given (large
    weights go straight to disk). Safetensors files are LFS blobs, named by their sha256.
    """
    repo = repo_folder(cache, repo_id)
    blobs, snapshot = repo / "blobs", repo / "snapshots" / commit
    blobs.mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        staged = blobs / f".{name}.incomplete"
        if callable(content):
            content(staged)
        else:
            staged.write_bytes(content)
        data = staged.read_bytes()
        blob = hashlib.sha256(data).hexdigest() if name.endswith(".safetensors") else _git_blob_sha1(data)
        os.replace(staged, blobs / blob)
        link = snapshot / name
        link.unlink(missing_ok=True)
        link.symlink_to(os.path.relpath(blobs / blob, link.parent))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)  # the hub client writes the hash without a newline
    return snapshot


def _tokenizer_files(tokenizer_json: str) -> dict[str, bytes]:
    """tokenizer.json plus the slow tokenizer's vocab.json and merges.txt derived from it."""
    model = json.loads(tokenizer_json)["model"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    return {"tokenizer.json": tokenizer_json.encode(),
            "vocab.json": json.dumps(model["vocab"], ensure_ascii=False).encode(),
            "merges.txt": ("#version: 0.2\n" + "\n".join(merges) + "\n").encode()}


def write_qwen3_reranker_cache(cache: Path, layers: int = 1, shards: int = 2, seed: int = 0,
                               repo_id: str = RERANKER_ID) -> Path:
    """Build `repo_id` (by default Qwen3-Reranker-0.6B's layout) in the hub cache `cache`; returns the snapshot."""
    from safetensors.numpy import save_file

    from backends.embedded import QWEN3_CHAT_TEMPLATE, TinyQwen3Spec, build_tokenizer_json, make_weights

    tokenizer_json, vocab_size = build_tokenizer_json()
    special = {t["content"]: t["id"] for t in json.loads(tokenizer_json)["added_tokens"]}
    end_of_text, im_end = special["<|endoftext|>"], special["<|im_end|>"]  # 151643 and 151645 in Qwen3
    config = REAL_CONFIG | {"num_hidden_layers": layers, "max_window_layers": layers, "vocab_size": vocab_size,
                            "bos_token_id": end_of_text, "eos_token_id": im_end}
    spec = TinyQwen3Spec(hidden_size=1024, intermediate_size=3072, num_hidden_layers=layers, num_attention_heads=16,
                         num_key_value_heads=8, head_dim=128, seed=seed, init_std=0.02, embed_std=0.02)
    weights = make_weights(spec, vocab_size)
    names = sorted(weights)
    groups = [names[i::shards] for i in range(shards)] if shards > 1 else [names]
    files: dict[str, bytes | Callable[[Path], None]] = {}
    weight_map: dict[str, str] = {}
    for k, group in enumerate(groups, 1):
        shard = "model.safetensors" if shards == 1 else f"model-{k:05d}-of-{shards:05d}.safetensors"
        part = {n: weights[n] for n in sorted(group)}
        files[shard] = lambda path, part=part: save_file(part, str(path), metadata={"format": "pt"})
        weight_map |= {n: shard for n in group}
    if shards > 1:
        total = sum(int(np.asarray(w).nbytes) for w in weights.values())
        index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
        files["model.safetensors.index.json"] = json.dumps(index, indent=2).encode()
    tokenizer_config = {"tokenizer_class": "Qwen2Tokenizer", "model_max_length": 131072, "eos_token": "<|im_end|>",
                        "pad_token": "<|endoftext|>", "bos_token": None, "unk_token": None, "add_prefix_space": False,
                        "clean_up_tokenization_spaces": False, "errors": "replace", "split_special_tokens": False,
                        "chat_template": QWEN3_CHAT_TEMPLATE}
    generation = {"bos_token_id": end_of_text, "eos_token_id": [im_end, end_of_text], "pad_token_id": end_of_text,
                  "do_sample": True, "temperature": 0.6, "top_k": 20, "top_p": 0.95, "transformers_version": "4.51.0"}
    files |= {"config.json": json.dumps(config, indent=2, sort_keys=True).encode(),
              "generation_config.json": json.dumps(generation, indent=2).encode(),
              "tokenizer_config.json": json.dumps(tokenizer_config, indent=2).encode(),
              **_tokenizer_files(tokenizer_json),
              "README.md": b"---\nlicense: apache-2.0\n---\n# Qwen3-Reranker-0.6B (test layout, random weights)\n",
              "LICENSE": b"Apache License 2.0\n",
              ".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"}
    return write_snapshot_files(cache, repo_id, files)
