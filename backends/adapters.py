"""LoRA adapters on disk: mlx-lm and PEFT formats, conversion between them, and the manifest.

In memory an adapter is framework-neutral numpy: for each target module (named as in the Hugging
Face model, e.g. `model.layers.3.self_attn.q_proj`) A with shape (r, in) and B with shape (out, r),
so that W' = W + scale·B·A. mlx-lm stores lora_a = Aᵀ and lora_b = Bᵀ with `scale`; PEFT stores A
and B with `lora_alpha` = scale·r. The manifest is written last and lists the sha256 of every
file, so a reader can tell a complete adapter from one still being written.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

MLX_WEIGHTS, PEFT_WEIGHTS, ADAPTER_CONFIG, MANIFEST = (
    "adapters.safetensors", "adapter_model.safetensors", "adapter_config.json", "manifest.json")
PEFT_PREFIX = "base_model.model."
MANIFEST_VERSION = 1


class AdapterError(ValueError):
    """An adapter folder that is incomplete, corrupt or incompatible with the loaded base."""


@dataclass
class LoraWeights:
    """Framework-neutral LoRA tensors: module name -> (A (r, in), B (out, r)), float32."""

    modules: dict[str, tuple[np.ndarray, np.ndarray]]
    scale: float
    rank: int
    dropout: float = 0.0

    def delta(self, module: str) -> NDArray[np.float32]:
        a, b = self.modules[module]
        delta: NDArray[np.float32] = (self.scale * (b @ a)).astype(np.float32)
        return delta

    def target_keys(self) -> list[str]:
        """Module suffixes like `self_attn.q_proj`, as mlx-lm's `keys` and PEFT's target_modules."""
        return sorted({name.split(".", 3)[3] for name in self.modules if name.startswith("model.layers.")})

    def layer_indices(self) -> list[int]:
        return sorted({int(name.split(".")[2]) for name in self.modules if name.startswith("model.layers.")})


@dataclass
class Manifest:
    """What an adapter was trained from and the hash of every file beside it."""

    base_model: str
    base_fingerprint: str
    template_fingerprint: str
    backend: str
    files: dict[str, str]
    dataset_fingerprint: str = ""
    kind: str = "reranker"
    run_id: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    # How the adapter was trained ("": not recorded, e.g. an adapter from before these fields).
    precision: str = ""
    gradient_checkpointing: bool = False
    version: int = MANIFEST_VERSION

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2, sort_keys=True)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data
    except FileNotFoundError:
        raise AdapterError(f"{path}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AdapterError(f"{path}: not valid JSON ({exc})") from None


def _load_tensors(path: Path) -> dict[str, np.ndarray]:
    """A safetensors file's tensors, or AdapterError when it is truncated or not safetensors at all."""
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except Exception as exc:  # SafetensorError, OSError: a damaged file is the user's problem to see
        raise AdapterError(f"{path}: not a readable safetensors file ({exc})") from None


def _checked(folder: Path, pairs: dict[str, dict[str, np.ndarray]], a: str, b: str, rank: int,
             scale: float, dropout: float, transpose: bool) -> LoraWeights:
    """LoraWeights (A (r, in), B (out, r)) after checking every module has both halves of the config's rank.

    An adapter whose config rank disagrees with its tensors would silently change scores (alpha / r).
    """
    modules = {}
    for name, parts in sorted(pairs.items()):
        if a not in parts or b not in parts:
            raise AdapterError(f"{folder}: module {name} lacks {a if a not in parts else b}")
        lo_a, lo_b = (parts[a].T.copy(), parts[b].T.copy()) if transpose else (parts[a], parts[b])
        if lo_a.ndim != 2 or lo_b.ndim != 2 or lo_a.shape[0] != rank or lo_b.shape[1] != rank:
            raise AdapterError(f"{folder / ADAPTER_CONFIG}: rank {rank} does not match the tensors of {name} "
                               f"({a} {tuple(parts[a].shape)}, {b} {tuple(parts[b].shape)})")
        modules[name] = (lo_a, lo_b)
    if not modules:
        raise AdapterError(f"{folder}: the adapter has no LoRA tensors")
    return LoraWeights(modules, scale, rank, dropout)


