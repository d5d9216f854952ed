"""Fixtures for the agent tests: the embedded chat model's architecture, a 4-bit MLX copy of it,
and an adapter taught one reply (so generation has something definite to say and to stop after)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.agent.helpers import OTHER, TAUGHT, one_thread, teach_adapter


@pytest.fixture(scope="package", autouse=True)
def one_torch_thread():
    """The agent tests run torch on one thread (see `helpers.one_thread`); restored afterwards."""
    with one_thread():
        yield


@pytest.fixture(scope="session")
def chat_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded chat model (hidden 64, 2 layers, real Qwen BPE), built offline in a fresh folder."""
    from backends.embedded import EMBEDDED_MODELS, write_tiny_qwen3

    return write_tiny_qwen3(tmp_path_factory.mktemp("chat") / "tiny-chat", EMBEDDED_MODELS["tiny-qwen3-chat"])


@pytest.fixture(scope="session")
def chat_tokenizer(chat_model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(chat_model_dir))


@pytest.fixture(scope="session")
def quantized_dir(chat_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The chat model quantized to 4 bits (group size 64 = hidden size) with mlx-lm's utilities."""
    from backends.mlx_thread import mlx_worker
    from tests.mlx_models import quantize_copy

    dest = tmp_path_factory.mktemp("chat4") / "tiny-chat-4bit"
    return mlx_worker().call(quantize_copy, chat_model_dir, dest, 4)


@pytest.fixture(scope="session")
def taught_adapter(chat_model_dir: Path, chat_tokenizer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An agent adapter (manifest and all) that makes the tiny model answer TAUGHT's question exactly."""
    return teach_adapter(chat_model_dir, chat_tokenizer, TAUGHT, tmp_path_factory.mktemp("taught") / "adapter")


@pytest.fixture(scope="session")
def other_adapter(chat_model_dir: Path, chat_tokenizer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second agent adapter that gives the same question another answer (OTHER)."""
    return teach_adapter(chat_model_dir, chat_tokenizer, OTHER, tmp_path_factory.mktemp("other") / "adapter")
