"""`--resume` continues only what the run was, and only under one owner at a time."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from store import RunStore
from tests.trainers.run_helpers import REPO, run_cli, store_runs, write_config
from trainers.resume_check import resume_changes

STORED = {"train": {"max_steps": 6, "learning_rate": 1e-3, "eval_every": 3, "seed": 0, "batch_size": 4},
          "lora": {"rank": 8}, "eval": {"first_stage_k": 100}, "data": {"path": "/a", "seed": 0},
          "store": {"path": "/x"}}


def changed(section: str, key: str, value: object) -> dict:
    return {**STORED, section: {**STORED[section], key: value}}


@pytest.mark.parametrize(("section", "key", "value"), [
    ("train", "learning_rate", 0.025), ("train", "seed", 1), ("train", "batch_size", 8), ("lora", "rank", 16),
    ("eval", "first_stage_k", 10), ("data", "seed", 3), ("train", "max_steps", 3)])
def test_settings_that_define_the_run_are_refused(section: str, key: str, value: object) -> None:
    refused, allowed = resume_changes(STORED, changed(section, key, value), "f1", "f1")
    assert len(refused) == 1 and f"[{section}].{key}" in refused[0] and not allowed


@pytest.mark.parametrize(("section", "key", "value"), [
    ("train", "max_steps", 60), ("train", "eval_every", 5), ("store", "path", "/y"), ("data", "path", "/b")])
def test_safe_settings_are_allowed(section: str, key: str, value: object) -> None:
    refused, allowed = resume_changes(STORED, changed(section, key, value), "f1", "f1")
    assert not refused and len(allowed) == 1 and f"[{section}].{key}" in allowed[0]


def test_other_data_is_refused_even_under_the_same_path() -> None:
    refused, _ = resume_changes(STORED, STORED, "aaaa", "bbbb")
    assert refused == ["data fingerprint aaaa -> bbbb"]


def _interrupt(db: Path, run_id: str) -> None:
    """Make a finished run resumable, as a kill -9 at its last step would have left it."""
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE runs SET status = 'interrupted', finished_at = NULL WHERE id = ?", (run_id,))
    conn.close()


def _events(db: Path, run_id: str) -> list:
    async def read():
        async with await RunStore.open(db) as store:
            return await store.events_since(run_id, 0, 100_000)
    return asyncio.run(read())


def test_resume_refuses_a_changed_run_and_logs_allowed_changes(tmp_path: Path) -> None:
    config = write_config(tmp_path, "torch", max_steps=4, eval_every=2, checkpoint_every=2, auto_promote=False)
    assert run_cli("--run", str(config)).returncode == 0
    db = tmp_path / "db.sqlite"
    (run,) = store_runs(db)
    _interrupt(db, run.id)
    before = len(_events(db, run.id))

    other = tmp_path / "other"
    other.mkdir()
    bad = write_config(other, "torch", max_steps=4, eval_every=2, checkpoint_every=2, auto_promote=False,
                       learning_rate=0.025, seed=3)
    bad.write_text(bad.read_text().replace(str(other), str(tmp_path)))
    result = run_cli("--run", str(bad), "--resume", run.id)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "[train].learning_rate" in result.stderr and "[train].seed" in result.stderr
    (after,) = store_runs(db)
    assert after.status == "interrupted" and len(_events(db, run.id)) == before

    config.write_text(config.read_text().replace("max_steps = 4", "max_steps = 6"))
    result = run_cli("--run", str(config), "--resume", run.id)
    assert result.returncode == 0, result.stderr
    events = _events(db, run.id)
    assert any(e.event.type == "log" and "[train].max_steps 4 -> 6" in e.event.message for e in events)
    steps = Counter(e.step for e in events if e.event.type == "telemetry")
    assert sorted(steps) == list(range(1, 7)) and set(steps.values()) == {1}  # each step recorded once


def test_two_resumes_race_and_exactly_one_wins(tmp_path: Path) -> None:
    config = write_config(tmp_path, "torch", max_steps=2, eval_every=2, checkpoint_every=2, auto_promote=False)
    assert run_cli("--run", str(config)).returncode == 0
    db = tmp_path / "db.sqlite"
    (run,) = store_runs(db)
    _interrupt(db, run.id)
    config.write_text(config.read_text().replace("max_steps = 2", "max_steps = 30"))
    procs = [subprocess.Popen([sys.executable, "-m", "ragweld_tui.cli", "--run", str(config), "--resume", run.id],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
             for _ in range(2)]
    results = [(p.wait(timeout=600), p.stdout.read(), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    (_, _, loser_err), = [r for r in results if r[0] == 2]
    assert "Traceback" not in loser_err and len(loser_err.strip().splitlines()) == 1
    assert "process" in loser_err or "completed" in loser_err  # names the owner (or the finished run)
    steps = Counter(e.step for e in _events(db, run.id) if e.event.type == "telemetry")
    assert sorted(steps) == list(range(1, max(steps) + 1)) and set(steps.values()) == {1}  # (early stop may end it)
    assert json.loads(json.dumps(store_runs(db)[0].status)) == "completed"


def test_a_run_recorded_before_precision_existed_resumes_in_fp32_and_may_move() -> None:
    here = {**STORED, "train": {**STORED["train"], "precision": "fp32", "gradient_checkpointing": False}}
    assert resume_changes(STORED, here, "f1", "f1") == ([], [])
    moved = {**here, "train": {**here["train"], "precision": "bf16", "gradient_checkpointing": True}}
    refused, allowed = resume_changes(STORED, moved, "f1", "f1")
    assert not refused and {a.split()[0] for a in allowed} == {"[train].precision", "[train].gradient_checkpointing"}
