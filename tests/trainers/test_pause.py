"""Cancel is a pause: SIGINT during `--run` stops after the current step with a checkpoint of it, the
run lists its adapter and checkpoints, its best adapter can be promoted through the gate, and
`--resume` continues it to the same adapter and figures as an uninterrupted run."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.trainers.run_helpers import REPO, run_cli, store_runs, write_config
from tests.trainers.test_resume import final_state


async def wait_for_eval(db: Path, timeout: float = 300) -> str:
    """The run id once its first dev evaluation is in the store."""
    from store import RunStore

    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if db.exists():
            store = await RunStore.open(db)
            try:
                for run in await store.list_runs():
                    if any(e.event.type == "eval" and e.event.split == "dev"
                           for e in await store.events_since(run.id, 0, 10_000)):
                        return run.id
            finally:
                await store.close()
        await asyncio.sleep(0.1)
    raise TimeoutError("no evaluation appeared")


def read_store(db: Path, run_id: str):
    """(run, its events as records (with their step), its artifacts)."""
    from store import RunStore

    async def read():
        store = await RunStore.open(db)
        try:
            return (await store.get_run(run_id), await store.events_since(run_id, 0, 100_000),
                    await store.artifacts(run_id))
        finally:
            await store.close()

    return asyncio.run(read())


def test_sigint_pauses_a_run_that_resumes_exactly_and_promotes(tmp_path: Path) -> None:
    settings = dict(max_steps=30, checkpoint_every=7, eval_every=3, auto_promote=False, early_stopping_patience=100)
    whole = tmp_path / "whole"
    whole.mkdir()
    assert run_cli("--run", str(write_config(whole, "torch", **settings))).returncode == 0
    (reference,) = store_runs(whole / "db.sqlite")

    cut = tmp_path / "cut"
    cut.mkdir()
    config = write_config(cut, "torch", **settings)
    proc = subprocess.Popen([sys.executable, "-m", "ragweld_tui.cli", "--run", str(config)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        run_id = asyncio.run(wait_for_eval(cut / "db.sqlite"))
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    run, events, artifacts = read_store(cut / "db.sqlite", run_id)
    steps = [e.step for e in events if e.event.type == "metrics"]
    stopped = max(steps)
    assert run.status == "cancelled" and 3 <= stopped < 30, (run.status, stopped)
    (state,) = [e.event for e in events if e.event.type == "state" and e.event.status == "cancelled"]
    assert f"cancelled at step {stopped}; checkpoint at step {stopped} kept" in (state.reason or "")
    assert (cut / "runs" / run_id / "checkpoints" / f"step-{stopped:07d}").is_dir()  # written at cancel time
    paths = {a.path for a in artifacts}
    assert "adapter/manifest.json" in paths and any(a.kind == "adapter" for a in artifacts)
    assert any(p.startswith(f"checkpoints/step-{stopped:07d}/") for p in paths)
    assert all((cut / "runs" / run_id / a.path).is_file() for a in artifacts)

    # Its best adapter goes through the gate like a completed run's (forced: the metric may not win).
    promoted = run_cli("--config", str(config), "promote", run_id, "--force")
    assert promoted.returncode == 0 and f"promoted {run_id}" in promoted.stdout, promoted.stderr
    (paused,) = store_runs(cut / "db.sqlite")
    assert paused.promoted and paused.status == "cancelled"

    resumed = run_cli("--run", str(config), "--resume", run_id)
    assert resumed.returncode == 0, resumed.stderr
    run, events, artifacts = read_store(cut / "db.sqlite", run_id)
    assert run.status == "completed"
    metric_steps = [e.step for e in events if e.event.type == "metrics"]
    assert metric_steps == list(range(1, 31))  # each step once
    expected, got = final_state(whole / "runs", reference.id), final_state(cut / "runs", run_id)
    assert expected.step == got.step == 30
    for name, (a, b) in expected.lora.modules.items():
        np.testing.assert_allclose(got.lora.modules[name][0], a, atol=1e-6)
        np.testing.assert_allclose(got.lora.modules[name][1], b, atol=1e-6)
    assert run.best is not None and abs(run.best - reference.best) <= 1e-6
    kept = sorted(p.name for p in (cut / "runs" / run_id / "checkpoints").iterdir())
    listed = {a.path.split("/")[1] for a in artifacts if a.kind == "checkpoint"}
    assert listed == set(kept)  # pruned checkpoints are no longer listed


def test_a_completed_run_is_not_resumable(tmp_path: Path) -> None:
    config = write_config(tmp_path, "torch", max_steps=2, eval_every=1, auto_promote=False)
    assert run_cli("--run", str(config)).returncode == 0
    (run,) = store_runs(tmp_path / "db.sqlite")
    again = run_cli("--run", str(config), "--resume", run.id)
    assert again.returncode == 2 and "only interrupted or cancelled runs can be resumed" in again.stderr
