"""LoRA settings checked against the base model's files before a run exists.

The engines find the target modules only when they load the model, after the run was created; a
typo in `[lora].target_modules` or `num_layers = 0` would leave a failed run behind. The weight
names in the safetensors headers answer the same question without loading anything.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from trainers.settings import LoraConfig
from trainers.engine_base import layers_to_train, matches_target

_LAYER_WEIGHT = re.compile(r"^(?:model\.)?(?:language_model\.)?(?:model\.)?layers\.\d+\.(.+)\.weight$")


def layer_modules(model_dir: Path) -> set[str]:
    """Module paths inside a decoder layer that carry a weight (`self_attn.q_proj`, `mlp.down_proj`)."""
    from safetensors import safe_open

    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        names = list(json.loads(index.read_text())["weight_map"])
    else:
        names = []
        for path in sorted(model_dir.glob("*.safetensors")):
            with safe_open(str(path), framework="numpy") as handle:
                names += list(handle.keys())
    return {m.group(1) for name in names if (m := _LAYER_WEIGHT.match(name))}


def check_lora(model_dir: Path, lora: LoraConfig) -> None:
    """ValueError naming the setting when `num_layers` or a target module cannot work with this model."""
    total = json.loads((model_dir / "config.json").read_text())["num_hidden_layers"]
    layers_to_train(lora.num_layers, total)
    modules = layer_modules(model_dir)
    if not modules:
        return  # a layout we cannot read from the headers: the engine checks when it loads
    missing = [t for t in lora.target_modules if not any(matches_target(m, [t]) for m in modules)]
    if missing:
        known = sorted({m.rsplit(".", 1)[-1] for m in modules if m.endswith("_proj")})
        raise ValueError(f"[lora].target_modules: {', '.join(map(repr, missing))} match no linear layer of "
                         f"{model_dir} (its layers have {', '.join(known)})")
