"""`[model] base = "mlx-community/Qwen3-Reranker-0.6B-4bit"` from an offline Hugging Face cache.

The cache has the real repository's layout and file names, 4-bit weights at Qwen3-0.6B widths and
one layer (`tests/hf_layout_mlx.py` says what differs from the real repo). With the hub offline,
the hub id must resolve to the snapshot, train a few QLoRA steps on MLX, and the adapter must
score through `ragweld-tui score` as the run's evaluation ranked.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tests.hf_layout_mlx import (MLX_BITS, MLX_GROUP_SIZE, MLX_REPO_ID, MLX_REVISION,
                                 build_mlx_community_reranker_cache, mlx_community_env)
from tests.trainers.run_helpers import run_cli, store_runs, write_config

REAL_FILES = {"config.json", "model.safetensors", "model.safetensors.index.json", "tokenizer.json",
              "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json", "added_tokens.json",
              "generation_config.json"}
TRIPLETS = [
    ("what do bees eat", "Bees feed on nectar and pollen.", "The ferry leaves at noon."),
    ("how do tides work", "The moon's gravity pulls the oceans.", "Our team won the league."),
    ("how to bake bread", "Knead the dough and bake it hot.", "The violin has four strings."),
    ("symptoms of flu", "Fever and cough are flu symptoms.", "Snow closed the pass."),
    ("learn python", "Start with lists, loops and functions.", "The court adjourned."),
]


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("hf-home")
    build_mlx_community_reranker_cache(home)
    return home


def test_the_cache_has_the_mlx_community_layout(hf_home: Path) -> None:
    from safetensors import safe_open

    repo = hf_home / "hub" / ("models--" + MLX_REPO_ID.replace("/", "--"))
    assert (repo / "refs" / "main").read_text() == MLX_REVISION
    snapshot = repo / "snapshots" / MLX_REVISION
    assert {p.name for p in snapshot.iterdir()} == REAL_FILES
    assert all(p.is_symlink() and p.resolve().parent == repo / "blobs" for p in snapshot.iterdir())
    config = json.loads((snapshot / "config.json").read_text())
    assert config["quantization"] == config["quantization_config"] == {"group_size": MLX_GROUP_SIZE, "bits": MLX_BITS}
    assert (config["hidden_size"], config["intermediate_size"], config["num_attention_heads"],
            config["num_key_value_heads"], config["head_dim"]) == (1024, 3072, 16, 8, 128)
    with safe_open(str(snapshot / "model.safetensors"), framework="numpy") as handle:
        assert handle.metadata() == {"format": "mlx"}
        names = set(handle.keys())
    index = json.loads((snapshot / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == names
    # Every linear layer and the tied head/embedding: packed weight + scales + biases.
    for base in ("model.embed_tokens", "model.layers.0.self_attn.q_proj", "model.layers.0.mlp.down_proj"):
        assert {f"{base}.weight", f"{base}.scales", f"{base}.biases"} <= names


def test_the_hub_id_trains_offline_on_mlx_and_its_adapter_scores_as_evaluated(
        hf_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in mlx_community_env(hf_home).items():
        monkeypatch.setenv(key, value)
    data = tmp_path / "triplets.jsonl"
    data.write_text("".join(json.dumps({"qid": f"q{i}", "query": q, "positives": [p], "negatives": [n]}) + "\n"
                            for i, (q, p, n) in enumerate(TRIPLETS)))
    config = write_config(tmp_path, "mlx", data=str(data), max_steps=2, eval_every=2, checkpoint_every=2,
                          batch_size=1, group_size=2, warmup_steps=1, learning_rate=1e-3, max_length=96)
    config.write_text(config.read_text().replace("[model]\n", f'[model]\nbase = "{MLX_REPO_ID}"\n', 1))
    result = run_cli("--run", str(config))
    assert result.returncode == 0, result.stderr + result.stdout
    (run,) = store_runs(tmp_path / "db.sqlite")
    assert run.status == "completed" and run.backend == "mlx" and run.base_model == MLX_REPO_ID
    assert run.baseline is not None and run.best is not None and math.isfinite(run.best)
    adapter = tmp_path / "runs" / run.id / "adapter"
    tuned: dict[str, dict[str, float]] = {}
    for line in (tmp_path / "runs" / run.id / "rankings" / "tuned.run").read_text().splitlines():
        qid, _, docid, _, score, _ = line.split()
        tuned.setdefault(qid, {})[docid] = float(score)
    (qid,) = tuned
    query, positive, negative = TRIPLETS[int(qid[1:])]
    scored = run_cli("--config", str(config), "score", "--adapter", str(adapter), "--json", "-q", query,
                     "-d", positive, "-d", negative)
    assert scored.returncode == 0, scored.stderr
    answer = json.loads(scored.stdout)
    assert answer["model"] == MLX_REPO_ID and answer["backend"] == "mlx"
    logits = {r["index"]: r["logit"] for r in answer["results"]}
    np.testing.assert_allclose([logits[0], logits[1]], [tuned[qid]["p0"], tuned[qid]["n0"]], rtol=0, atol=1e-4)
