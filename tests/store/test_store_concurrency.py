"""Real processes sharing one store: a live tail under load, and two creators of a fresh file."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import time
from pathlib import Path

from store import RunStore
from store.schema import MIGRATIONS

PROCS = Path(__file__).with_name("store_procs.py")
EVENTS = 50_000


async def _spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, str(PROCS), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )


async def test_reader_tails_50k_events_without_locks_or_gaps(tmp_path: Path) -> None:
    db = tmp_path / "tail.sqlite"
    async with await RunStore.open(db) as reader_store:  # the file exists before the writer starts
        proc = await _spawn("bulk-writer", str(db), str(EVENTS))
        assert proc.stdout is not None and proc.stderr is not None
        first = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().split()
        assert first[0] == "run", first
        run_id = first[1]
        done_line = asyncio.ensure_future(proc.stdout.readline())
        seen: list[int] = []
        locked_errors = 0
        polls_with_data = 0
        final_seq: int | None = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                before = len(seen)
                while page := await reader_store.events_since(run_id, seen[-1] if seen else 0, limit=5000):
                    seen.extend(e.seq for e in page)
                polls_with_data += len(seen) > before
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    raise
                locked_errors += 1
            if final_seq is None and done_line.done():
                words = done_line.result().decode().split()
                assert words[0] == "done" and words[2] == "completed", words
                final_seq = int(words[1])
            if final_seq is not None and seen and seen[-1] >= final_seq:
                break
            await asyncio.sleep(0.05)
        stderr = (await proc.stderr.read()).decode()
        assert await proc.wait() == 0, stderr
        assert "locked" not in stderr
        assert locked_errors == 0
        assert final_seq == EVENTS + 2  # running + 50k metrics + completed
        assert seen == list(range(1, final_seq + 1))
        assert polls_with_data >= 2, "the reader should have tailed the run while it was written"
        run = await reader_store.get_run(run_id)
        assert run.status == "completed"
        assert (await reader_store.latest_metrics(run_id))["loss"] == 1.0 / EVENTS


async def test_two_processes_create_a_fresh_store_once(tmp_path: Path) -> None:
    for attempt in range(3):
        db = tmp_path / f"fresh-{attempt}.sqlite"
        start_at = f"{time.time() + 1.0:.6f}"
        procs = [await _spawn("open-fresh", str(db), start_at) for _ in range(2)]
        results = []
        for proc in procs:
            out, err = await asyncio.wait_for(proc.communicate(), 60)
            assert proc.returncode == 0, err.decode()
            results.append(json.loads(out.decode().splitlines()[0]))
        applied_by = sorted(results, key=len)
        assert applied_by[0] == [], results
        assert applied_by[1] == [m.name for m in MIGRATIONS], results
        with sqlite3.connect(db) as conn:
            names = [r[0] for r in conn.execute("SELECT name FROM store_migrations ORDER BY id")]
            assert names == applied_by[1]
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert conn.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
