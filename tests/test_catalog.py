"""The model catalog: embedded defaults, known Qwen3 models, and what a local Hugging Face cache holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from backends.catalog import model_catalog, model_ids, scan_hub_cache
from backends.settings import EMBEDDED_CHAT, EMBEDDED_RERANKER
from tests.hf_layouts import RERANKER_ID, REAL_CONFIG, write_snapshot_files
from tests.trainers.run_helpers import REPO

QUANTIZED = "mlx-community/Qwen3-1.7B-4bit"
UNKNOWN = "someone/tiny-qwen3-chat-test"


@pytest.fixture
def hub(tmp_path: Path) -> Path:
    """A hub cache with the 0.6B reranker, a 4-bit MLX conversion and a model the catalog does not know
    (configs only: the catalog reads config.json, never weights)."""
    cache = tmp_path / "hub"
    write_snapshot_files(cache, RERANKER_ID, {"config.json": json.dumps(REAL_CONFIG).encode(),
                                              "model.safetensors": b"\0" * 64})
    quantized = REAL_CONFIG | {"hidden_size": 2048, "quantization": {"group_size": 64, "bits": 4}}
    write_snapshot_files(cache, QUANTIZED, {"config.json": json.dumps(quantized).encode()})
    write_snapshot_files(cache, UNKNOWN, {"config.json": json.dumps(REAL_CONFIG | {"num_hidden_layers": 2}).encode()})
    return cache


def test_catalog_lists_embedded_known_and_cached_models(hub: Path) -> None:
    entries, warnings = model_catalog(hub, configured=["/some/local/folder"])
    by_id = {e.id: e for e in entries}
    assert warnings == []
    assert by_id[EMBEDDED_RERANKER].kind == "reranker" and by_id[EMBEDDED_CHAT].kind == "chat"
    assert by_id[EMBEDDED_RERANKER].cached and set(by_id[EMBEDDED_RERANKER].backends) == {"torch", "mlx"}
    reranker = by_id[RERANKER_ID]
    assert (reranker.params, reranker.layers, reranker.hidden) == ("0.6B", 28, 1024)
    assert reranker.cached and reranker.path and Path(reranker.path, "config.json").is_file()
    assert not by_id["Qwen/Qwen3-Reranker-8B"].cached and by_id["Qwen/Qwen3-Reranker-8B"].hidden == 4096
    assert by_id[QUANTIZED].cached and by_id[QUANTIZED].backends == ("mlx",)
    assert by_id["Qwen/Qwen3-8B"].fits and "torch/cuda/bfloat16" in {str(f) for f in by_id["Qwen/Qwen3-8B"].fits}
    unknown = by_id[UNKNOWN]
    assert (unknown.source, unknown.kind, unknown.layers, unknown.cached) == ("cache", "chat", 2, True)
    assert by_id["/some/local/folder"].source == "config"
    assert [e.id for e in entries].count(RERANKER_ID) == 1


def test_ids_by_kind_put_available_models_first(hub: Path) -> None:
    entries, _ = model_catalog(hub)
    rerankers = model_ids(entries, "reranker")
    assert rerankers[:2] == [EMBEDDED_RERANKER, RERANKER_ID]
    assert "Qwen/Qwen3-1.7B" not in rerankers and "Qwen/Qwen3-Reranker-4B" in rerankers
    assert "Qwen/Qwen3-1.7B" in model_ids(entries, "chat")


def test_missing_cache_is_empty_and_a_corrupt_one_is_a_warning(tmp_path: Path) -> None:
    assert scan_hub_cache(tmp_path / "absent").entries == ()
    entries, warnings = model_catalog(tmp_path / "absent")
    assert warnings == [] and EMBEDDED_RERANKER in {e.id for e in entries}
    broken = tmp_path / "broken"
    (broken / "models--a--b").mkdir(parents=True)  # no snapshots folder
    entries, warnings = model_catalog(broken)
    assert len(warnings) == 1 and "models--a--b" in warnings[0]
    assert RERANKER_ID in {e.id for e in entries}


def test_models_command_json_and_table(hub: Path) -> None:
    env = {**os.environ, "HF_HUB_CACHE": str(hub)}
    proc = subprocess.run([sys.executable, "-m", "ragweld_tui.cli", "models", "--json"], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=120)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    out = json.loads(proc.stdout)
    assert out["hub_cache"] == str(hub) and out["configured"] == EMBEDDED_RERANKER and out["warnings"] == []
    models = {m["id"]: m for m in out["models"]}
    assert models[RERANKER_ID]["cached"] and models[RERANKER_ID]["backends"] == ["mlx", "torch"]
    assert models[QUANTIZED]["quantization"] == "4-bit" and models[UNKNOWN]["source"] == "cache"
    proc = subprocess.run([sys.executable, "-m", "ragweld_tui.cli", "models", "--kind", "reranker", "--cached"],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert any(line.startswith("*" + EMBEDDED_RERANKER) for line in lines)
    assert any(RERANKER_ID in line and "cached" in line for line in lines)
    assert not any("Reranker-8B" in line or QUANTIZED in line for line in lines)


def test_models_command_warns_in_one_line_on_a_corrupt_cache(tmp_path: Path) -> None:
    (tmp_path / "models--a--b").mkdir()
    proc = subprocess.run([sys.executable, "-m", "ragweld_tui.cli", "models"], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_CACHE": str(tmp_path)}, cwd=REPO, timeout=120)
    assert proc.returncode == 0 and EMBEDDED_RERANKER in proc.stdout
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("warning: ")
