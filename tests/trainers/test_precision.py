"""`[train].precision` and `[train].gradient_checkpointing` on the tiny Qwen3, both backends.

bf16 training runs real steps (torch CPU autocast; MLX casts the frozen base) with a loss close to
fp32's and LoRA weights and AdamW state still fp32; gradient checkpointing changes memory, not the
numbers; the resolver's table; the run refuses what the device cannot do before it exists.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from trainers.engine_base import RerankTrainEngine
from trainers.settings import LoraConfig
from trainers.precision import (
    CPU_BF16_MIN_HIDDEN, auto_reason, fast_bf16, hidden_size, precision_for, resolve_precision, stored_precision)
from tests.trainers.test_engines import listwise, make, one_torch_thread, setup  # noqa: F401  (fixtures)

BACKENDS = ("torch", "mlx")


@pytest.mark.parametrize(("requested", "backend", "device", "bf16", "expected"), [
    ("auto", "torch", "cpu", False, "fp32"),
    ("auto", "torch", "cuda:0", True, "bf16"),
    ("auto", "torch", "cuda:1", False, "fp16"),
    ("auto", "torch", "mps", False, "fp32"),
    ("bf16", "torch", "cpu", False, "bf16"),
    ("fp32", "torch", "cuda:0", True, "fp32"),
    ("fp16", "torch", "cuda:0", False, "fp16"),
    ("fp16", "torch", "mps", False, "fp16"),
    ("auto", "mlx", "cpu", False, "fp32"),
    ("bf16", "mlx", "cpu", False, "bf16"),
    ("fp16", "mlx", "gpu", False, "fp16"),
])
def test_resolution_table(requested: str, backend: str, device: str, bf16: bool, expected: str) -> None:
    assert resolve_precision(requested, backend, device, bf16_supported=bf16) == expected


@pytest.mark.parametrize(("fast", "hidden", "expected"), [
    (True, 64, "fp32"),     # the embedded model: bf16 measured 0.99x fp32 there, so exactness wins
    (True, CPU_BF16_MIN_HIDDEN, "bf16"),
    (True, 1024, "bf16"),   # Qwen3-0.6B's width: bf16 measured 2.0x fp32
    (False, 1024, "fp32"),  # a CPU without AMX-BF16 or AVX512-BF16 emulates bf16
])
def test_cpu_auto_is_bf16_on_fast_bf16_cpus_for_wide_models(fast: bool, hidden: int, expected: str) -> None:
    assert resolve_precision("auto", "torch", "cpu", bf16_supported=fast, hidden=hidden) == expected
    assert resolve_precision("auto", "torch", "mps", bf16_supported=fast, hidden=hidden) == "fp32"


def test_precision_for_reads_this_cpu_and_the_model_width(tiny_model_dir: Path, tmp_path: Path) -> None:
    """The run plan's lookup: the CPU's own bf16 feature and config.json's hidden_size."""
    from backends.embedded import TinyQwen3Spec, write_tiny_qwen3

    wide = write_tiny_qwen3(tmp_path / "wide", TinyQwen3Spec(hidden_size=256, intermediate_size=512,
                                                              num_hidden_layers=1, head_dim=64))
    assert hidden_size(wide) == 256 and hidden_size(tmp_path / "nowhere") == 0
    assert precision_for("auto", "torch", "cpu", tiny_model_dir) == "fp32"
    assert precision_for("auto", "torch", "cpu", wide) == ("bf16" if fast_bf16("cpu") else "fp32")
    assert precision_for("auto", "mlx", "cpu", wide) == "fp32"
    assert precision_for("fp32", "torch", "cpu", wide) == "fp32"
    reason = auto_reason("torch", "cpu")
    assert (f"at least {CPU_BF16_MIN_HIDDEN} wide" in reason) == fast_bf16("cpu")


def test_mlx_auto_on_the_gpu_keeps_the_base_as_stored() -> None:
    assert resolve_precision("auto", "mlx", "gpu", stored="bf16") == "bf16"
    assert resolve_precision("auto", "mlx", "cpu", stored="bf16") == "fp32"


@pytest.mark.parametrize(("requested", "device", "says"), [
    ("fp16", "cpu", "[train].precision = 'fp16': the CPU has no fp16 matmul; use bf16 or fp32"),
    ("bf16", "cuda:0", "[train].precision = 'bf16': cuda:0 has no bf16 support; use fp16 or fp32"),
])
def test_refusals_name_the_setting(requested: str, device: str, says: str) -> None:
    with pytest.raises(ValueError) as caught:
        resolve_precision(requested, "torch", device, bf16_supported=False)
    assert str(caught.value) == says


