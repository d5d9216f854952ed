"""Scoring a quantized MLX model (as mlx-community ships them): loads, tracks fp32, serves adapters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backends.scorer import Reranker, ScorerSettings
from tests.test_service import DOCS, QUERY, random_lora, write_adapter


@pytest.fixture(scope="module")
def quantized_reranker_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.mlx_models import quantize_copy

    return quantize_copy(tiny_model_dir, tmp_path_factory.mktemp("q8") / "tiny-8bit", bits=8)


def test_quantized_mlx_model_scores_like_fp32(tiny_model_dir: Path, quantized_reranker_dir: Path,
                                             cisi_docs: list[str]) -> None:
    docs = [" ".join(d.split()[:60]) for d in cisi_docs[:30]]
    full = Reranker.load(ScorerSettings(model=str(tiny_model_dir), backend="mlx"))
    quant = Reranker.load(ScorerSettings(model=str(quantized_reranker_dir), backend="mlx"))
    expected = np.array([s.logit for s in full.score("library classification", docs)])
    got = np.array([s.logit for s in quant.score("library classification", docs)])
    assert np.all(np.isfinite(got))
    assert np.corrcoef(expected, got)[0, 1] > 0.95


def test_adapter_on_a_quantized_model_is_served_and_removed(quantized_reranker_dir: Path, tmp_path: Path) -> None:
    reranker = Reranker.load(ScorerSettings(model=str(quantized_reranker_dir), backend="mlx"))
    base = [s.logit for s in reranker.score(QUERY, DOCS)]
    adapter = write_adapter(tmp_path / "adapter", random_lora(7), quantized_reranker_dir)
    reranker.use_adapter(adapter)
    tuned = [s.logit for s in reranker.score(QUERY, DOCS)]
    assert not np.allclose(base, tuned, atol=1e-3)
    reranker.use_adapter(None)
    np.testing.assert_allclose([s.logit for s in reranker.score(QUERY, DOCS)], base, atol=1e-5)
