"""Pure helpers of the training engines: schedule, reference losses, layer/target selection, init, state files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from backends.adapters import LoraWeights
from trainers.engine_base import (
    Batch, TrainState, default_lora_init, dropout_seed, flatten_lora, layers_to_train, matches_target, pad_rows,
    read_state, shared_prefix_lengths, write_state)
from trainers.losses import examples_in, listwise_ce_sum, pointwise_bce_sum
from trainers.schedule import lr_at, lr_curve


def test_schedule_warmup_then_cosine() -> None:
    assert [lr_at(s, 1.0, 4, 12) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_at(4, 1.0, 4, 12) == 1.0  # cosine starts at the base rate
    assert lr_at(8, 1.0, 4, 12) == pytest.approx(0.5)  # half-way through the decay
    assert lr_at(12, 1.0, 4, 12) == pytest.approx(0.0, abs=1e-12)
    assert lr_at(50, 1.0, 4, 12) == pytest.approx(0.0, abs=1e-12)  # stays at the floor beyond max_steps
    assert lr_at(12, 2.0, 4, 12, min_ratio=0.1) == pytest.approx(0.2)
    assert lr_at(0, 3e-4, 0, 10) == 3e-4  # no warmup: full rate at once
    assert lr_at(5, 1.0, 0, 10) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    curve = lr_curve(1.0, 2, 10)
    assert len(curve) == 10 and max(curve) == 1.0 and curve == sorted(curve[:2]) + sorted(curve[2:], reverse=True)
    with pytest.raises(ValueError):
        lr_at(-1, 1.0, 2, 10)


def test_reference_losses() -> None:
    z = np.array([2.0, -1.0, 0.5, 0.5])
    assert listwise_ce_sum(z, 2) == pytest.approx(math.log(1 + math.exp(-3.0)) + math.log(2.0))
    assert listwise_ce_sum(np.array([1000.0, -1000.0]), 2) == pytest.approx(0.0)  # stable at extremes
    assert pointwise_bce_sum(np.array([0.0, 0.0]), np.array([1.0, 0.0])) == pytest.approx(2 * math.log(2.0))
    assert pointwise_bce_sum(np.array([-800.0]), np.array([1.0])) == pytest.approx(800.0)
    assert examples_in(6, "listwise", 3) == 2 and examples_in(6, "pointwise", 3) == 6
    with pytest.raises(ValueError):
        examples_in(5, "listwise", 2)


def test_batch_counts_and_validation() -> None:
    batch = Batch([[1, 2], [3], [4, 5, 6], [7]])
    assert batch.num_examples("listwise", 2) == 2 and batch.num_tokens() == 7
    with pytest.raises(ValueError, match="label per row"):
        batch.num_examples("pointwise", 2)
    assert Batch([[1], [2]], (1.0, 0.0)).num_examples("pointwise", 4) == 2


def test_pad_rows_right_pads_and_finds_last_token() -> None:
    ids, last = pad_rows([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]] and last.tolist() == [2, 0]
    with pytest.raises(ValueError):
        pad_rows([[1], []], 0)


def test_shared_prefix_lengths_leave_each_row_its_last_token() -> None:
    rows = [[1, 2, 3, 4], [1, 2, 5], [7, 8], [7, 8, 9], [4], [4]]
    assert shared_prefix_lengths(rows, 2) == [2, 1, 0]
    assert shared_prefix_lengths(rows[:2], 1) == [3, 2]
    with pytest.raises(ValueError):
        shared_prefix_lengths(rows, 4)


def test_layer_and_target_selection() -> None:
    assert layers_to_train(-1, 4) == [0, 1, 2, 3]
    assert layers_to_train(2, 4) == [2, 3]
    assert layers_to_train(9, 4) == [0, 1, 2, 3]
    with pytest.raises(ValueError):
        layers_to_train(0, 4)
    assert matches_target("self_attn.q_proj", ["q_proj"])
    assert matches_target("mlp.up_proj", ["mlp.up_proj"])
    assert not matches_target("self_attn.q_norm", ["q_proj", "norm_x"])


def test_default_init_is_seeded_kaiming_uniform_with_zero_b() -> None:
    shapes = {"model.layers.1.mlp.down_proj": (192, 64), "model.layers.0.self_attn.q_proj": (64, 64)}
    a = default_lora_init(shapes, 4, 2.0, 0.0, seed=5)
    b = default_lora_init(dict(reversed(list(shapes.items()))), 4, 2.0, 0.0, seed=5)
    for name, (fan_in, fan_out) in shapes.items():
        la, lb = a.modules[name]
        assert la.shape == (4, fan_in) and lb.shape == (fan_out, 4) and not lb.any()
        assert np.abs(la).max() <= 1 / math.sqrt(fan_in)
        np.testing.assert_array_equal(la, b.modules[name][0])  # independent of dict order
    assert not np.array_equal(a.modules["model.layers.0.self_attn.q_proj"][0],
                              default_lora_init(shapes, 4, 2.0, 0.0, seed=6).modules["model.layers.0.self_attn.q_proj"][0])


def test_flatten_order_is_sorted_names_a_then_b() -> None:
    modules = {"m.z": (np.full((1, 2), 3.0), np.full((1, 1), 4.0)), "m.a": (np.ones((1, 2)), np.full((2, 1), 2.0))}
    assert flatten_lora(modules).tolist() == [1, 1, 2, 2, 3, 3, 4]


def test_state_files_round_trip(tmp_path: Path) -> None:
    lora = LoraWeights({"model.layers.0.mlp.up_proj": (np.ones((2, 3), np.float32), np.zeros((4, 2), np.float32))},
                       scale=2.0, rank=2, dropout=0.1)
    moments = {"model.layers.0.mlp.up_proj.A.m": np.full((2, 3), 0.5, np.float32)}
    write_state(tmp_path, TrainState("mlx", 7, 11, lora, moments))
    back = read_state(tmp_path)
    assert (back.backend, back.step, back.seed, back.lora.rank, back.lora.scale, back.lora.dropout) == \
        ("mlx", 7, 11, 2, 2.0, 0.1)
    np.testing.assert_array_equal(back.moments["model.layers.0.mlp.up_proj.A.m"], 0.5)
    assert {p.suffix for p in tmp_path.iterdir()} == {".json", ".safetensors"}  # no pickle anywhere
    (tmp_path / "state.json").unlink()
    with pytest.raises(FileNotFoundError):
        read_state(tmp_path)


def test_dropout_seed_depends_on_seed_and_step() -> None:
    assert dropout_seed(0, 1) == dropout_seed(0, 1)
    assert len({dropout_seed(0, 1), dropout_seed(0, 2), dropout_seed(1, 1)}) == 3
