"""LoRA training engines on a real tiny Qwen3: accumulation, MLX/PyTorch parity, resume, learning.

The model is the embedded default's architecture (hidden 64, 2 layers, random seeded weights) built
offline by the shared `tiny_model_dir` fixture; rows are real Qwen3-Reranker prompts cut to 128 tokens.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backends.adapters import LoraWeights
from backends.prompt import PromptBuilder, resolve_answer_ids
from trainers.settings import LoraConfig, TrainConfig
from trainers.engine_base import Batch, RerankTrainEngine, default_lora_init
from trainers.engines import make_train_engine
from trainers.losses import listwise_ce_sum, pointwise_bce_sum

BACKENDS = ("torch", "mlx")
QUERIES = [
    ("how do solar panels work", ["Solar panels turn sunlight into electricity with cells.",
                                  "The recipe needs flour, butter and two eggs."]),
    ("best way to train a puppy", ["Reward a puppy with treats each time it sits on command.",
                                   "Stock markets fell sharply on Monday morning."]),
    ("symptoms of the flu", ["Fever, cough and aching muscles are common flu symptoms.",
                             "The ferry leaves the harbour at noon."]),
    ("history of the roman empire", ["Rome grew from a city state into an empire ruled by Augustus.",
                                     "Water the tomato plants twice a week."]),
    ("how to bake sourdough bread", ["Feed the starter, knead the dough and bake it in a hot oven.",
                                     "The violin has four strings tuned in fifths."]),
    ("causes of ocean tides", ["The moon's gravity pulls the oceans and makes the tides.",
                               "Our team won the league after a late goal."]),
    ("learn python programming", ["Python lists, loops and functions are the first things to learn.",
                                  "Snow closed the mountain pass overnight."]),
    ("what do bees eat", ["Bees feed on nectar and pollen collected from flowers.",
                          "The court adjourned the trial until Friday."]),
]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Matmuls this small gain nothing from a second thread, and on a busy 2-core box OpenMP's
    spin-waits cost seconds per step; restore the setting for the rest of the session."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def setup(tiny_model_dir: Path, tiny_tokenizer) -> dict:
    """Answer ids, pad id and prompt rows: one (positive, negative) pair per query, 16 rows."""
    builder = PromptBuilder(tiny_tokenizer, max_length=128)
    rows = [row for query, docs in QUERIES for row in builder.build(query, docs)]
    return {"dir": tiny_model_dir, "answer_ids": resolve_answer_ids(tiny_tokenizer),
            "pad_id": tiny_tokenizer.pad_token_id, "rows": rows}


def make(setup: dict, backend: str, *, init: LoraWeights | None = None, seed: int = 0,
         lora: LoraConfig | None = None, **train: object) -> RerankTrainEngine:
    lora = lora or LoraConfig(rank=4, alpha=8.0)
    config = TrainConfig(**{"learning_rate": 1e-3, "warmup_steps": 2, "max_steps": 20, "group_size": 2,
                            "max_grad_norm": 1.0, "weight_decay": 0.01, **train})
    return make_train_engine(backend, setup["dir"], lora, config, setup["answer_ids"], setup["pad_id"],
                             seed=seed, init_lora=init)


def listwise(rows: list[list[int]], *sizes: int) -> list[Batch]:
    """Split rows into micro-batches of `sizes` groups of 2 (positive first)."""
    out, start = [], 0
    for groups in sizes:
        out.append(Batch(rows[start:start + 2 * groups]))
        start += 2 * groups
    return out


@pytest.mark.parametrize("backend", BACKENDS)
def test_accumulation_equals_one_big_batch(setup: dict, backend: str) -> None:
    rows8 = setup["rows"][:8]
    labels = tuple(float(i % 2 == 0) for i in range(8))  # pointwise: positives at even rows
    big, split = make(setup, backend, loss="pointwise"), make(setup, backend, loss="pointwise")
    a = big.train_step([Batch(rows8, labels)])
    b = split.train_step([Batch(rows8[i:i + 2], labels[i:i + 2]) for i in range(0, 8, 2)])
    assert a.examples == b.examples == 8 and a.tokens == b.tokens
    assert abs(a.loss - b.loss) <= 1e-5 and abs(a.grad_norm - b.grad_norm) <= 1e-5 * max(1.0, a.grad_norm)
    np.testing.assert_allclose(big.trainable_vector(), split.trainable_vector(), rtol=0, atol=1e-5)
    # Listwise with unequal micro-batches (1 group + 3 groups): a sum over all 4 groups / 4,
    # not the mean of the two micro-batch means.
    big, split = make(setup, backend), make(setup, backend)
    a, b = big.train_step(listwise(rows8, 4)), split.train_step(listwise(rows8, 1, 3))
    assert a.examples == b.examples == 4
    assert abs(a.loss - b.loss) <= 1e-5
    np.testing.assert_allclose(big.trainable_vector(), split.trainable_vector(), rtol=0, atol=1e-5)


def test_torch_shared_prefix_forward_equals_the_full_forward(setup: dict, random_init: LoraWeights) -> None:
    """Listwise training runs each group's common prefix once: same log-odds, same gradients."""
    import torch

    engine = make(setup, "torch", init=random_init)
    try:
        rows = setup["rows"][:8]
        engine.model.train()
        full = engine._forward(rows)  # type: ignore[attr-defined]
        grouped = engine._forward_groups(rows, 2)  # type: ignore[attr-defined]
        params = engine._params  # type: ignore[attr-defined]
        g_full = torch.autograd.grad(full.sum(), params)
        g_grouped = torch.autograd.grad(grouped.sum(), params)
        assert torch.allclose(full, grouped, atol=1e-5)
        assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in zip(g_full, g_grouped))
    finally:
        engine.close()


