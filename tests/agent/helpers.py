"""Helpers for the agent tests: conversations, a taught adapter, configs and the CLI."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.trainers.run_helpers import REPO, store_runs

__all__ = ["REPO", "TAUGHT", "OTHER", "agent_cli", "one_thread", "store_runs", "teach_adapter", "write_agent_config",
           "chats"]

TAUGHT = [{"role": "user", "content": "Where is the Eiffel tower?"},
          {"role": "assistant", "content": "The Eiffel tower is in Paris."}]
OTHER = [{"role": "user", "content": "Where is the Eiffel tower?"},
         {"role": "assistant", "content": "Nobody knows where it went."}]


def chats() -> list[list[dict[str, str]]]:
    """A few short conversations, one multi-turn with a system prompt."""
    return [
        [{"role": "user", "content": "What is 2 plus 3?"}, {"role": "assistant", "content": "2 plus 3 is 5."}],
        [{"role": "user", "content": "What is the capital of Peru?"},
         {"role": "assistant", "content": "The capital of Peru is Lima."}],
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello!"},
         {"role": "assistant", "content": "Hi! How can I help?"}, {"role": "user", "content": "What sound does a cow make?"},
         {"role": "assistant", "content": "A cow says moo."}],
        [{"role": "user", "content": "What is the opposite of hot?"},
         {"role": "assistant", "content": "The opposite of hot is cold."}],
    ]


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Torch on one thread for a while: at this size a second thread only adds OpenMP spin-waits,
    which on a busy 2-core box cost seconds per step."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def agent_cli(*args: str, stdin: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`python -m ragweld_tui.cli ARGS` with one OpenMP thread (see `one_thread`)."""
    return subprocess.run([sys.executable, "-m", "ragweld_tui.cli", *args], capture_output=True, text=True, input=stdin,
                          env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=timeout, cwd=REPO)


def teach_adapter(model_dir: Path, tokenizer, conversation: list[dict[str, str]], dest: Path, steps: int = 40) -> Path:
    """Train a PyTorch LoRA until the model says the conversation's reply; write it as an agent adapter."""
    from backends.chat_template import chat_template_fingerprint, encode_chat
    from backends.models import base_fingerprint
    from trainers.settings import LoraConfig, TrainConfig
    from trainers.artifacts import write_adapter_folder
    from trainers.chat_batches import to_batch
    from trainers.chat_engine_torch import TorchChatEngine

    train = TrainConfig(kind="agent", primary_metric="eval_loss", learning_rate=2e-2, warmup_steps=2, max_steps=steps)
    engine = TorchChatEngine(model_dir, LoraConfig(rank=8, alpha=16.0), train, tokenizer.pad_token_id)
    batch = to_batch([encode_chat(tokenizer, conversation)])
    with one_thread():
        for _ in range(steps):
            engine.train_step([batch])
    write_adapter_folder(dest, engine.lora_weights(), backend="torch", num_layers=2, base_model=str(model_dir),
                         base_fingerprint=base_fingerprint(model_dir), template_fingerprint=chat_template_fingerprint(),
                         dataset_fingerprint="taught", kind="agent", run_id="taught", metrics={"eval_loss": 0.0},
                         precision=engine.precision, gradient_checkpointing=False)
    engine.close()
    return dest


def write_agent_config(folder: Path, model: str | Path, backend: str = "torch", data: Path | None = None,
                       **train: object) -> Path:
    """A small agent config with its store, runs and active adapters inside `folder`."""
    settings = {"kind": "agent", "max_steps": 30, "eval_every": 10, "checkpoint_every": 10, "batch_size": 8,
                "learning_rate": 5e-3, "warmup_steps": 3, "max_length": 96, "promote_epsilon": 0.05} | train
    lines = ["[model]", f'base = "{model}"', f'backend = "{backend}"', "[store]", f'path = "{folder / "db.sqlite"}"',
             f'runs_root = "{folder / "runs"}"', "[serving]", f'active_adapter = "{folder / "active" / "reranker"}"',
             "reload_check_s = 0.0", "[data]", 'format = "chat"', "dev_fraction = 0.15"]
    if data is not None:
        lines.append(f'path = "{data}"')
    lines.append("[train]")
    for key, value in settings.items():
        text = str(value).lower() if isinstance(value, bool) else f'"{value}"' if isinstance(value, str) else str(value)
        lines.append(f"{key} = {text}")
    path = folder / "agent.toml"
    path.write_text("\n".join(lines) + "\n")
    return path
