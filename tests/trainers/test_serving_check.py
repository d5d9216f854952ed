"""The serving adapter measured on a run's dev candidates: the same figures on MLX and PyTorch,
equal to the training engine's own evaluation of those weights, and incompatible adapters named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backends.adapters import LoraWeights
from ragweld_tui.config import parse_config
from trainers.run_plan import RunPlan
from trainers.serving_check import evaluate_serving

RUN_ID = "r20260101-000000-0000beef"


def plan_for(backend: str) -> RunPlan:
    return RunPlan.prepare(parse_config({"model": {"backend": backend}, "data": {"max_queries": 20},
                                         "train": {"max_length": 160}}, "test"))


def random_adapter(plan: RunPlan) -> LoraWeights:
    """The engine's own LoRA shapes with B drawn at random, so the adapter changes the scores."""
    engine = plan.make_engine()
    try:
        lora = engine.lora_weights()
    finally:
        engine.close()
    rng = np.random.default_rng(7)
    return LoraWeights({name: (a, rng.normal(0, 0.5, b.shape).astype(np.float32))
                        for name, (a, b) in lora.modules.items()}, lora.scale, lora.rank)


def test_serving_evaluation_agrees_across_backends_and_with_the_trained_engine(tmp_path: Path) -> None:
    torch_plan, mlx_plan = plan_for("torch"), plan_for("mlx")
    lora = random_adapter(torch_plan)
    folder = tmp_path / "adapter"
    torch_plan.write_adapter(folder, lora, RUN_ID, {})
    on_torch = evaluate_serving(torch_plan, folder, RUN_ID)
    on_mlx = evaluate_serving(mlx_plan, folder, RUN_ID)
    assert on_torch.note is None and on_mlx.note is None, (on_torch.note, on_mlx.note)
    for name, value in on_torch.evaluation.metrics.items():
        assert on_mlx.evaluation.metrics[name] == pytest.approx(value, abs=1e-6), name
    for qid, ranking in on_torch.evaluation.rankings.items():
        np.testing.assert_allclose([s for _, s in on_mlx.evaluation.rankings[qid]], [s for _, s in ranking],
                                   atol=1e-3)
    engine = torch_plan.make_engine()
    try:
        base = torch_plan.evaluate(engine)
    finally:
        engine.close()
    assert on_torch.evaluation.metrics != base.metrics  # the adapter was really applied


def test_an_adapter_for_another_base_is_named_not_compared(tmp_path: Path) -> None:
    plan = plan_for("torch")
    folder = tmp_path / "adapter"
    plan.write_adapter(folder, random_adapter(plan), RUN_ID, {})
    other = plan_for("torch")
    other.base_fingerprint = "0000otherbase000"
    reference = evaluate_serving(other, folder, RUN_ID)
    assert reference.evaluation is None and "trained on another base" in reference.note
    missing = evaluate_serving(plan, tmp_path / "gone", RUN_ID)
    assert missing.evaluation is None and "unreadable" in missing.note
