"""Building training engines: the one place that picks a backend's engine class for a run kind.

The factories live apart from the protocols (`trainers.engine_base`, `trainers.chat_engine`) so the
backend modules can import the protocols' helpers without an import circle; each factory imports
only the framework it needs.
"""

from __future__ import annotations

from pathlib import Path

from backends.adapters import LoraWeights
from trainers.chat_engine import ChatTrainEngine
from trainers.engine_base import RerankTrainEngine
from trainers.settings import LoraConfig, TrainConfig

BACKENDS = ("torch", "mlx")


def _unknown(backend: str) -> ValueError:
    return ValueError(f"unknown training backend {backend!r}; expected {' or '.join(map(repr, BACKENDS))}")


def make_train_engine(backend: str, model_dir: Path, lora: LoraConfig, train: TrainConfig,
                      answer_ids: tuple[int, int], pad_id: int, *, seed: int | None = None,
                      init_lora: LoraWeights | None = None, device: str = "cpu") -> RerankTrainEngine:
    """The reranker engine of `backend` ("torch" or "mlx"), importing only that framework."""
    if backend == "torch":
        from trainers.engine_torch import TorchTrainEngine
        return TorchTrainEngine(model_dir, lora, train, answer_ids, pad_id, seed=seed, init_lora=init_lora,
                                device=device)
    if backend == "mlx":
        from trainers.engine_mlx import MlxTrainEngine
        return MlxTrainEngine(model_dir, lora, train, answer_ids, pad_id, seed=seed, init_lora=init_lora,
                              device=device)
    raise _unknown(backend)


def make_chat_engine(backend: str, model_dir: Path, lora: LoraConfig, train: TrainConfig, pad_id: int, *,
                     seed: int | None = None, init_lora: LoraWeights | None = None,
                     device: str = "cpu") -> ChatTrainEngine:
    """The chat engine of `backend` ("torch" or "mlx"), importing only that framework."""
    if backend == "torch":
        from trainers.chat_engine_torch import TorchChatEngine
        return TorchChatEngine(model_dir, lora, train, pad_id, seed=seed, init_lora=init_lora, device=device)
    if backend == "mlx":
        from trainers.chat_engine_mlx import MlxChatEngine
        return MlxChatEngine(model_dir, lora, train, pad_id, seed=seed, init_lora=init_lora, device=device)
    raise _unknown(backend)