# PEFT LoraConfig options (peft 0.21) that change nothing once the adapter is trained, or whose effect
# the tensors themselves carry (which modules and layers have LoRA): any value is fine.
PEFT_HARMLESS = frozenset({
    "task_type", "peft_type", "peft_version", "base_model_name_or_path", "revision", "inference_mode",
    "target_modules", "exclude_modules", "layers_to_transform", "layers_pattern", "r", "lora_alpha",
    "lora_dropout", "use_rslora", "auto_mapping", "megatron_config", "megatron_core", "runtime_config",
    "ensure_weight_tying", "qalora_group_size", "init_lora_weights", "eva_config",
})
# Options that change the served function unless they hold PEFT's default (listed so the error is
# precise; any other unknown option with a value other than null/false/empty is refused too).
PEFT_MUST_BE_DEFAULT: dict[str, object] = {
    "use_dora": False, "rank_pattern": {}, "alpha_pattern": {}, "modules_to_save": None, "bias": "none",
    "fan_in_fan_out": False, "layer_replication": None, "lora_bias": False, "use_qalora": False,
    "trainable_token_indices": None, "target_parameters": None, "loftq_config": {}, "corda_config": None,
    "lora_ga_config": None, "alora_invocation_tokens": None, "velora_config": None, "monteclora_config": None,
    "arrow_config": None, "kasa_config": None, "use_bdlora": None,
}
# init_lora_weights values after which the adapter only works on a modified (residual/quantized) base.
PEFT_BASE_CHANGING_INITS = ("olora", "pissa", "corda", "loftq", "lora_ga", "lora-ga")


def _is_default(value: object, default: object) -> bool:
    if default in (None, {}, []):
        return value in (None, {}, [], "")  # PEFT writes null and {} interchangeably for "none"
    return value == default


def check_peft_options(config: dict[str, Any], where: Path) -> None:
    """Refuse a PEFT config with any option this scorer would not reproduce (DoRA, per-module ranks,
    saved full modules, biases, ...): serving it as plain LoRA would give wrong scores silently."""
    if config.get("peft_type", "LORA") != "LORA":
        raise AdapterError(f"{where}: peft_type {config.get('peft_type')} is not supported (only LORA)")
    init = config.get("init_lora_weights", True)
    if isinstance(init, str) and init.lower().startswith(PEFT_BASE_CHANGING_INITS):
        raise AdapterError(f"{where}: init_lora_weights {init!r} is not supported (the adapter needs a modified "
                           "base model; convert it to a plain LoRA with PEFT first)")
    for key, value in config.items():
        if key in PEFT_HARMLESS or key.startswith("megatron_"):
            continue
        default = PEFT_MUST_BE_DEFAULT.get(key, None)
        if key not in PEFT_MUST_BE_DEFAULT and value in (None, False, {}, [], ""):
            continue
        if not _is_default(value, default):
            shown = json.dumps(value)[:60]
            raise AdapterError(f"{where}: PEFT option {key} = {shown} is not supported "
                               f"(only plain LoRA; expected {json.dumps(default)})")


def check_mlx_options(config: dict[str, Any], where: Path) -> None:
    """Refuse an mlx-lm adapter that is not plain LoRA (DoRA, full fine-tuning)."""
    kind = config.get("fine_tune_type", "lora")
    if kind != "lora":
        raise AdapterError(f"{where}: fine_tune_type {kind!r} is not supported (only \"lora\")")
    if config.get("use_dora"):
        raise AdapterError(f"{where}: use_dora = true is not supported (only plain LoRA)")
    params = config.get("lora_parameters", {})
    if not isinstance(params, dict):
        raise AdapterError(f"{where}: lora_parameters is not an object")


def read_adapter(folder: Path) -> LoraWeights:
    """Load an mlx-lm or PEFT adapter folder into LoraWeights (safetensors only, never pickle)."""
    config = _read_json(folder / ADAPTER_CONFIG)
    if (folder / MLX_WEIGHTS).is_file():
        check_mlx_options(config, folder / ADAPTER_CONFIG)
        params = config.get("lora_parameters", {})
        try:
            rank, scale = int(params.get("rank", 8)), float(params.get("scale", 20.0))
        except (TypeError, ValueError):
            raise AdapterError(f"{folder / ADAPTER_CONFIG}: lora_parameters rank/scale are not numbers") from None
        tensors = _load_tensors(folder / MLX_WEIGHTS)
        pairs: dict[str, dict[str, np.ndarray]] = {}
        for key, value in tensors.items():
            module, _, part = key.rpartition(".")
            if part not in ("lora_a", "lora_b"):
                raise AdapterError(f"{folder / MLX_WEIGHTS}: unexpected tensor {key} (only LoRA is supported)")
            pairs.setdefault(module, {})[part] = value.astype(np.float32)
        return _checked(folder, pairs, "lora_a", "lora_b", rank, scale, float(params.get("dropout", 0.0)), True)
    if (folder / PEFT_WEIGHTS).is_file():
        check_peft_options(config, folder / ADAPTER_CONFIG)
        try:
            rank, alpha = int(config["r"]), float(config["lora_alpha"])
            scale = alpha / (rank ** 0.5) if config.get("use_rslora") else alpha / rank
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            raise AdapterError(f"{folder / ADAPTER_CONFIG}: needs a positive integer r and a number lora_alpha") from None
        tensors = _load_tensors(folder / PEFT_WEIGHTS)
        pairs = {}
        for key, value in tensors.items():
            name = key.removeprefix(PEFT_PREFIX)
            module, _, part = name.removesuffix(".weight").rpartition(".")
            if part not in ("lora_A", "lora_B") or not name.endswith(".weight"):
                # lora_embedding_A, lora_magnitude_vector, a saved bias or head: served wrong if skipped
                raise AdapterError(f"{folder / PEFT_WEIGHTS}: unexpected tensor {key} (only LoRA on linear layers is supported)")
            pairs.setdefault(module, {})[part] = value.astype(np.float32)
        return _checked(folder, pairs, "lora_A", "lora_B", rank, scale, float(config.get("lora_dropout", 0.0)), False)
    raise AdapterError(f"{folder}: no {MLX_WEIGHTS} or {PEFT_WEIGHTS}")


