"""Shared fixtures: an offline, isolated environment and tiny Qwen3 models built on the spot."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
CISI_DIR = REPO_ROOT.parent / "shared" / "data" / "cisi"


def pytest_configure(config: pytest.Config) -> None:
    # Nothing may reach a model hub in tests, and nothing may touch the user's real data or cache.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    base = Path(config.rootpath) / ".pytest_cache" / "ragweld"
    os.environ["RAGWELD_CACHE"] = str(base / "cache")
    os.environ["RAGWELD_HOME"] = str(base / "home")
    os.environ.pop("RAGWELD_BACKEND", None)
    os.environ.pop("RAGWELD_DEVICE", None)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded default's architecture and tokenizer, in a fresh folder (fp32, seeded)."""
    from backends.embedded import TinyQwen3Spec, write_tiny_qwen3

    return write_tiny_qwen3(tmp_path_factory.mktemp("models") / "tiny", TinyQwen3Spec())


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model_dir))


@pytest.fixture(scope="session")
def cisi_docs() -> list[str]:
    """CISI abstracts from ../shared (real text of mixed lengths); skips when the data is absent."""
    import json

    corpus = CISI_DIR / "corpus.jsonl"
    if not corpus.is_file():
        pytest.skip(f"{corpus} not found")
    with corpus.open() as handle:
        return [" ".join(filter(None, (d.get("title"), d.get("text")))) for d in map(json.loads, handle)]
