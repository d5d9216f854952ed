"""Fault injection: kill -9 at named points of training, checkpointing, the best-adapter swap,
promotion and rollback (RAGWELD_FAULT), then check the store's integrity, the run's status, that
the active link agrees with the store's lineage, and that resume ends exactly where an
uninterrupted run does. Also: a full disk (ENOSPC injected at a write) fails the run cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from backends.adapters import verify_adapter
from store import RunStore
from tests.trainers.run_helpers import REPO, run_cli, store_runs, write_config
from trainers.engine_base import read_state

SETTINGS = dict(max_steps=6, eval_every=2, checkpoint_every=2, auto_promote=False)


def run_with_fault(*args: str, fault: str, var: str = "RAGWELD_FAULT") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ragweld_tui.cli", *args], capture_output=True, text=True,
                          env={**os.environ, var: fault}, timeout=600, cwd=REPO)


def integrity(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        result = conn.execute("PRAGMA integrity_check").fetchone()[0]
    conn.close()
    return result


def telemetry_steps(db: Path, run_id: str) -> Counter:
    async def read():
        async with await RunStore.open(db) as store:
            return Counter(e.step for e in await store.events_since(run_id, 0, 100_000) if e.event.type == "telemetry")
    return asyncio.run(read())


def final_lora(runs: Path, run_id: str):
    (last,) = sorted((runs / run_id / "checkpoints").glob("step-*"))[-1:]
    return read_state(last)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("reference")
    assert run_cli("--run", str(write_config(folder, "torch", **SETTINGS))).returncode == 0
    (run,) = store_runs(folder / "db.sqlite")
    return run, final_lora(folder / "runs", run.id)


@pytest.mark.parametrize("point", ["train.after_step@3", "checkpoint.before_rename@2", "checkpoint.after_rename@2",
                                   "adapter.between_renames@2"])
def test_kill_during_training_then_resume_exactly(tmp_path: Path, reference, point: str) -> None:
    config = write_config(tmp_path, "torch", **SETTINGS)
    killed = run_with_fault("--run", str(config), fault=point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    db = tmp_path / "db.sqlite"
    assert integrity(db) == "ok"
    (run,) = store_runs(db)
    assert run.status == "interrupted"
    resumed = run_cli("--run", str(config), "--resume", run.id)
    assert resumed.returncode == 0, resumed.stderr
    (done,) = store_runs(db)
    assert done.status == "completed" and integrity(db) == "ok"
    ref_run, ref_state = reference
    state = final_lora(tmp_path / "runs", run.id)
    assert state.step == ref_state.step == 6
    for name, (a, b) in ref_state.lora.modules.items():
        np.testing.assert_allclose(state.lora.modules[name][0], a, atol=1e-6)
        np.testing.assert_allclose(state.lora.modules[name][1], b, atol=1e-6)
    assert done.best is not None and abs(done.best - ref_run.best) <= 1e-6
    steps = telemetry_steps(db, run.id)
    assert sorted(steps) == list(range(1, 7)) and set(steps.values()) == {1}
    verify_adapter(tmp_path / "runs" / run.id / "adapter")


def test_a_full_disk_at_a_checkpoint_fails_the_run_cleanly(tmp_path: Path) -> None:
    config = write_config(tmp_path, "torch", **SETTINGS)
    result = run_with_fault("--run", str(config), fault="checkpoint.before_rename@2", var="RAGWELD_FAULT_ENOSPC")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "No space left on device" in result.stdout and "after 3 steps" not in result.stdout
    assert "failed after 4 steps" in result.stdout
    (run,) = store_runs(tmp_path / "db.sqlite")
    assert run.status == "failed" and "No space left" in (run.error or "")
    listing = run_cli("--config", str(config), "runs")
    assert listing.returncode == 0 and run.id in listing.stdout


def active_and_lineage(folder: Path) -> tuple[str | None, str | None, list]:
    link = folder / "active" / "reranker"
    served = Path(os.readlink(link)).name if link.is_symlink() else None

    async def read():
        async with await RunStore.open(folder / "db.sqlite") as store:
            return await store.active_run("reranker"), [(p.run_id, p.replaced_run_id) for p in await store.promotions()]
    recorded, lineage = asyncio.run(read())
    return served, recorded, lineage


def leftovers(folder: Path) -> list[str]:
    active = folder / "active"
    names = [p.name for p in active.glob(".reranker.link-*")] + [p.name for p in active.glob(".reranker.intent*")]
    return names + [p.name for p in (active / ".versions" / "reranker").glob(".*")]


def test_kills_in_promotion_and_rollback_are_reconciled(tmp_path: Path) -> None:
    config = write_config(tmp_path, "torch", max_steps=2, eval_every=2, checkpoint_every=2, auto_promote=False)
    for seed in (0, 1):
        config.write_text(config.read_text().replace("seed = 0\n", "") + f"seed = {seed}\n")
        assert run_cli("--run", str(config)).returncode == 0
    a, b = (r.id for r in sorted(store_runs(tmp_path / "db.sqlite"), key=lambda r: r.created_at))
    assert run_cli("--config", str(config), "promote", a, "--force").returncode == 0

    # Killed after the swap, before the commit: the link serves b, the store still says a.
    assert run_with_fault("--config", str(config), "promote", b, "--force", fault="promote.after_swap").returncode == -9
    served, recorded, _ = active_and_lineage(tmp_path)
    assert (served, recorded) == (b, a)
    # The next rollback reconciles first (b replaced a), then rolls back to a.
    result = run_cli("--config", str(config), "rollback")
    assert result.returncode == 0, result.stderr
    served, recorded, lineage = active_and_lineage(tmp_path)
    assert served == recorded == a and (b, a) in lineage and not leftovers(tmp_path)

    # Killed before the swap: nothing changed; the intent is cleaned up by the next command.
    assert run_with_fault("--config", str(config), "promote", b, "--force", fault="promote.before_swap").returncode == -9
    served, recorded, _ = active_and_lineage(tmp_path)
    assert served == recorded == a

    # Killed after a rollback's swap: the link serves the base; the next promote reconciles, then promotes b.
    assert run_with_fault("--config", str(config), "rollback", fault="rollback.after_swap").returncode == -9
    assert active_and_lineage(tmp_path)[0] is None
    assert run_cli("--config", str(config), "promote", b, "--force").returncode == 0
    served, recorded, lineage = active_and_lineage(tmp_path)
    assert served == recorded == b and lineage[-2:] == [(None, a), (b, None)] and not leftovers(tmp_path)

    # Two promotes racing: both succeed one after the other; link and lineage agree, no run replaced twice.
    procs = [subprocess.Popen([sys.executable, "-m", "ragweld_tui.cli", "--config", str(config), "promote", run_id,
                               "--force"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for run_id in (a, b)]
    assert [p.wait(timeout=600) for p in procs] == [0, 0]
    served, recorded, lineage = active_and_lineage(tmp_path)
    assert served == recorded == lineage[-1][0]
    replaced = [r for _, r in lineage[-2:]]
    assert lineage[-1][1] == lineage[-2][0] and len(set(replaced)) == 2
    assert integrity(tmp_path / "db.sqlite") == "ok"
