"""Chat LoRA engines on the tiny Qwen3: the gathered loss vs full logits, MLX vs PyTorch, exact
accumulation, and QLoRA on a 4-bit MLX model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backends.adapters import LoraWeights
from backends.chat_template import encode_chat
from trainers.settings import LoraConfig, TrainConfig
from tests.agent.helpers import chats
from trainers.chat_batches import to_batch
from trainers.chat_engine import ChatBatch, reference_nll_sum
from trainers.engines import make_chat_engine
from trainers.engine_base import default_lora_init


@pytest.fixture(scope="module")
def batch(chat_tokenizer) -> ChatBatch:
    return to_batch([encode_chat(chat_tokenizer, c) for c in chats()])


def make(model_dir: Path, backend: str, pad_id: int, init: LoraWeights | None = None, **train: object):
    config = TrainConfig(**{"kind": "agent", "primary_metric": "eval_loss", "learning_rate": 5e-3, "warmup_steps": 1,
                            "max_steps": 10, "weight_decay": 0.01, **train})
    return make_chat_engine(backend, model_dir, LoraConfig(rank=4, alpha=8.0), config, pad_id, seed=0, init_lora=init)


@pytest.fixture(scope="module")
def random_init(chat_model_dir: Path, chat_tokenizer) -> LoraWeights:
    """A LoRA with non-zero B, so it changes the model from the first step on."""
    engine = make(chat_model_dir, "torch", chat_tokenizer.pad_token_id)
    shapes = {name: (a.shape[1], b.shape[0]) for name, (a, b) in engine.lora_weights().modules.items()}
    engine.close()
    init = default_lora_init(shapes, 4, 2.0, 0.0, seed=7)
    rng = np.random.default_rng(7)
    return LoraWeights({n: (a, rng.normal(0, 0.1, b.shape).astype(np.float32)) for n, (a, b) in init.modules.items()},
                       2.0, 4)


def test_gathered_loss_equals_the_full_logits_reference(chat_model_dir: Path, chat_tokenizer, batch: ChatBatch) -> None:
    """Step 0's reported loss (B = 0: the plain base) is the mean token loss of the base's full logits."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(chat_model_dir, dtype=torch.float32)
    ids, _, _ = batch.arrays(chat_tokenizer.pad_token_id)
    with torch.no_grad():
        logits = model(input_ids=torch.from_numpy(ids)).logits.numpy()
    expected = reference_nll_sum(logits, batch) / batch.num_targets()
    engine = make(chat_model_dir, "torch", chat_tokenizer.pad_token_id)
    nll, count = engine.nll(batch)
    assert count == batch.num_targets() and nll / count == pytest.approx(expected, rel=1e-5)
    assert engine.train_step([batch]).loss == pytest.approx(expected, rel=1e-5)


def test_mlx_and_torch_agree(chat_model_dir: Path, chat_tokenizer, batch: ChatBatch, random_init: LoraWeights) -> None:
    engines = {b: make(chat_model_dir, b, chat_tokenizer.pad_token_id, random_init) for b in ("torch", "mlx")}
    start = {b: e.nll(batch)[0] / batch.num_targets() for b, e in engines.items()}
    assert start["mlx"] == pytest.approx(start["torch"], rel=1e-5)
    halves = [ChatBatch(batch.rows[:1], batch.targets[:1]), ChatBatch(batch.rows[1:], batch.targets[1:])]
    losses = {b: [e.train_step(halves).loss for _ in range(3)] for b, e in engines.items()}
    np.testing.assert_allclose(losses["mlx"], losses["torch"], rtol=1e-4)
    assert losses["torch"][-1] < losses["torch"][0]
    vectors = {b: e.trainable_vector() for b, e in engines.items()}
    assert np.max(np.abs(vectors["mlx"] - vectors["torch"])) <= 1e-4 * np.max(np.abs(vectors["torch"]))
    for engine in engines.values():
        engine.close()


