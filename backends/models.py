"""Resolve a model reference (embedded name, local folder or hub id) to a local folder, offline-first."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from backends.embedded import EMBEDDED_PREFIX, ensure_embedded


class ModelNotFoundError(FileNotFoundError):
    """The model is neither embedded, a local folder, nor in the local Hugging Face cache."""


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def resolve_model(ref: str) -> Path:
    """Return a folder holding config.json for `ref`; download only when the hub is allowed."""
    if ref.startswith(EMBEDDED_PREFIX):
        try:
            return ensure_embedded(ref[len(EMBEDDED_PREFIX):])
        except KeyError as exc:
            raise ModelNotFoundError(str(exc.args[0])) from None
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{path}: not a model folder (no config.json)")
        return path.resolve()
    if path.is_absolute() or ref.startswith((".", "~")) or ref.count("/") != 1:
        raise ModelNotFoundError(f"model folder {ref} does not exist")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - transformers depends on it
        raise ModelNotFoundError(f"model {ref} is not a local folder and huggingface_hub is missing") from None
    try:
        return Path(snapshot_download(ref, local_files_only=True))
    except Exception:
        pass
    how = (f"download it first with `hf download {ref}` on a machine with network, "
           "or set [model].base to a local folder")
    if _hub_offline():
        raise ModelNotFoundError(f"model {ref} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; {how}")
    try:
        return Path(snapshot_download(ref, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken"]))
    except Exception as exc:
        raise ModelNotFoundError(f"model {ref} could not be downloaded ({type(exc).__name__}); {how}") from None


def is_mlx_quantized(model_dir: Path) -> bool:
    """Whether the folder holds an MLX-quantized model (mlx-community's `quantization` block): only
    MLX can load, score and train it."""
    config = json.loads((model_dir / "config.json").read_text())
    return "quantization" in config


def base_fingerprint(model_dir: Path) -> str:
    """Identify a base model cheaply: its config plus the size and edges of each weight file.

    Hashing a multi-GB checkpoint on every scorer start would cost seconds; the config and the first
    and last MiB of each safetensors file (its header names every tensor) tell bases apart.
    """
    digest = hashlib.sha256()
    config = json.loads((model_dir / "config.json").read_text())
    digest.update(json.dumps(config, sort_keys=True).encode())
    for weights in sorted(model_dir.glob("*.safetensors")):
        size = weights.stat().st_size
        digest.update(f"{weights.name}:{size}".encode())
        with weights.open("rb") as handle:
            digest.update(handle.read(1 << 20))
            handle.seek(max(0, size - (1 << 20)))
            digest.update(handle.read(1 << 20))
    return digest.hexdigest()[:16]


def load_tokenizer(model_dir: Path, trust_remote_code: bool = False) -> Any:
    """The model folder's tokenizer (transformers is imported here, only when a model is loaded);
    a repository's own code runs only when the user set `trust_remote_code`."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=trust_remote_code)


def pad_token_id(tokenizer: Any) -> int:
    """The id rows are padded with: the tokenizer's pad token, else its end-of-sequence token, else 0.

    Rows are right-padded and only real positions are read (the causal mask keeps pads out of every
    real token's attention), so the value never changes a score or a loss.
    """
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    return 0
