"""`[train].compile` on the MLX reranker engine: a compiled step trains exactly like the eager one,
traces once per length bucket, resumes exactly, works with gradient checkpointing; the setting's rules.

Rows are the real prompts of `test_engines` (tiny embedded Qwen3), cut to lengths in several buckets
(`trainers.engine_base.bucket`); the chat engine's side is `tests/agent/test_chat_compile.py`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from trainers.engine_base import Batch, StepStats, bucket
from trainers.precision import compute_note, resolve_compile
from trainers.settings import LoraConfig, TrainConfig
from tests.trainers.test_engines import listwise, make, one_torch_thread, setup  # noqa: F401 (fixtures)

STEPS = 3


def _rerank_batches(setup: dict, loss: str) -> list[list[Batch]]:  # noqa: F811
    """Three steps of two micro-batches each, rows cut to lengths that fall in different buckets."""
    rows = setup["rows"]
    out = []
    for step, cut in enumerate((40, 90, 128)):
        part = [row[:cut - i] for i, row in enumerate(rows[4 * step:4 * step + 8])]
        if loss == "listwise":
            out.append(listwise(part, 2, 2))
        else:
            labels = tuple(float(i % 2 == 0) for i in range(8))
            out.append([Batch(part[:4], labels[:4]), Batch(part[4:], labels[4:])])
    return out


def train(engine: object, batches: list) -> tuple[list[StepStats], np.ndarray]:
    stats = [engine.train_step(b) for b in batches]  # type: ignore[attr-defined]
    vector = engine.trainable_vector()  # type: ignore[attr-defined]
    engine.close()  # type: ignore[attr-defined]
    return stats, vector


def assert_same(compiled: tuple[list[StepStats], np.ndarray], eager: tuple[list[StepStats], np.ndarray]) -> None:
    assert np.abs(eager[1]).max() > 0
    np.testing.assert_allclose(compiled[1], eager[1], rtol=0, atol=1e-5)
    for c, e in zip(compiled[0], eager[0]):
        assert c.loss == pytest.approx(e.loss, abs=1e-5)
        assert c.grad_norm == pytest.approx(e.grad_norm, rel=1e-5, abs=1e-6)
        assert c.tokens == e.tokens and c.examples == e.examples  # real tokens, not the padding


@pytest.mark.parametrize("dropout", [0.0, 0.2])
@pytest.mark.parametrize("loss", ["listwise", "pointwise"])
def test_compiled_reranker_steps_equal_eager(setup: dict, loss: str, dropout: float) -> None:  # noqa: F811
    lora = LoraConfig(rank=4, alpha=8.0, dropout=dropout)
    batches = _rerank_batches(setup, loss)
    runs = {flag: train(make(setup, "mlx", lora=lora, loss=loss, compile=flag), batches) for flag in (True, False)}
    assert_same(runs[True], runs[False])


def test_traces_stay_bounded_by_the_length_buckets(setup: dict) -> None:  # noqa: F811
    """Lengths 89..96 share the bucket of 96: one trace for all of them; a 70-token batch adds the
    72 one. The update traces once (its state tree is fixed from the start). Eager, the same Python
    bodies run once per call."""
    rows = setup["rows"]
    assert min(len(row) for row in rows[:4]) >= 96
    same_bucket = [[Batch([row[:n] for row in rows[:4]])] for n in (89, 92, 95, 96)]
    for flag, expected in ((True, 1), (False, 4)):
        engine = make(setup, "mlx", compile=flag)
        for batch in same_bucket:
            engine.train_step(batch)
        assert engine.traces == {"grad": expected, "update": expected}
        engine.close()
    engine = make(setup, "mlx", compile=True)
    for batch in same_bucket + [[Batch([row[:70] for row in rows[:4]])]] + same_bucket:
        engine.train_step(batch)
    assert engine.traces == {"grad": 2, "update": 1}
    engine.close()


@pytest.mark.parametrize(("n", "padded"), [(1, 8), (40, 40), (121, 128), (129, 136), (255, 256), (257, 272),
                                           (600, 608), (4097, 4352)])
def test_buckets(n: int, padded: int) -> None:
    assert bucket(n) == padded


def test_buckets_waste_little_and_are_few() -> None:
    sizes = range(1, 8193)
    assert all(bucket(n) - n < max(8, n / 16) for n in sizes)
    for low in (128, 256, 1024, 4096):
        assert len({bucket(n) for n in range(low + 1, 2 * low + 1)}) == 16


def test_compiled_resume_is_exact(setup: dict, tmp_path: Path) -> None:  # noqa: F811
    """Compiled with dropout: 3 steps, save, 3 steps == load into a fresh compiled engine, 3 steps."""
    lora = LoraConfig(rank=4, alpha=8.0, dropout=0.1)
    batches = _rerank_batches(setup, "listwise") * 2
    first = make(setup, "mlx", lora=lora, seed=3, compile=True)
    for batch in batches[:STEPS]:
        first.train_step(batch)
    first.save_state(tmp_path / "ckpt")
    tail = [first.train_step(batch).loss for batch in batches[STEPS:]]
    resumed = make(setup, "mlx", lora=lora, seed=99, compile=True)
    resumed.load_state(tmp_path / "ckpt")
    again = [resumed.train_step(batch).loss for batch in batches[STEPS:]]
    np.testing.assert_allclose(again, tail, rtol=0, atol=1e-6)
    np.testing.assert_allclose(resumed.trainable_vector(), first.trainable_vector(), rtol=0, atol=1e-6)


def test_compile_with_gradient_checkpointing_equals_eager(setup: dict) -> None:  # noqa: F811
    batches = _rerank_batches(setup, "listwise")
    runs = {flag: train(make(setup, "mlx", compile=flag, gradient_checkpointing=True), batches)
            for flag in (True, False)}
    assert_same(runs[True], runs[False])


def test_the_setting() -> None:
    """Strict values; only MLX compiles (torch ignores it, so one config runs on a Mac and on Linux);
    the start line says so."""
    for bad in ("yes", "true", 1):
        with pytest.raises(ValidationError, match="compile"):
            TrainConfig(compile=bad)  # type: ignore[arg-type]
    assert TrainConfig().compile == "auto"
    assert resolve_compile("auto", "mlx") and resolve_compile(True, "mlx") and not resolve_compile(False, "mlx")
    assert not resolve_compile(True, "torch") and not resolve_compile("auto", "torch")
    assert compute_note(TrainConfig(compile=True)) == "precision auto, compiled step"
    assert compute_note(TrainConfig(compile=False)) == "precision auto"


def test_the_run_records_what_ran(tiny_model_dir: Path) -> None:
    """The resolved setting is what a run records (and what `--resume` compares): a bool, false on torch."""
    from trainers.precision import with_resolved_precision
    from trainers.settings import AppConfig

    asked = AppConfig.model_validate({"train": {"compile": True}})
    assert with_resolved_precision(AppConfig(), "mlx", "cpu", tiny_model_dir).train.compile is True
    assert with_resolved_precision(asked, "torch", "cpu", tiny_model_dir).train.compile is False
