"""`ragweld-tui serve` refuses a bad setup with one line and exit 2, before anything listens."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from store import RunStore, ServerRecord
from tests.serve.server_helpers import REPO_ROOT, ServerProcess, write_serve_config


def serve(*args: str, config: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "ragweld_tui.cli"] + (["--config", str(config)] if config else []) + ["serve", *args]
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize(("serve_section", "model", "message"), [
    ("", "/nonexistent/model", "/nonexistent/model does not exist"),
    ('token_env = "RAGWELD_TEST_UNSET_TOKEN"', None, "RAGWELD_TEST_UNSET_TOKEN, which is not set"),
    ('feedback_path = "/proc/no/such/feedback.jsonl"', None, "cannot open the feedback file"),
    ("max_queue = 0", None, "[serve].max_queue"),
    ("max_batch = 3", None, "[serve].max_batch"),
])
def test_bad_setups_are_one_line(tiny_model_dir: Path, tmp_path: Path, serve_section: str, model: str | None,
                                 message: str) -> None:
    config = write_serve_config(tmp_path, Path(model) if model else tiny_model_dir, serve=serve_section)
    result = serve("--port", "0", config=config)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "ragweld.sqlite").exists()  # nothing registered


def test_a_port_in_use_and_a_bad_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = serve("--port", str(taken.getsockname()[1]))
    assert result.returncode == 2 and "cannot listen on 127.0.0.1" in result.stderr and "Traceback" not in result.stderr
    result = serve("--port", "70000")
    assert result.returncode == 2 and "--port 70000" in result.stderr


def test_ctrl_c_stops_cleanly_and_marks_the_server_stopped(tiny_model_dir: Path, tmp_path: Path) -> None:
    server = ServerProcess(write_serve_config(tmp_path, tiny_model_dir))
    server.wait_ready()
    assert server.stop(signal.SIGINT) == 0
    assert server.lines[-1].strip() == "stopped" and "Traceback" not in server.stderr()
    records = asyncio.run(list_servers(tmp_path))
    assert [r.state for r in records] == ["stopped"]


async def list_servers(folder: Path) -> list[ServerRecord]:
    async with await RunStore.open(folder / "ragweld.sqlite", create=False) as store:
        return await store.list_servers(include_finished=True)
