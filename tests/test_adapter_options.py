"""Adapters made elsewhere: plain-LoRA options load, anything we would serve wrong is refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from backends.adapters import (AdapterError, Manifest, read_adapter, write_manifest, write_mlx_adapter,
                               write_peft_adapter)
from backends.models import base_fingerprint
from backends.prompt import template_fingerprint
from backends.service import RerankService
from ragweld_tui.cli import main
from tests.serve.server_helpers import DOCS, QUERY, random_lora

# (option, value) -> PEFT would serve something else than W + scale·B·A
PEFT_BAD = [
    ("use_dora", True), ("rank_pattern", {"q_proj": 8}), ("alpha_pattern", {"q_proj": 16}),
    ("modules_to_save", ["score"]), ("bias", "lora_only"), ("bias", "all"), ("fan_in_fan_out", True),
    ("peft_type", "IA3"), ("layer_replication", [[0, 1]]), ("lora_bias", True), ("use_qalora", True),
    ("trainable_token_indices", [1, 2]), ("target_parameters", ["experts.gate_up_proj"]),
    ("loftq_config", {"loftq_bits": 4}), ("init_lora_weights", "pissa"), ("init_lora_weights", "olora"),
    ("alora_invocation_tokens", [1, 2]), ("some_future_option", 3), ("some_future_flag", True),
]
# Options real PEFT configs carry that change nothing at serving time.
PEFT_GOOD = [
    ("task_type", "CAUSAL_LM"), ("revision", "main"), ("inference_mode", False), ("init_lora_weights", True),
    ("init_lora_weights", "gaussian"), ("layers_pattern", None), ("lora_dropout", 0.1), ("auto_mapping", None),
    ("megatron_config", None), ("megatron_core", "megatron.core"), ("loftq_config", {}), ("eva_config", None),
    ("rank_pattern", {}), ("alpha_pattern", {}), ("modules_to_save", None), ("bias", "none"),
    ("use_dora", False), ("layer_replication", None), ("peft_version", "0.21.2"), ("exclude_modules", None),
    ("runtime_config", {"ephemeral_gpu_offload": False}), ("corda_config", None), ("some_future_option", None),
    ("target_modules", ["q_proj", "up_proj"]), ("qalora_group_size", 16), ("ensure_weight_tying", False),
]
MLX_BAD = [("fine_tune_type", "dora"), ("fine_tune_type", "full"), ("use_dora", True)]
MLX_GOOD = [("fine_tune_type", "lora"), ("use_dora", False), ("iters", 600), ("learning_rate", 1e-5),
            ("model", "mlx-community/Qwen3-Reranker-0.6B-bf16"), ("lr_schedule", None)]


def _adapter(folder: Path, fmt: str, key: str, value: object) -> Path:
    lora = random_lora(3)
    if fmt == "peft":
        write_peft_adapter(folder, lora, "base")
    else:
        write_mlx_adapter(folder, lora, 2)
    config = json.loads((folder / "adapter_config.json").read_text())
    config[key] = value
    (folder / "adapter_config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize(("fmt", "key", "value"), [("peft", k, v) for k, v in PEFT_BAD] + [("mlx", k, v) for k, v in MLX_BAD])
def test_unsupported_options_are_refused_by_name(tmp_path: Path, fmt: str, key: str, value: object) -> None:
    folder = _adapter(tmp_path / "a", fmt, key, value)
    with pytest.raises(AdapterError) as info:
        read_adapter(folder)
    message = str(info.value)
    assert key in message and "\n" not in message


@pytest.mark.parametrize(("fmt", "key", "value"), [("peft", k, v) for k, v in PEFT_GOOD] + [("mlx", k, v) for k, v in MLX_GOOD])
def test_harmless_options_still_load(tmp_path: Path, fmt: str, key: str, value: object) -> None:
    lora = read_adapter(_adapter(tmp_path / "a", fmt, key, value))
    expected = random_lora(3)
    assert lora.rank == expected.rank and lora.scale == pytest.approx(expected.scale)
    for name, (a, b) in expected.modules.items():
        np.testing.assert_array_equal(lora.modules[name][0], a)


def test_peft_tensors_other_than_lora_are_refused(tmp_path: Path) -> None:
    from safetensors.numpy import load_file, save_file

    folder = _adapter(tmp_path / "a", "peft", "task_type", "CAUSAL_LM")
    tensors = load_file(str(folder / "adapter_model.safetensors"))
    tensors["base_model.model.model.embed_tokens.lora_embedding_A"] = np.zeros((4, 16410), np.float32)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    with pytest.raises(AdapterError, match="lora_embedding_A"):
        read_adapter(folder)


def _with_manifest(folder: Path, model_dir: Path) -> Path:
    write_manifest(folder, Manifest(base_model=str(model_dir), base_fingerprint=base_fingerprint(model_dir),
                                    template_fingerprint=template_fingerprint(), backend="torch", files={}))
    return folder


def test_score_cli_refuses_a_dora_adapter_in_one_line(tmp_path: Path, tiny_model_dir: Path, capsys) -> None:
    folder = _with_manifest(_adapter(tmp_path / "dora", "peft", "use_dora", True), tiny_model_dir)
    code = main(["score", "--model", str(tiny_model_dir), "--backend", "torch", "--adapter", str(folder),
                 "-q", QUERY, "-d", DOCS[0]])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "use_dora" in err


async def test_hot_reload_keeps_serving_and_names_the_option(tmp_path: Path, tiny_model_dir: Path) -> None:
    from backends.scorer import ScorerSettings

    active = _with_manifest(_adapter(tmp_path / "active", "peft", "rank_pattern", {"q_proj": 8}), tiny_model_dir)
    service = RerankService(ScorerSettings(model=str(tiny_model_dir), backend="torch", max_length=256), active,
                            reload_check_s=0.0)
    try:
        response = await service.score(QUERY, DOCS)
        assert response.adapter_fingerprint is None  # still the base, not a wrongly served adapter
        error = service.last_adapter_error or ""
        assert "rank_pattern" in error and "\n" not in error
    finally:
        await service.close()
