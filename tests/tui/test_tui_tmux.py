"""Real-terminal smoke test: `ragweld-tui --db` in an 80×24 tmux pane, driven with send-keys.

It opens, visits every view, the inspector and the help, and quits with exit status 0. Polling the
pane is the only way to watch a real terminal, so this test waits on capture-pane (bounded).
Skipped when tmux is not installed (scripts/setup.sh installs it).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.tui.fixture_db import build_fixture_db

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Pane:
    """One tmux server on a private socket (never the user's), one 80×24 session."""

    def __init__(self, socket: Path) -> None:
        self.socket = str(socket)

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-S", self.socket, *args], capture_output=True, text=True, check=True).stdout

    def capture(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "tui")

    def wait_for(self, needle: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.capture()
            if needle in text:
                return text
            time.sleep(0.1)
        raise AssertionError(f"{needle!r} did not appear in the pane:\n{self.capture()}")

    def wait_gone(self, needle: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while needle in self.capture():
            assert time.monotonic() < deadline, f"{needle!r} stayed in the pane:\n{self.capture()}"
            time.sleep(0.1)

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "tui", *keys)


def test_tui_in_a_real_terminal(tmp_path: Path) -> None:
    db = build_fixture_db(tmp_path / "store.sqlite")
    status = tmp_path / "exit-status"
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAGWELD_HOME": str(tmp_path / "home"), "TERM": "xterm-256color"}
    command = (f"{shlex.quote(sys.executable)} -m ragweld_tui.cli --db {shlex.quote(str(db))}; "
               f"echo $? > {shlex.quote(str(status))}; sleep 30")
    pane = Pane(tmp_path / "tmux.sock")
    env_args = [arg for key in ("PYTHONPATH", "RAGWELD_HOME", "HF_HUB_OFFLINE") if key in env
                for arg in ("-e", f"{key}={env[key]}")]
    pane.tmux("-f", "/dev/null", "new-session", "-d", "-s", "tui", "-x", "80", "-y", "24", *env_args, command)
    try:
        pane.wait_for("Runs · 4 of 4")
        pane.keys("Down", "Down", "Down", "Enter")
        pane.wait_for("cisi-lora-r8 · r20250101-120000-0000000a")
        pane.keys("[")
        pane.wait_for("level ≥ info")
        pane.keys("1")  # the view key leaves the inspector
        pane.wait_for("Runs · 4 of 4")
        pane.wait_gone("level ≥ info")
        pane.keys("2")
        pane.wait_for("Metrics · cisi-lora-r8")
        pane.wait_for("step 120/120")
        pane.keys("3")
        pane.wait_for("120 points")
        pane.keys("4")
        pane.wait_for("mode reranker")
        # A terminal reads ESC followed at once by a key as Alt+key, so wait for each escape to land.
        pane.keys("Escape")
        pane.wait_for("2 Metrics")
        pane.keys("4")  # back on the prompt, typing goes into it: the q of "quick" must not quit
        pane.keys("quick")
        pane.wait_for("quick")
        assert not status.exists()
        pane.keys("Escape")
        pane.wait_for("2 Metrics")
        pane.keys("1")
        pane.wait_for("Runs · 4 of 4")
        pane.keys("?")
        pane.wait_for("Help · Runs")
        pane.keys("Escape")
        pane.wait_gone("Help · Runs")
        pane.keys("q")
        deadline = time.monotonic() + 20
        while not status.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert status.exists(), f"the app did not exit:\n{pane.capture()}"
        assert status.read_text().strip() == "0"
    finally:
        subprocess.run(["tmux", "-S", pane.socket, "kill-server"], capture_output=True)
