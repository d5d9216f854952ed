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
