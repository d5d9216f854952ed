"""Helpers for end-to-end run tests: write a config, run the CLI in a subprocess, read the store."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CISI = REPO.parent / "shared" / "data" / "cisi"


def write_config(folder: Path, backend: str = "torch", data: str | None = None, **train: object) -> Path:
    """A small, fast run config with its store, runs and active adapter inside `folder`."""
    settings = {"max_steps": 6, "eval_every": 3, "checkpoint_every": 3, "batch_size": 4, "group_size": 4,
                "learning_rate": 1e-3, "max_length": 160, "warmup_steps": 2, "promote_epsilon": 0.0} | train
    lines = ["[model]", f'backend = "{backend}"', "[store]", f'path = "{folder / "db.sqlite"}"',
             f'runs_root = "{folder / "runs"}"', "[serving]", f'active_adapter = "{folder / "active" / "reranker"}"',
             "[data]", "max_queries = 16", "bm25_candidates = 8", "[train]"]
    if data:
        lines[lines.index("[data]") + 1:lines.index("[data]") + 1] = [f'path = "{data}"']
    lines += [f"{k} = {v!r}".replace("'", '"') if not isinstance(v, bool) else f"{k} = {str(v).lower()}"
              for k, v in settings.items()]
    path = folder / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ragweld_tui.cli", *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=timeout, cwd=REPO)


def store_runs(db: Path):
    """All runs in a store (opened and closed in a private event loop)."""
    from store import RunStore

    async def read():
        store = await RunStore.open(db)
        try:
            return await store.list_runs()
        finally:
            await store.close()

    return asyncio.run(read())
