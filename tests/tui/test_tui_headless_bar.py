"""`ragweld-tui --run` on a real 80-column terminal (tmux): the progress bar stays on one line.

A bar wider than the terminal wraps, and redrawing it with a carriage return then leaves a line per
update; rich's bar is fitted to the width and redrawn in place. Skipped without tmux.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ragweld_tui.commands.train import ProgressPrinter
from tests.trainers.verdict_helpers import write_run_config
from tests.tui.test_tui_tmux import Pane
from trainers.run_loop import ProgressUpdate

REPO = Path(__file__).resolve().parents[2]


def test_plain_lines_when_not_a_terminal() -> None:
    stream = io.StringIO()
    printer = ProgressPrinter(stream)
    for step in range(1, 21):  # 30 s of warm-up, then 1 s a step
        elapsed = 30.0 * min(step, 3) + max(0, step - 3) * 1.0
        printer(ProgressUpdate(step, 100, 0.5, elapsed, 1000.0, {"mrr@10": 0.5} if step == 20 else None,
                               ["loss spike"] if step == 5 else []))
    printer.close()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "ALARM: loss spike"
    assert re.fullmatch(r"step 10/100 loss 0\.5000 1,000 tok/s elapsed \d+s eta 90s", lines[1]), lines
    assert re.fullmatch(r"step 20/100 .* eta 80s  eval mrr@10=0\.5000", lines[2]) and len(lines) == 3, lines


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_the_bar_stays_on_one_line_at_80_columns(tmp_path: Path) -> None:
    config = write_run_config(tmp_path, "bar", max_steps=30, eval_every=10, checkpoint_every=10, auto_promote=False)
    status = tmp_path / "exit-status"
    command = (f"{shlex.quote(sys.executable)} -m ragweld_tui.cli --run {shlex.quote(str(config))}; "
               f"echo $? > {shlex.quote(str(status))}; sleep 60")
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAGWELD_HOME": str(tmp_path / "home")}
    env_args = [arg for key in ("PYTHONPATH", "RAGWELD_HOME", "HF_HUB_OFFLINE") if key in env
                for arg in ("-e", f"{key}={env[key]}")]
    pane = Pane(tmp_path / "tmux.sock")
    pane.tmux("-f", "/dev/null", "new-session", "-d", "-s", "tui", "-x", "80", "-y", "40", *env_args, command)
    try:
        seen_mid_run = False
        deadline = time.monotonic() + 300
        while not status.exists() and time.monotonic() < deadline:
            text = pane.capture()
            bars = [line for line in text.splitlines() if "━" in line]
            assert len(bars) <= 1, text  # never a line left behind per update
            seen_mid_run |= bool(bars) and "ETA" in bars[0]
            time.sleep(0.2)
        assert status.exists(), f"the run did not finish:\n{pane.capture()}"
        text = pane.capture()
        assert status.read_text().strip() == "0", text
        bars = [line for line in text.splitlines() if "━" in line]
        assert len(bars) == 1 and bars[0].startswith("step 30/30 ") and "ETA" in bars[0], text
        assert seen_mid_run and len(bars[0]) <= 80
        evals = [line for line in text.splitlines() if re.match(r"step (10|20|30)/30 eval mrr@10=", line)]
        assert len(evals) == 3, text  # evaluations print above the bar and stay
        assert re.search(r"run r[\w-]+: completed after 30 steps", text), text
    finally:
        subprocess.run(["tmux", "-S", pane.socket, "kill-server"], capture_output=True)
