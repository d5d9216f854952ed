"""bf16 scoring on PyTorch: the `auto` dtype rule, and bf16 ranking a fixed set like fp32 does."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np
import pytest

from backends.scorer import Reranker
from backends.settings import ScorerSettings
from backends.select import cpu_bf16_matmul, torch_dtype

QUERIES = ["library classification systems", "citation indexing"]


def test_auto_dtype_follows_the_device_and_the_cpu() -> None:
    assert torch_dtype("float32", "cpu").dtype == "float32"  # always available for exact scores
    assert torch_dtype("auto", "cuda:0").dtype == "bfloat16"
    assert torch_dtype("auto", "mps").dtype == "float32"
    cpu = torch_dtype("auto", "cpu")
    feature = cpu_bf16_matmul()
    assert cpu.dtype == ("float32" if feature is None else "bfloat16")
    assert cpu.reason.startswith("auto: ") and (feature is None or feature in cpu.reason)


@pytest.fixture(scope="module")
def wide_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wider than the embedded model (256 wide, 4 layers) so that bf16 rounding shows in the scores;
    smaller weights than the embedded model's keep its probabilities spread around the middle."""
    from backends.embedded import TinyQwen3Spec, write_tiny_qwen3

    spec = TinyQwen3Spec(hidden_size=256, intermediate_size=768, num_hidden_layers=4, num_attention_heads=4,
                         num_key_value_heads=2, head_dim=64, init_std=0.05, embed_std=0.05)
    return write_tiny_qwen3(tmp_path_factory.mktemp("models") / "wide", spec)


def test_bf16_ranks_a_fixed_set_like_fp32(wide_model_dir: Path, cisi_docs: list[str]) -> None:
    docs = [" ".join(d.split()[:80]) for d in cisi_docs[:12]]
    probs = {}
    for dtype in ("float32", "bfloat16"):
        reranker = Reranker.load(ScorerSettings(model=str(wide_model_dir), backend="torch", device="cpu", dtype=dtype))
        assert reranker.engine.dtype == dtype
        probs[dtype] = np.array([[s.probability for s in reranker.score(q, docs)] for q in QUERIES])
        reranker.close()
    exact, fast = probs["float32"], probs["bfloat16"]
    assert np.min(np.std(exact, axis=1)) > 0.02  # the model discriminates, so rankings mean something
    assert np.max(np.abs(fast - exact)) > 0.0  # bf16 really ran
    assert np.max(np.abs(fast - exact)) <= 0.02
    for e, f in zip(exact, fast):
        # Any pair bf16 orders differently from fp32 is a near-tie in fp32.
        swapped = [(i, j) for i, j in combinations(range(len(docs)), 2) if (e[i] - e[j]) * (f[i] - f[j]) < 0]
        assert all(abs(e[i] - e[j]) <= 0.02 for i, j in swapped), swapped
        assert len(set(np.argsort(-e)[:10]) & set(np.argsort(-f)[:10])) >= 9
