"""Data-parallel runs (`--nproc 2`, gloo on CPU and MLX's loopback ring): the adapter equals a
one-process run's on the same global batches, rank 0 alone writes, a killed rank interrupts the
run (resumable with another process count, exactly)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from backends.adapters import LoraWeights
from ragweld_tui.config import load_config
from store import RunStore
from tests.trainers.run_helpers import REPO, run_cli, store_runs, write_config
from trainers.engine_base import read_state
from trainers.plan import prepare_plan

STEPS = 3
SETTINGS = dict(max_steps=STEPS, eval_every=100, checkpoint_every=1, auto_promote=False, batch_size=5)


def one_process_adapter(config: Path, steps: int) -> LoraWeights:
    """The adapter after `steps` steps of a plain one-process engine on the run's own batches."""
    plan = prepare_plan(load_config(str(config)))
    engine = plan.make_engine()
    try:
        for step in range(steps):
            engine.train_step(plan.batches_for(step))
        return engine.lora_weights()
    finally:
        engine.close()


def final_adapter(folder: Path, run_id: str, steps: int) -> LoraWeights:
    state = read_state(folder / "runs" / run_id / "checkpoints" / f"step-{steps:07d}")
    assert state.step == steps
    return state.lora


def max_difference(a: LoraWeights, b: LoraWeights) -> float:
    return max(float(np.abs(a.modules[n][i] - b.modules[n][i]).max()) for n in a.modules for i in (0, 1))


def metric_steps(db: Path, run_id: str) -> list[int]:
    async def read() -> list[int]:
        async with await RunStore.open(db) as store:
            events = await store.events_since(run_id, 0, 10_000)
        return [e.step for e in events if e.event.type == "metrics" and e.step is not None]
    return asyncio.run(read())


def check_one_owner(folder: Path, proc: subprocess.CompletedProcess[str]) -> str:
    """One run in the store with one event stream and world size 2; files only from rank 0."""
    (run,) = store_runs(folder / "db.sqlite")
    assert run.status == "completed" and run.world_size == 2
    assert metric_steps(folder / "db.sqlite", run.id) == list(range(1, STEPS + 1))
    assert [p.name for p in (folder / "runs").iterdir()] == [run.id]
    rel = sorted(str(p.relative_to(folder / "runs" / run.id)) for p in (folder / "runs" / run.id).rglob("*")
                 if p.is_file())
    kept = [f"checkpoints/step-{s:07d}/{f}" for s in (STEPS - 1, STEPS)
            for f in ("lora.safetensors", "optimizer.safetensors", "state.json", "trainer.json")]
    assert "adapter/manifest.json" in rel  # the adapter's own files are the backend's format
    assert [p for p in rel if not p.startswith("adapter/")] == sorted(
        [*kept, "rankings/base.run", "rankings/qrels.txt", "rankings/tuned.run", "telemetry_origin.safetensors"])
    assert proc.stdout.count(f"run {run.id}: completed") == 1  # rank 1 printed nothing
    return run.id