def test_loss_matches_numpy_reference(setup: dict, random_init: LoraWeights) -> None:
    """The reported loss is the reference loss of the log-odds before the update."""
    rows = setup["rows"][:8]
    for backend in BACKENDS:
        engine = make(setup, backend, init=random_init)
        z = engine.logodds(rows)
        stats = engine.train_step(listwise(rows, 4))
        assert stats.loss == pytest.approx(listwise_ce_sum(z, 2) / 4, rel=1e-5)
        engine = make(setup, backend, init=random_init, loss="pointwise")
        labels = (1.0, 0.0) * 4
        z = engine.logodds(rows)
        assert engine.train_step([Batch(rows, labels)]).loss == pytest.approx(pointwise_bce_sum(z, labels) / 8,
                                                                             rel=1e-5)


@pytest.fixture(scope="module")
def random_init(setup: dict) -> LoraWeights:
    """A LoRA with non-zero B, so it changes the scores from the first step on."""
    shapes = {name: (a.shape[1], b.shape[0]) for name, (a, b) in make(setup, "mlx").lora_weights().modules.items()}
    init = default_lora_init(shapes, 4, 2.0, 0.0, seed=7)
    rng = np.random.default_rng(7)
    return LoraWeights({n: (a, rng.normal(0, 0.2, b.shape).astype(np.float32)) for n, (a, b) in init.modules.items()},
                       2.0, 4)


def test_mlx_and_torch_agree_over_20_steps(setup: dict, random_init: LoraWeights) -> None:
    rows = setup["rows"]
    init = random_init
    engines = {b: make(setup, b, init=init) for b in BACKENDS}
    start = {b: e.logodds(rows) for b, e in engines.items()}
    np.testing.assert_allclose(start["mlx"], start["torch"], rtol=0, atol=1e-4)
    losses: dict[str, list[float]] = {b: [] for b in BACKENDS}
    for step in range(20):
        order = np.random.default_rng(step).permutation(8)  # same data order on both backends
        step_rows = [r for g in order[:4] for r in rows[2 * g:2 * g + 2]]
        for backend, engine in engines.items():
            losses[backend].append(engine.train_step(listwise(step_rows, 1, 3)).loss)
    np.testing.assert_allclose(losses["mlx"], losses["torch"], rtol=1e-3)
    assert losses["torch"][-1] < losses["torch"][0]
    vec = {b: e.trainable_vector() for b, e in engines.items()}
    assert np.max(np.abs(vec["mlx"] - vec["torch"])) <= 1e-3 * np.max(np.abs(vec["torch"]))
    np.testing.assert_allclose(engines["mlx"].logodds(rows), engines["torch"].logodds(rows), rtol=0, atol=1e-3)


