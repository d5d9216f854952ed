"""`[train].compile` on the MLX chat engine: compiled steps equal eager ones, the target count buckets
like the lengths (one trace per bucket), and the weight-0 target padding changes neither the loss nor
the one-exp custom VJP's gradient."""

from __future__ import annotations

from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten

from backends.chat_template import encode_chat
from backends.mlx_thread import mlx_worker
from trainers.chat_batches import to_batch
from trainers.chat_engine import ChatBatch
from trainers.engine_base import bucket
from trainers.engines import make_chat_engine
from trainers.settings import LoraConfig, TrainConfig
from tests.agent.helpers import chats
from tests.trainers.test_mlx_compile import assert_same, train


@pytest.fixture(scope="module")
def chat_batches(chat_tokenizer) -> list[ChatBatch]:
    """Three chat batches of different widths and target counts."""
    rows = [encode_chat(chat_tokenizer, c) for c in chats()]
    return [to_batch(rows[:2]), to_batch(rows[1:]), to_batch(rows[2:3])]


def make(model_dir: Path, pad_id: int, compile: bool, dropout: float = 0.0):
    config = TrainConfig(kind="agent", primary_metric="eval_loss", learning_rate=5e-3, warmup_steps=1, max_steps=10,
                         weight_decay=0.01, compile=compile)
    return make_chat_engine("mlx", model_dir, LoraConfig(rank=4, alpha=8.0, dropout=dropout), config, pad_id, seed=0)


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_compiled_chat_steps_equal_eager(chat_model_dir: Path, chat_tokenizer, chat_batches: list[ChatBatch],
                                         dropout: float) -> None:
    pad = chat_tokenizer.pad_token_id
    steps = [[b] for b in chat_batches]
    runs = {flag: train(make(chat_model_dir, pad, flag, dropout), steps) for flag in (True, False)}
    assert_same(runs[True], runs[False])


def test_target_counts_in_one_bucket_trace_once(chat_model_dir: Path, chat_tokenizer) -> None:
    """Two rows of 18..20 tokens, every token a target: inputs 17..19 wide (bucket 24), 34..38 targets
    (bucket 40)."""
    ids = [t for c in chats() for t in encode_chat(chat_tokenizer, c).ids]
    cut = [ChatBatch([ids[:n], ids[n:2 * n]], [[False] + [True] * (n - 1)] * 2) for n in (18, 19, 20)]
    assert len({b.num_targets() for b in cut}) == 3 and {bucket(b.num_targets()) for b in cut} == {40}
    engine = make(chat_model_dir, chat_tokenizer.pad_token_id, True)
    for batch in cut:
        engine.train_step([batch])
    assert engine.traces["grad"] == 1  # type: ignore[attr-defined]
    engine.close()


def test_weight_zero_targets_change_no_loss_and_no_gradient(chat_model_dir: Path, chat_tokenizer,
                                                             chat_batches: list[ChatBatch]) -> None:
    """The padded inputs against the same batch with only its real targets (all weight 1)."""
    engine = make(chat_model_dir, chat_tokenizer.pad_token_id, False)
    batch = chat_batches[1]

    def both() -> list[tuple[float, dict[str, np.ndarray]]]:
        padded = engine._inputs(batch)  # type: ignore[attr-defined]
        count = batch.num_targets()
        assert padded[1].shape[0] > count  # there is padding to check
        real = (padded[0], padded[1][:count], padded[2][:count], mx.ones(count))
        out = []
        for inputs in (padded, real):
            loss, grads = engine._value_and_grad(inputs, mx.array(float(count)))  # type: ignore[attr-defined]
            out.append((float(loss), {k: np.array(v) for k, v in tree_flatten(grads)}))
        return out

    (padded_loss, padded_grads), (real_loss, real_grads) = mlx_worker().call(both)
    engine.close()
    assert padded_loss == pytest.approx(real_loss, abs=1e-6)
    for name, grad in real_grads.items():
        np.testing.assert_allclose(padded_grads[name], grad, rtol=0, atol=1e-7)