@pytest.mark.slow  # two training processes and their launcher: 50-80 s on a loaded 2-core CPU
@pytest.mark.parametrize("backend", ["torch", "mlx"])
def test_two_processes_equal_one_process(tmp_path: Path, backend: str) -> None:
    """torchrun with gloo, or mlx.launch's ring on the loopback."""
    if backend == "mlx":
        pytest.importorskip("mlx.core")
    config = write_config(tmp_path, backend, **SETTINGS)
    proc = run_cli("--run", str(config), "--nproc", "2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    run_id = check_one_owner(tmp_path, proc)
    difference = max_difference(final_adapter(tmp_path, run_id, STEPS), one_process_adapter(config, STEPS))
    print(f"2 processes vs 1: max |ΔLoRA| {difference:.2e}")  # the README quotes it (pytest -s)
    assert difference <= 1e-5


def rank_pid(config: Path, rank: int, variable: str) -> int | None:
    """The pid of the training process of `rank` running `config` (the launcher sets `variable` to its rank)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(config).encode() in cmdline and b"ragweld_tui.cli" in cmdline and f"{variable}={rank}".encode() in environ:
            return int(entry.name)
    return None


def wait_for_step(db: Path, step: int, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.exists():
            for run in store_runs(db):
                if metric_steps(db, run.id)[-1:] >= [step]:
                    return run.id
        time.sleep(0.2)
    raise TimeoutError(f"step {step} never came")


@pytest.mark.slow  # two training processes and their launcher: 80-100 s on a loaded 2-core CPU
@pytest.mark.parametrize("backend", ["torch", "mlx"])
def test_killed_rank_interrupts_the_run_and_it_resumes_in_one_process_exactly(tmp_path: Path, backend: str) -> None:
    """torchrun's gloo fails at once; MLX's ring was seen to wait forever, so rank 0's step deadline
    (`collective_timeout_s`) is what ends that run."""
    if backend == "mlx":
        pytest.importorskip("mlx.core")
    steps = 16  # room after step 2: the fast torch run could finish 6 steps before the kill landed
    config = write_config(tmp_path, backend, **(SETTINGS | dict(max_steps=steps, collective_timeout_s=20)))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "ragweld_tui.cli", "--run", str(config), "--nproc", "2"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        run_id = wait_for_step(tmp_path / "db.sqlite", 2)
        victim = rank_pid(config, 1, "RANK" if backend == "torch" else "MLX_RANK")
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        out, _ = proc.communicate(timeout=90)  # no hang: the collective timeout is 20 s
    finally:
        proc.kill()
    assert proc.returncode == 1 and time.monotonic() - started < 200, out[-2000:]
    (run,) = store_runs(tmp_path / "db.sqlite")
    assert run.id == run_id and run.status == "interrupted", (run.status, run.error)
    done_steps = max(metric_steps(tmp_path / "db.sqlite", run_id))
    assert 2 <= done_steps < steps

    resumed = run_cli("--run", str(config), "--resume", run_id, "--nproc", "1")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    (run,) = store_runs(tmp_path / "db.sqlite")
    assert run.status == "completed" and run.world_size == 1
    assert metric_steps(tmp_path / "db.sqlite", run_id) == list(range(1, steps + 1))
    difference = max_difference(final_adapter(tmp_path, run_id, steps), one_process_adapter(config, steps))
    print(f"killed at step {done_steps}, resumed in 1 process: max |ΔLoRA| {difference:.2e}")
    assert difference <= 1e-5


def test_nproc_must_be_positive(tmp_path: Path) -> None:
    config = write_config(tmp_path, "torch")
    for value in ("0", "-3"):
        proc = run_cli("--run", str(config), "--nproc", value)
        assert proc.returncode == 2
        assert proc.stderr.strip().splitlines() == [f"error: --nproc must be at least 1 (got {value})"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]


def test_shards_split_a_batch_into_whole_examples_once() -> None:
    from trainers.engine_base import Batch
    from trainers.world import World

    for units in range(0, 10):
        for size in range(1, 5):
            parts = [World(rank, size).shard(units) for rank in range(size)]
            assert [i for start, stop in parts for i in range(start, stop)] == list(range(units))
            assert max(b - a for a, b in parts) - min(b - a for a, b in parts) <= 1
    listwise = Batch([[g, d] for g in range(3) for d in range(4)])  # 3 groups of 4 rows
    assert listwise.shard(*World(1, 2).shard(3), 4) == Batch([[2, d] for d in range(4)])
    assert listwise.shard(*World(3, 4).shard(3), 4) is None  # an empty shard: this rank only sums
    pointwise = Batch([[1], [2], [3]], (1.0, 0.0, 1.0))
    assert pointwise.shard(*World(0, 2).shard(3), 1) == Batch([[1], [2]], (1.0, 0.0))
