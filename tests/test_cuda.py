"""CUDA scoring (bf16 by default) against fp32 CPU; skipped on machines without a CUDA GPU (CI)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]


def test_cuda_bf16_scores_track_cpu_fp32(tiny_model_dir: Path, cisi_docs: list[str]) -> None:
    from backends.scorer import Reranker, ScorerSettings

    docs = [" ".join(d.split()[:80]) for d in cisi_docs[:40]]
    cpu = Reranker.load(ScorerSettings(model=str(tiny_model_dir), backend="torch", device="cpu"))
    gpu = Reranker.load(ScorerSettings(model=str(tiny_model_dir), backend="torch", device="cuda"))
    assert gpu.engine.dtype == "bfloat16" and gpu.engine.device == "cuda:0"
    expected = np.array([s.probability for s in cpu.score("library classification", docs)])
    got = np.array([s.probability for s in gpu.score("library classification", docs)])
    assert np.max(np.abs(expected - got)) < 2e-2
    fp32 = Reranker.load(ScorerSettings(model=str(tiny_model_dir), backend="torch", device="cuda", dtype="float32"))
    np.testing.assert_allclose([s.probability for s in fp32.score("library classification", docs)], expected, atol=1e-4)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_mixed_precision_training_tracks_fp32(tiny_model_dir: Path, tiny_tokenizer, precision: str) -> None:
    """`[train].precision` bf16/fp16 on CUDA (fp16 through the GradScaler): finite, near fp32, LoRA fp32."""
    from backends.prompt import PromptBuilder, resolve_answer_ids
    from trainers.engine_base import Batch
    from trainers.engines import make_train_engine
    from trainers.settings import LoraConfig, TrainConfig

    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    builder = PromptBuilder(tiny_tokenizer, max_length=128)
    rows = [row for query in ("solar panels", "puppy training") for row in
            builder.build(query, ["Solar cells turn sunlight into power.", "Reward the puppy when it sits."])]
    first, stats = {}, []
    for p in ("fp32", precision):
        engine = make_train_engine("torch", tiny_model_dir, LoraConfig(rank=4, alpha=8.0),
                                   TrainConfig(precision=p, group_size=2, warmup_steps=0, learning_rate=1e-3),
                                   resolve_answer_ids(tiny_tokenizer), tiny_tokenizer.pad_token_id, device="cuda:0")
        stats = [engine.train_step([Batch(rows)]) for _ in range(4)]
        assert all(np.isfinite(s.loss) for s in stats)
        assert engine.trainable_vector().dtype == np.float32
        assert {a.dtype for pair in engine._layers.values() for a in pair} == {torch.float32}  # type: ignore[attr-defined]
        first[p] = stats[0].loss
        engine.close()
    assert first[precision] == pytest.approx(first["fp32"], rel=5e-2)
    assert any(not s.skipped and np.isfinite(s.grad_norm) for s in stats)  # the scaler settles and steps
