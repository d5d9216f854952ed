"""A real hub id from a real cache layout, offline: `[model] base = "Qwen/Qwen3-Reranker-0.6B"` resolves
from a Hugging Face cache folder (refs, snapshots, blobs, sharded weights, the real file names), then
scores with the same numbers on PyTorch and MLX, trains a step on each, and exports each run's adapter
to the other backend's format (and, from PyTorch, a merged model), parity-checked through peft,
mlx_lm and transformers.

The model has the real widths and one layer (tests/hf_layouts.py): Linux's MLX CPU build runs it at
about 30 tokens/s, so the MLX legs score and train only a handful of short rows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hf_layouts import RERANKER_ID, repo_folder, write_qwen3_reranker_cache
from tests.trainers.run_helpers import REPO, store_runs

DOCS = ["Citation indexes link papers to the papers citing them.", "Bread needs flour and yeast."]


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("hf") / "hub"
    write_qwen3_reranker_cache(cache)
    return cache


def cli(hub_cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_CACHE": str(hub_cache), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HOME", None)
    return subprocess.run([sys.executable, "-m", "ragweld_tui.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300, cwd=REPO)


def write_run_config(folder: Path, backend: str) -> Path:
    """The smallest run that still trains, evaluates base and tuned, and promotes: 5 queries (1 dev), 1 step."""
    data = folder / "triplets.jsonl"
    topics = ["citation indexing", "bread baking", "river floods", "chess openings", "solar panels"]
    data.write_text("".join(json.dumps({"query": t, "positives": [f"All about {t}."],
                                        "negatives": ["Buy now and get a free gift!"]}) + "\n" for t in topics))
    config = folder / "config.toml"
    config.write_text("\n".join([
        "[model]", f'base = "{RERANKER_ID}"', f'backend = "{backend}"',
        "[store]", f'path = "{folder / "db.sqlite"}"', f'runs_root = "{folder / "runs"}"',
        "[serving]", f'active_adapter = "{folder / "active" / "reranker"}"',
        "[data]", f'path = "{data}"', "negative_ratio = 1",
        "[train]", "max_steps = 1", "eval_every = 1", "checkpoint_every = 1", "batch_size = 1", "group_size = 2",
        "max_length = 128", "warmup_steps = 0", "promote_epsilon = 0.0", "learning_rate = 0.001",
    ]) + "\n")
    return config


def test_the_cache_has_the_hub_layout(hub_cache: Path) -> None:
    repo = repo_folder(hub_cache, RERANKER_ID)
    commit = (repo / "refs" / "main").read_text()
    snapshot = repo / "snapshots" / commit
    names = {p.name for p in snapshot.iterdir()}
    assert {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "vocab.json",
            "merges.txt", "model.safetensors.index.json", "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors"} <= names
    assert all((snapshot / n).is_symlink() and (snapshot / n).resolve().parent == repo / "blobs" for n in names)
    config = json.loads((snapshot / "config.json").read_text())
    assert (config["hidden_size"], config["intermediate_size"], config["num_attention_heads"],
            config["num_key_value_heads"], config["head_dim"]) == (1024, 3072, 16, 8, 128)


def test_resolve_model_finds_the_hub_id_offline_and_names_hf_download_when_absent(hub_cache: Path) -> None:
    code = ("from backends.models import resolve_model, ModelNotFoundError\n"
            f"print(resolve_model({RERANKER_ID!r}))\n"
            "try:\n    resolve_model('Qwen/Qwen3-Reranker-4B')\n"
            "except ModelNotFoundError as exc:\n    print(exc)\n")
    env = {**os.environ, "HF_HUB_CACHE": str(hub_cache), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    found, missing = proc.stdout.splitlines()[:2]
    assert Path(found).parent == repo_folder(hub_cache, RERANKER_ID) / "snapshots"
    assert "hf download Qwen/Qwen3-Reranker-4B" in missing


def test_scores_match_on_torch_and_mlx(hub_cache: Path) -> None:
    logits = {}
    for backend in ("torch", "mlx"):
        proc = cli(hub_cache, "score", "-q", "citation indexing", *sum((["-d", d] for d in DOCS), []),
                   "--model", RERANKER_ID, "--backend", backend, "--dtype", "float32", "--no-adapter", "--json")
        assert proc.returncode == 0, proc.stderr  # fp32 pinned: a parity check, and `auto` may be bf16 on a CPU
        out = json.loads(proc.stdout)
        assert out["backend"] == backend and out["model"] == RERANKER_ID
        logits[backend] = {r["index"]: r["logit"] for r in out["results"]}
    assert logits["torch"].keys() == logits["mlx"].keys() == {0, 1}
    assert all(abs(logits["torch"][i] - logits["mlx"][i]) < 1e-4 for i in (0, 1)), logits


@pytest.mark.parametrize("backend", ["torch", "mlx"])
def test_trains_a_step_from_the_hub_id(hub_cache: Path, tmp_path: Path, backend: str) -> None:
    config = write_run_config(tmp_path, backend)
    proc = cli(hub_cache, "--run", str(config))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    [run] = store_runs(tmp_path / "db.sqlite")
    assert run.status == "completed" and run.backend == backend and run.base_model == RERANKER_ID
    # Trained on one backend, exported for the other (the Mac ⇄ Linux move); the source side of the parity
    # check is scored with PyTorch, which is quick at these widths. An mlx export is checked through mlx_lm.
    targets = ["mlx", "merged"] if backend == "torch" else ["peft"]
    for target in targets:
        out = tmp_path / f"export-{target}"
        proc = cli(hub_cache, "--config", str(config), "export", run.id, str(out), "--to", target, "--backend", "torch",
                   "--max-shard-size", "20MB")
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert "parity" in (proc.stdout + proc.stderr).lower() and out.is_dir()
    if backend == "torch":
        assert (tmp_path / "export-merged" / "model.safetensors.index.json").is_file()