def write_mlx_adapter(folder: Path, lora: LoraWeights, num_layers: int) -> None:
    """Write mlx-lm's `adapters.safetensors` + `adapter_config.json`."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for module, (a, b) in sorted(lora.modules.items()):
        tensors[f"{module}.lora_a"] = np.ascontiguousarray(a.T, dtype=np.float32)
        tensors[f"{module}.lora_b"] = np.ascontiguousarray(b.T, dtype=np.float32)
    save_file(tensors, str(folder / MLX_WEIGHTS))
    config = {
        "fine_tune_type": "lora",
        "num_layers": num_layers,
        "lora_parameters": {"rank": lora.rank, "scale": lora.scale, "dropout": lora.dropout, "keys": lora.target_keys()},
    }
    (folder / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True))


def write_peft_adapter(folder: Path, lora: LoraWeights, base_model: str) -> None:
    """Write PEFT's `adapter_model.safetensors` + `adapter_config.json`."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for module, (a, b) in sorted(lora.modules.items()):
        tensors[f"{PEFT_PREFIX}{module}.lora_A.weight"] = np.ascontiguousarray(a, dtype=np.float32)
        tensors[f"{PEFT_PREFIX}{module}.lora_B.weight"] = np.ascontiguousarray(b, dtype=np.float32)
    save_file(tensors, str(folder / PEFT_WEIGHTS), metadata={"format": "pt"})
    config = {
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": lora.rank, "lora_alpha": lora.scale * lora.rank,
        "lora_dropout": lora.dropout, "target_modules": sorted({k.rsplit(".", 1)[-1] for k in lora.target_keys()}),
        "layers_to_transform": lora.layer_indices(), "base_model_name_or_path": base_model, "bias": "none",
        "use_rslora": False, "fan_in_fan_out": False, "inference_mode": True,
    }
    (folder / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True))


def write_manifest(folder: Path, manifest: Manifest) -> None:
    """Hash every file in the folder into the manifest, then write it last (fsync'd, atomic)."""
    manifest.files = {p.name: sha256_file(p) for p in sorted(folder.iterdir()) if p.is_file() and p.name != MANIFEST}
    tmp = folder / f".{MANIFEST}.tmp"
    with tmp.open("w", encoding="utf-8") as handle:
        handle.write(manifest.to_json())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, folder / MANIFEST)


def manifest_fingerprint(folder: Path) -> str | None:
    """sha256 of manifest.json's bytes, or None when there is no manifest (no adapter yet)."""
    try:
        return hashlib.sha256((folder / MANIFEST).read_bytes()).hexdigest()
    except (FileNotFoundError, NotADirectoryError):
        return None


def read_manifest(folder: Path) -> Manifest:
    """Parse the manifest alone (no file hashes checked: `verify_adapter` does that)."""
    data = _read_json(folder / MANIFEST)
    try:
        manifest = Manifest(**data)
    except TypeError as exc:
        raise AdapterError(f"{folder / MANIFEST}: unexpected fields ({exc})") from None
    if manifest.version > MANIFEST_VERSION:
        raise AdapterError(f"{folder / MANIFEST}: version {manifest.version} is newer than this program")
    return manifest


def verify_adapter(folder: Path) -> Manifest:
    """Read the manifest and check every listed file's hash; raise AdapterError if anything is off."""
    manifest = read_manifest(folder)
    for name, expected in manifest.files.items():
        path = folder / name
        if not path.is_file():
            raise AdapterError(f"{path}: listed in the manifest but missing")
        if sha256_file(path) != expected:
            raise AdapterError(f"{path}: sha256 does not match the manifest (partly written?)")
    return manifest


def check_compatible(manifest: Manifest, base_fingerprint: str, template_fingerprint: str, where: Path) -> None:
    """Refuse an adapter trained on another base model or with another prompt template."""
    if manifest.base_fingerprint != base_fingerprint:
        raise AdapterError(
            f"{where}: adapter was trained on base {manifest.base_model} (fingerprint {manifest.base_fingerprint}), "
            f"not on the loaded base (fingerprint {base_fingerprint})")
    if manifest.template_fingerprint != template_fingerprint:
        raise AdapterError(
            f"{where}: adapter was trained with prompt template {manifest.template_fingerprint}, "
            f"the scorer uses {template_fingerprint}")