def test_exported_adapter_scores_like_the_serving_engine(setup: dict, random_init: LoraWeights) -> None:
    """The neutral export merged into the scoring engine gives the training engine's log-odds."""
    from backends.engine_torch import TorchEngine

    engine = make(setup, "torch", init=random_init)
    engine.train_step(listwise(setup["rows"][:8], 4))
    scorer = TorchEngine(str(setup["dir"]), "cpu", "float32", setup["answer_ids"], setup["pad_id"])
    scorer.apply_lora(engine.lora_weights())
    np.testing.assert_allclose(scorer.logodds(setup["rows"]), engine.logodds(setup["rows"]), rtol=0, atol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_resume_is_exact(setup: dict, backend: str, tmp_path: Path) -> None:
    """3 steps, save, 3 steps == 3 steps, save, load into a fresh engine, 3 steps (with dropout)."""
    rows = setup["rows"]
    lora = LoraConfig(rank=4, alpha=8.0, dropout=0.1, num_layers=1)
    batches = [listwise(rows[4 * i % 16:4 * i % 16 + 4] + rows[:4], 1, 1) for i in range(6)]
    first = make(setup, backend, lora=lora, seed=3)
    for batch in batches[:3]:
        first.train_step(batch)
    first.save_state(tmp_path / "ckpt")
    tail = [first.train_step(batch).loss for batch in batches[3:]]
    resumed = make(setup, backend, lora=lora, seed=99)  # the seed comes back from the state
    resumed.load_state(tmp_path / "ckpt")
    assert resumed.step == 3
    again = [resumed.train_step(batch).loss for batch in batches[3:]]
    np.testing.assert_allclose(again, tail, rtol=0, atol=1e-6)
    np.testing.assert_allclose(resumed.trainable_vector(), first.trainable_vector(), rtol=0, atol=1e-6)
    assert all(name.startswith("model.layers.1.") for name in first.lora_weights().modules)


def test_loss_falls_on_a_learnable_problem(setup: dict) -> None:
    """PyTorch only: the parity test already shows MLX takes the same steps (and MLX's CPU wheel
    uses reference BLAS on Linux, so its steps cost ~5x more here)."""
    rows = setup["rows"]
    engine = make(setup, "torch", learning_rate=2e-3, warmup_steps=3, max_steps=30)
    losses = [engine.train_step(listwise(rows, 4, 4)).loss for _ in range(30)]
    assert np.mean(losses[-5:]) < 0.3 * np.mean(losses[:5])
    z = engine.logodds(rows)
    assert np.mean(z[0::2] > z[1::2]) == 1.0  # every positive now outranks its negative


@pytest.mark.parametrize("backend", BACKENDS)
def test_dev_evaluation_reuses_each_querys_prefix(setup: dict, backend: str, random_init: LoraWeights,
                                                 tiny_tokenizer) -> None:
    """Dev evaluation runs each query's head once through the training engine (its LoRA, dropout
    off) and scores every candidate exactly as the full rows would; a one-document query goes whole."""
    from trainers.data_model import QueryExample
    from trainers.evaluation import evaluate_queries

    engine = make(setup, backend, init=random_init, lora=LoraConfig(rank=4, alpha=8.0, dropout=0.1))
    engine.train_step(listwise(setup["rows"][:8], 4))  # a trained, dropout-enabled adapter
    builder = PromptBuilder(tiny_tokenizer, max_length=128)
    others = [docs[1] for _, docs in QUERIES]
    dev = [QueryExample(f"q{i}", query, [docs[0]], others[i + 1:i + 4] + [docs[1]]) for i, (query, docs) in
           enumerate(QUERIES[:3])] + [QueryExample("single", QUERIES[3][0], [QUERIES[3][1][0]], [])]
    evaluation = evaluate_queries(engine, builder, dev, token_budget=64)  # several batches per query
    assert evaluation.prefixed_pairs == 3 * 5
    for example in dev:
        cand = example.candidates()
        full = engine.logodds(builder.build(example.query, cand.docs))
        got = dict(evaluation.rankings[example.qid])
        np.testing.assert_allclose([got[i] for i in cand.ids], full, rtol=0, atol=1e-5)
        assert len(full) == 1 or np.std(full) > 1e-3  # the scores differ, so the check has teeth
