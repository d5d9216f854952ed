"""Kill -9 a training run at a random step, resume it, and get the same adapter — and byte-identical
TREC rankings of the first stage, the base and the tuned adapter — as an uninterrupted run."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from store import RunStore
from tests.trainers.run_helpers import REPO, run_cli, store_runs, write_config
from tests.trainers.verdict_helpers import write_demo_beir
from trainers.engine_base import read_state


def final_state(runs_root: Path, run_id: str):
    checkpoints = sorted((runs_root / run_id / "checkpoints").glob("step-*"))
    return read_state(checkpoints[-1])


async def wait_for_checkpoint(db: Path, min_step: int, timeout: float = 300) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.exists():
            store = await RunStore.open(db)
            try:
                for run in await store.list_runs():
                    events = await store.events_since(run.id, 0, 10_000)
                    if any(e.event.type == "checkpoint" and e.event.step >= min_step for e in events):
                        return run.id
            finally:
                await store.close()
        await asyncio.sleep(0.2)
    raise TimeoutError("no checkpoint appeared")


def test_resume_after_kill_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    settings = dict(max_steps=40, checkpoint_every=2, eval_every=20, auto_promote=False)
    data = str(write_demo_beir(tmp_path / "data", n_queries=40))  # a corpus: first-stage candidates and TREC files
    whole = tmp_path / "whole"
    whole.mkdir()
    assert run_cli("--run", str(write_config(whole, "torch", data=data, **settings))).returncode == 0
    (reference,) = store_runs(whole / "db.sqlite")

    cut = tmp_path / "cut"
    cut.mkdir()
    config = write_config(cut, "torch", data=data, **settings)
    proc = subprocess.Popen([sys.executable, "-m", "ragweld_tui.cli", "--run", str(config)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    try:
        rng = random.Random()
        run_id = asyncio.run(wait_for_checkpoint(cut / "db.sqlite", rng.choice([2, 4, 6, 8])))
        time.sleep(rng.uniform(0.0, 0.3))  # somewhere inside a later step, well before step 40
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    (killed,) = store_runs(cut / "db.sqlite")  # opening the store marks the dead run interrupted
    assert killed.id == run_id and killed.status == "interrupted"

    resumed = run_cli("--run", str(config), "--resume", run_id)
    assert resumed.returncode == 0, resumed.stderr
    (done,) = store_runs(cut / "db.sqlite")
    assert done.status == "completed"

    expected, got = final_state(whole / "runs", reference.id), final_state(cut / "runs", run_id)
    assert expected.step == got.step == 40
    for name, (a, b) in expected.lora.modules.items():
        np.testing.assert_allclose(got.lora.modules[name][0], a, atol=1e-6)
        np.testing.assert_allclose(got.lora.modules[name][1], b, atol=1e-6)
    assert done.best is not None and abs(done.best - reference.best) <= 1e-6
    files = sorted(p.name for p in (whole / "runs" / reference.id / "rankings").iterdir())
    assert files == ["base.run", "first_stage.run", "qrels.txt", "tuned.run"]
    for name in files:
        expected_bytes = (whole / "runs" / reference.id / "rankings" / name).read_bytes()
        assert (cut / "runs" / run_id / "rankings" / name).read_bytes() == expected_bytes, name
