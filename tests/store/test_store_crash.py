"""kill -9 a writer at random moments: nothing committed is lost, no batch is half there."""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from store import RunStore

PROCS = Path(__file__).with_name("store_procs.py")


def _run_and_kill(db: Path, seed: int, rng: random.Random, early: bool) -> list[str]:
    """Start a crash writer, SIGKILL it at a random moment, return the lines it printed."""
    proc = subprocess.Popen(
        [sys.executable, str(PROCS), "crash-writer", str(db), str(seed)], stdout=subprocess.PIPE, text=True
    )
    lines: list[str] = []
    first_commit = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.strip())
            if line.startswith("committed"):
                first_commit.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if early:  # anywhere from interpreter start-up through migrations and run creation
        time.sleep(rng.uniform(0.05, 0.6))
    else:
        assert first_commit.wait(30), "writer never committed"
        time.sleep(rng.uniform(0.0, 0.5))
    proc.kill()
    proc.wait()
    reader.join(10)
    return lines


def _check(db: Path, lines: list[str]) -> str | None:
    """Integrity, committed events present and gapless, whole batches only; returns the run id."""
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        run_ids = [line.split()[1] for line in lines if line.startswith("run ")]
        if not run_ids:
            return None
        run_id = run_ids[0]
        rows = conn.execute(
            """SELECT e.seq, e.type, e.payload FROM events e JOIN runs r ON r.pk = e.run_pk
               WHERE r.id = ? ORDER BY e.seq""",
            (run_id,),
        ).fetchall()
    seqs = [r[0] for r in rows]
    assert seqs == list(range(1, len(seqs) + 1)), "seq gap"
    committed = [int(line.split()[1]) for line in lines if line.startswith("committed ")]
    if committed:
        assert seqs[-1] >= committed[-1], f"lost committed events: reported {committed[-1]}, found {seqs[-1]}"
    sizes: dict[int, int] = {}
    present: Counter[int] = Counter()
    for _, kind, payload in rows:
        if kind == "metrics":
            values = json.loads(payload)["values"]
            present[int(values["batch"])] += 1
            sizes[int(values["batch"])] = int(values["n"])
    for batch, count in present.items():
        assert count == sizes[batch], f"batch {batch} half there: {count} of {sizes[batch]}"
    assert sorted(present) == list(range(len(present))), "a whole batch is missing in the middle"
    return run_id


async def test_kill_9_writer_ten_times(tmp_path: Path) -> None:
    db = tmp_path / "crash.sqlite"
    rng = random.Random(1234)
    checked_runs = 0
    for attempt in range(10):
        lines = _run_and_kill(db, seed=attempt, rng=rng, early=attempt < 2)
        run_id = _check(db, lines)
        if run_id is None:
            continue
        async with await RunStore.open(db) as store:  # the owner is dead: interrupted at once
            run = await store.get_run(run_id)
            assert run.status == "interrupted", run
            assert "gone" in (run.error or "")
            events = await store.events_since(run_id, await store.last_seq(run_id) - 1)
            assert events[-1].event.type == "state" and events[-1].event.status == "interrupted"
        checked_runs += 1
    assert checked_runs >= 8
