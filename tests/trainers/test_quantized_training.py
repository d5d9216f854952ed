"""Reranker QLoRA on quantized MLX bases (4- and 8-bit, head included), as mlx-community ships them.

The bases are quantized copies of the embedded tiny model made offline with mlx-lm's own utilities
(hidden 64: group sizes 32 and 64 both divide it). Checked: the base stays quantized and frozen,
LoRA and AdamW state are fp32, the loss falls, a real `--run` completes, and the adapter it writes
scores through `ragweld-tui score` exactly as the run's evaluation ranked (the TREC file).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from backends.adapters import MLX_WEIGHTS, verify_adapter
from tests.trainers.run_helpers import run_cli, store_runs, write_config
from tests.trainers.test_engines import QUERIES, listwise

QUANTIZATIONS = {4: 32, 8: 64}  # bits -> group size


@pytest.fixture(scope="module")
def quantized_bases(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    from backends.mlx_thread import mlx_worker
    from tests.mlx_models import quantize_copy

    root = tmp_path_factory.mktemp("quantized")
    return {bits: mlx_worker().call(quantize_copy, tiny_model_dir, root / f"tiny-{bits}bit", bits, group)
            for bits, group in QUANTIZATIONS.items()}


@pytest.fixture(scope="module")
def rows(tiny_tokenizer) -> list[list[int]]:
    from backends.prompt import PromptBuilder

    builder = PromptBuilder(tiny_tokenizer, max_length=128)
    return [row for query, docs in QUERIES for row in builder.build(query, docs)]


def _layout(engine) -> dict[str, object]:
    """What the engine's model holds: the head's type, the wrapped layers, dtypes of what trains."""
    import mlx.nn as nn
    from mlx.utils import tree_flatten
    from mlx_lm.tuner.lora import LoRALinear

    model = engine.model
    wrapped = [m for _, m in model.named_modules() if isinstance(m, LoRALinear)]
    return {"head": type(model.model.embed_tokens).__name__,
            "tied": getattr(model, "lm_head", None) is None,
            "wrapped_quantized": bool(wrapped) and all(isinstance(m.linear, nn.QuantizedLinear) for m in wrapped),
            "trainable": {k: str(v.dtype) for k, v in tree_flatten(model.trainable_parameters())},
            "moments": {k: str(v.dtype) for k, v in tree_flatten(engine.optimizer.state) if k.endswith((".m", ".v"))}}


@pytest.mark.parametrize("bits", sorted(QUANTIZATIONS))
def test_qlora_on_a_quantized_base_learns_and_serves_the_same_scores(
        quantized_bases: dict[int, Path], rows: list[list[int]], tiny_tokenizer, bits: int) -> None:
    from backends.engine_mlx import MlxEngine
    from backends.mlx_thread import mlx_worker
    from backends.prompt import resolve_answer_ids
    from trainers.engines import make_train_engine
    from trainers.settings import LoraConfig, TrainConfig

    answer_ids, pad_id = resolve_answer_ids(tiny_tokenizer), tiny_tokenizer.pad_token_id
    engine = make_train_engine("mlx", quantized_bases[bits], LoraConfig(rank=4, alpha=8.0),
                               TrainConfig(learning_rate=2e-3, warmup_steps=2, max_steps=10, group_size=2),
                               answer_ids, pad_id, seed=0)
    try:
        losses = [engine.train_step(listwise(rows, 4, 4)).loss for _ in range(10)]
        layout = mlx_worker().call(_layout, engine)
        trained = engine.logodds(rows)
        lora = engine.lora_weights()
    finally:
        engine.close()
    assert layout["head"] == "QuantizedEmbedding" and layout["tied"]  # the (tied) head is quantized too
    assert layout["wrapped_quantized"]  # LoRA branches on the frozen quantized layers
    trainable = layout["trainable"]
    assert trainable and all(k.endswith((".lora_a", ".lora_b")) for k in trainable)
    assert set(trainable.values()) == {"mlx.core.float32"}
    assert set(layout["moments"].values()) == {"mlx.core.float32"} and len(layout["moments"]) == 2 * len(trainable)
    assert all(math.isfinite(x) for x in losses) and losses[-1] < 0.5 * losses[0]
    assert np.mean(trained[0::2] > trained[1::2]) >= 0.875  # positives now outrank their negatives

    def served() -> np.ndarray:
        scorer = MlxEngine(str(quantized_bases[bits]), "cpu", "auto", answer_ids, pad_id)
        try:
            scorer.apply_lora(lora)
            return scorer.logodds(rows)
        finally:
            scorer.close()

    np.testing.assert_allclose(mlx_worker().call(served), trained, rtol=0, atol=1e-4)


def _triplets(path: Path) -> Path:
    """Ten queries of QUERIES-like text with explicit ids: the TREC run names them, and the docs
    are p0.. then n0.. in file order, so a test can score exactly what the run evaluated."""
    extra = [("how do volcanoes erupt", ["Magma rises through the crust and bursts out of a volcano."],
              ["The bakery opens at seven.", "Tennis balls are yellow.", "The train was late again."]),
             ("what is photosynthesis", ["Plants turn light, water and carbon dioxide into sugar."],
              ["Chess openings reward study.", "The bridge spans the river.", "Jazz grew in New Orleans."])]
    lines = [{"qid": f"q{i}", "query": q, "positives": [docs[0]], "negatives": [docs[1], "Buy cheap watches today!",
                                                                            "Click here for a free prize!"]}
             for i, (q, docs) in enumerate(QUERIES)]
    lines += [{"qid": f"q{len(QUERIES) + i}", "query": q, "positives": pos, "negatives": neg}
              for i, (q, pos, neg) in enumerate(extra)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def _with_base(config: Path, base: Path) -> Path:
    config.write_text(config.read_text().replace("[model]\n", f'[model]\nbase = "{base}"\n', 1))
    return config


def _read_run_file(path: Path) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for line in path.read_text().splitlines():
        qid, _, docid, _, score, _ = line.split()
        out.setdefault(qid, {})[docid] = float(score)
    return out


def test_run_on_a_4bit_base_trains_and_its_adapter_scores_as_evaluated(
        quantized_bases: dict[int, Path], tmp_path: Path) -> None:
    data = _triplets(tmp_path / "triplets.jsonl")
    config = _with_base(write_config(tmp_path, "mlx", data=str(data), max_steps=4, eval_every=2,
                                     checkpoint_every=2, group_size=4, batch_size=4, learning_rate=2e-3),
                        quantized_bases[4])
    result = run_cli("--run", str(config))
    assert result.returncode == 0, result.stderr + result.stdout
    (run,) = store_runs(tmp_path / "db.sqlite")
    assert run.status == "completed" and run.backend == "mlx"
    assert run.baseline is not None and run.best is not None and math.isfinite(run.best)
    losses = [float(x) for x in _losses(tmp_path / "db.sqlite", run.id)]
    assert len(losses) == 4 and all(math.isfinite(x) for x in losses)
    adapter = tmp_path / "runs" / run.id / "adapter"
    assert verify_adapter(adapter).backend == "mlx" and (adapter / MLX_WEIGHTS).is_file()

    tuned = _read_run_file(tmp_path / "runs" / run.id / "rankings" / "tuned.run")
    lines = {obj["qid"]: obj for obj in map(json.loads, data.read_text().splitlines())}
    qid = sorted(tuned)[0]
    query = lines[qid]
    docs = [*query["positives"], *query["negatives"]]
    scored = run_cli("--config", str(config), "score", "--adapter", str(adapter), "--json", "-q", query["query"],
                     *[arg for doc in docs for arg in ("-d", doc)])
    assert scored.returncode == 0, scored.stderr
    logits = {r["index"]: r["logit"] for r in json.loads(scored.stdout)["results"]}
    ids = [f"p{i}" for i in range(len(query["positives"]))] + [f"n{i}" for i in range(len(query["negatives"]))]
    # The run file holds float32 scores (a tie pushed one float32 step down): far inside 1e-4.
    np.testing.assert_allclose([logits[i] for i in range(len(docs))], [tuned[qid][d] for d in ids], rtol=0, atol=1e-4)


def _losses(db: Path, run_id: str) -> list[float]:
    import asyncio

    from store import RunStore

    async def read() -> list[float]:
        store = await RunStore.open(db)
        try:
            events = await store.events_since(run_id, 0, 10_000)
        finally:
            await store.close()
        return [e.event.values["train/loss"] for e in events
                if e.event.type == "metrics" and "train/loss" in e.event.values]

    return asyncio.run(read())


def test_a_quantized_base_on_torch_is_refused_in_one_line(quantized_bases: dict[int, Path], tmp_path: Path) -> None:
    config = _with_base(write_config(tmp_path, "torch"), quantized_bases[4])
    for args in (("--run", str(config)), ("--config", str(config), "score", "-q", "q", "-d", "a doc")):
        result = run_cli(*args)
        assert result.returncode == 2, result.stderr + result.stdout
        assert "MLX-quantized" in result.stderr and "mlx" in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