def test_accumulation_is_exact(chat_model_dir: Path, chat_tokenizer, batch: ChatBatch) -> None:
    """Micro-batches of unequal token counts give the step of one big batch (a token mean, not a mean of means)."""
    big, split = (make(chat_model_dir, "torch", chat_tokenizer.pad_token_id) for _ in range(2))
    a = big.train_step([batch])
    b = split.train_step([ChatBatch(batch.rows[:1], batch.targets[:1]), ChatBatch(batch.rows[1:], batch.targets[1:])])
    assert a.examples == b.examples == batch.num_targets() and a.tokens == b.tokens
    assert b.loss == pytest.approx(a.loss, rel=1e-6) and b.grad_norm == pytest.approx(a.grad_norm, rel=1e-5)
    np.testing.assert_allclose(split.trainable_vector(), big.trainable_vector(), rtol=0, atol=1e-6)


def test_qlora_on_a_4bit_mlx_model_learns(quantized_dir: Path, chat_tokenizer, batch: ChatBatch) -> None:
    """LoRA over mlx-lm QuantizedLinear layers (the 4-bit base stays frozen) and its loss falls;
    the adapter then changes what the quantized model generates."""
    from backends.chat_base import SamplingParams
    from backends.generator import ChatGenerator, GeneratorSettings

    engine = make(quantized_dir, "mlx", chat_tokenizer.pad_token_id, learning_rate=2e-2, max_steps=15)
    losses = [engine.train_step([batch]).loss for _ in range(15)]
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3])
    lora = engine.lora_weights()
    assert set(lora.target_keys()) >= {"self_attn.q_proj", "mlp.down_proj"}
    engine.close()
    generator = ChatGenerator.load(GeneratorSettings(str(quantized_dir), backend="mlx"))
    try:
        question, greedy = chats()[1][:1], SamplingParams(0.0, 1.0, 8)
        base = generator.reply(question, greedy)
        generator.use_adapter(None, lora)
        assert generator.reply(question, greedy) != base
    finally:
        generator.close()


def test_mlx_one_exp_loss_matches_cross_entropy_and_its_gradient() -> None:
    import mlx.core as mx
    import mlx.nn as nn

    from trainers.chat_engine_mlx import _nll_and_probs

    logits = mx.array(np.random.default_rng(0).normal(size=(6, 50)).astype(np.float32) * 4)
    targets = mx.array([0, 7, 49, 3, 3, 12])

    def ours(x: mx.array) -> mx.array:
        return _nll_and_probs(x, targets)[0].sum()

    def reference(x: mx.array) -> mx.array:
        return nn.losses.cross_entropy(x, targets, reduction="sum")

    (value, grad), (ref_value, ref_grad) = mx.value_and_grad(ours)(logits), mx.value_and_grad(reference)(logits)
    assert abs(value.item() - ref_value.item()) < 1e-5
    assert np.abs(np.array(grad) - np.array(ref_grad)).max() < 1e-6


@pytest.mark.parametrize("backend", ["torch", "mlx"])
def test_bf16_chat_training_is_close_to_fp32(chat_model_dir: Path, chat_tokenizer, batch: ChatBatch,
                                             random_init: LoraWeights, backend: str) -> None:
    """`[train].precision = 'bf16'` on the chat engines: finite, near fp32's loss, LoRA still fp32."""
    losses = {}
    for precision in ("fp32", "bf16"):
        engine = make(chat_model_dir, backend, chat_tokenizer.pad_token_id, random_init, precision=precision)
        stats = [engine.train_step([batch]) for _ in range(2)]
        assert all(np.isfinite(s.loss) and np.isfinite(s.grad_norm) for s in stats)
        assert engine.trainable_vector().dtype == np.float32
        losses[precision] = stats[0].loss
        engine.close()
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=5e-2) and losses["bf16"] != losses["fp32"]
