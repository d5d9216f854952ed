"""Writing a run's adapter folder: the backend's native files, then the manifest last, swapped in whole.

Shared by every run kind: the reranker and the agent differ only in the kind and the template
fingerprint they record, which is what the promotion gate and the serving side check.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from backends.adapters import LoraWeights, Manifest, write_manifest, write_mlx_adapter, write_peft_adapter
from trainers.durable import fsync_dir, fsync_tree
from trainers.faults import fault_point
from trainers.settings import LoraConfig


def lora_num_layers(model_dir: Path, lora: LoraConfig) -> int:
    """How many (last) layers carry LoRA, as mlx-lm's adapter_config `num_layers` wants it."""
    total = json.loads((model_dir / "config.json").read_text())["num_hidden_layers"]
    return total if lora.num_layers == -1 else lora.num_layers


def write_adapter_folder(folder: Path, lora: LoraWeights, *, backend: str, num_layers: int, base_model: str,
                         base_fingerprint: str, template_fingerprint: str, dataset_fingerprint: str, kind: str,
                         run_id: str, metrics: dict[str, float], precision: str,
                         gradient_checkpointing: bool) -> None:
    """Write the adapter in its backend's native format, then the manifest last, replacing `folder`."""
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if backend == "mlx":
        write_mlx_adapter(tmp, lora, num_layers)
    else:
        write_peft_adapter(tmp, lora, base_model)
    finite = {k: float(v) for k, v in metrics.items() if np.isfinite(v)}
    write_manifest(tmp, Manifest(base_model=base_model, base_fingerprint=base_fingerprint,
                                 template_fingerprint=template_fingerprint, backend=backend, files={},
                                 dataset_fingerprint=dataset_fingerprint, kind=kind, run_id=run_id, metrics=finite,
                                 precision=precision, gradient_checkpointing=gradient_checkpointing))
    old = folder.with_name(f".{folder.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    fsync_tree(tmp)
    if folder.exists():
        folder.rename(old)
    fault_point("adapter.between_renames")
    tmp.rename(folder)
    fsync_dir(folder.parent)
    shutil.rmtree(old, ignore_errors=True)
