"""Running `ragweld-tui serve` as a real process on a free loopback port, and adapters to promote."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from backends.adapters import LoraWeights, Manifest, write_manifest, write_peft_adapter
from backends.models import base_fingerprint
from backends.prompt import template_fingerprint
from trainers.active_adapter import install_version, point_active

REPO_ROOT = Path(__file__).resolve().parents[2]
RUN_A, RUN_B = "r20260101-120000-0000000a", "r20260101-120000-0000000b"  # run ids of the store's form
LISTENING = re.compile(r"listening on (http://\S+)")
QUERY = "citation indexing of scientific journals"
DOCS = ["citation indexes for science", "a recipe for sourdough bread", "indexing of journals by citation",
        "weather report for the weekend", "bibliographic coupling between papers"]


def write_serve_config(folder: Path, model_dir: Path, *, serving: str = "", serve: str = "") -> Path:
    """A config for a server on the tiny model with its own store, active adapter and feedback file."""
    folder.mkdir(parents=True, exist_ok=True)
    if "feedback_path" not in serve:
        serve += f'\nfeedback_path = "{folder / "feedback.jsonl"}"'
    config = folder / "config.toml"
    config.write_text(f"""
[model]
base = "{model_dir}"
backend = "torch"

[prompt]
max_length = 512

[serving]
active_adapter = "{folder / 'active'}"
{serving}

[store]
path = "{folder / 'ragweld.sqlite'}"

[serve]
{serve}
""")
    return config


class ServerProcess:
    """`ragweld-tui serve --port 0` in a child process; `url` once it printed its listening line."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log = config.parent / "serve.log"
        self.lines: list[str] = []
        self.url = ""
        self._ready = threading.Event()
        self._handle = self.log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ragweld_tui.cli", "--config", str(config), "serve", "--port", "0"],
            cwd=REPO_ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=self._handle,
            text=True, start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            match = LISTENING.search(line)
            if match:
                self.url = match.group(1)
                self._ready.set()

    def wait_ready(self, timeout: float = 180.0) -> str:
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the server did not start (exit {self.proc.poll()}):\n{self.stderr()}")
        return self.url

    def stderr(self) -> str:
        if not self._handle.closed:
            self._handle.flush()
        return self.log.read_text()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._handle.close()
        return code

    def __enter__(self) -> ServerProcess:
        self.wait_ready()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def random_lora(seed: int, hidden: int = 64, layers: int = 2) -> LoraWeights:
    """A LoRA for the tiny model strong enough to move its scores visibly."""
    rng = np.random.default_rng(seed)
    modules = {}
    for i in range(layers):
        for name, out in (("self_attn.q_proj", 64), ("mlp.up_proj", 192)):
            modules[f"model.layers.{i}.{name}"] = (rng.normal(0, 0.3, (4, hidden)).astype(np.float32),
                                                   rng.normal(0, 0.3, (out, 4)).astype(np.float32))
    return LoraWeights(modules, scale=2.0, rank=4)


def make_adapter(folder: Path, seed: int, model_dir: Path, run_id: str) -> Path:
    """A complete adapter folder (PEFT format + manifest) as a run would leave it."""
    write_peft_adapter(folder, random_lora(seed), str(model_dir))
    write_manifest(folder, Manifest(base_model=str(model_dir), base_fingerprint=base_fingerprint(model_dir),
                                    template_fingerprint=template_fingerprint(), backend="torch", files={},
                                    run_id=run_id, metrics={"mrr@10": 0.5}))
    return folder


def promote(adapter: Path | None, active: Path, run_id: str = "") -> None:
    """What `promote` does on disk: an immutable version folder, then one atomic link swap
    (None: roll back to the plain base)."""
    point_active(active, None if adapter is None else install_version(adapter, active, run_id))