def test_stored_precision_reads_the_safetensors_header(tiny_model_dir: Path, tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    assert stored_precision(tiny_model_dir) == "fp32"
    save_file({"a": np.zeros(2, np.float16), "b": np.zeros(2, np.float16), "c": np.zeros(2, np.uint32)},
              str(tmp_path / "model.safetensors"))
    assert stored_precision(tmp_path) == "fp16"


def _lora_dtypes(engine: RerankTrainEngine) -> set[str]:
    """The dtypes of the engine's own LoRA parameters and AdamW moments (as the framework holds them)."""
    if engine.backend == "torch":
        params = [p for pair in engine._layers.values() for p in pair]  # type: ignore[attr-defined]
        moments = [t for state in engine.optimizer.state.values() for k, t in state.items() if k != "step"]  # type: ignore[attr-defined]
        return {str(t.dtype).removeprefix("torch.") for t in params + moments}
    from mlx.utils import tree_flatten

    arrays = [v for _, v in tree_flatten(engine.model.trainable_parameters())]  # type: ignore[attr-defined]
    arrays += [v for k, v in tree_flatten(engine.optimizer.state) if k != "step"]  # type: ignore[attr-defined]
    return {str(a.dtype).removeprefix("mlx.core.") for a in arrays}


@pytest.mark.parametrize("backend", BACKENDS)
def test_bf16_trains_close_to_fp32_and_keeps_lora_fp32(setup: dict, backend: str) -> None:  # noqa: F811
    batches = listwise(setup["rows"][:8], 4)
    losses = {}
    for precision in ("fp32", "bf16"):
        engine = make(setup, backend, precision=precision)
        assert engine.precision == precision  # type: ignore[attr-defined]
        stats = [engine.train_step(batches) for _ in range(3)]
        losses[precision] = [s.loss for s in stats]
        assert all(np.isfinite(s.loss) and np.isfinite(s.grad_norm) and not s.skipped for s in stats)
        assert _lora_dtypes(engine) == {"float32"}
        assert engine.trainable_vector().dtype == np.float32
        engine.close()
    assert losses["bf16"][0] == pytest.approx(losses["fp32"][0], rel=5e-2)
    assert losses["bf16"][0] != losses["fp32"][0]  # bf16 really ran: the forward differs in low bits


def _count_layer_calls(engine: RerankTrainEngine) -> Callable[[], int]:
    """Count calls of the first transformer layer's MLP from now on (a torch pre-hook; an MLX subclass)."""
    count = [0]
    if engine.backend == "torch":
        # Inside the layer (transformers checkpoints `forward`, so the layer's own hooks run once), and
        # before the work: the recompute stops as soon as the last saved tensor is back (early stop).
        layer = engine._backbone.layers[0].mlp  # type: ignore[attr-defined]
        layer.register_forward_pre_hook(lambda *_: count.__setitem__(0, count[0] + 1))
    else:
        layer = engine.model.layers[0].mlp  # type: ignore[attr-defined]
        call = type(layer).__call__

        def counted(self: object, *args: object, **kwargs: object) -> object:
            count[0] += 1
            return call(self, *args, **kwargs)

        layer.__class__ = type("Counted", (type(layer),), {"__call__": counted})
    return lambda: count[0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_checkpointing_changes_nothing_but_memory(setup: dict, backend: str) -> None:  # noqa: F811
    batches = listwise(setup["rows"][:8], 2, 2)
    vectors, stats = [], []
    for checkpointing in (False, True):
        # Eager: the count is of Python calls, which a compiled step makes only when it traces.
        engine = make(setup, backend, gradient_checkpointing=checkpointing, compile=False)
        before = engine.trainable_vector()
        calls = _count_layer_calls(engine)
        stats.append([engine.train_step(batches) for _ in range(2)])
        # Each micro-batch runs layer 0 once forward (torch's listwise path twice: the groups' shared
        # prefix, then their documents; checkpointed, full rows), and when checkpointed once more in backward.
        passes = 2 if checkpointing or backend == "torch" else 1
        assert calls() == 2 * len(batches) * passes
        vectors.append(engine.trainable_vector())
        assert np.abs(vectors[-1] - before).max() > 0  # gradients reached the LoRA matrices
        engine.close()
    np.testing.assert_allclose(vectors[1], vectors[0], rtol=0, atol=1e-5)
    for plain, checkpointed in zip(*stats):
        assert checkpointed.loss == pytest.approx(plain.loss, abs=1e-5)
        assert checkpointed.grad_norm == pytest.approx(plain.grad_norm, rel=1e-5, abs=1e-6)


def test_torch_checkpointing_replays_the_dropout_masks(setup: dict) -> None:  # noqa: F811
    """The recompute draws the forward's dropout masks again (torch saves and restores the RNG)."""
    lora = LoraConfig(rank=4, alpha=8.0, dropout=0.3)
    vectors = []
    for checkpointing in (False, True):
        engine = make(setup, "torch", lora=lora, gradient_checkpointing=checkpointing)
        engine.train_step(listwise(setup["rows"][:8], 4))
        vectors.append(engine.trainable_vector())
        engine.close()
    np.testing.assert_allclose(vectors[1], vectors[0], rtol=0, atol=1e-5)


def test_mlx_refuses_checkpointing_with_dropout(setup: dict) -> None:  # noqa: F811
    """MLX cannot rewind its random stream for the recompute: one clear line instead of wrong gradients."""
    with pytest.raises(ValueError, match=r"\[train\].gradient_checkpointing = true with \[lora\].dropout = 0.3"):
        make(setup, "mlx", lora=LoraConfig(rank=4, alpha=8.0, dropout=0.3), gradient_checkpointing=True)
