"""A full disk: a failure is still recorded (or said clearly), and reading the store never crashes.

SQLite's `max_page_count` makes the writer connection's writes fail with SQLITE_FULL ("database or
disk is full") exactly as a full disk would, without needing a small filesystem.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from store import LogEvent, RunStore, StoreError
from trainers.run_failure import record_failure


async def _fill(store: RunStore) -> None:
    """Cap the store at its current size: the next write that needs a page fails."""
    pages = (await (await store._writer.execute("PRAGMA page_count")).fetchone())[0]
    await store._writer.execute(f"PRAGMA max_page_count = {pages}")


async def test_a_failure_is_recorded_on_a_full_disk(tmp_path: Path) -> None:
    db = tmp_path / "full.sqlite"
    async with await RunStore.open(db) as store:
        run_id = await store.create_run("reranker", "r")
        async with store.writer(run_id) as writer:
            await writer.set_status("running")
            await _fill(store)
            for _ in range(200):  # far more than the free pages hold
                writer.emit(LogEvent(message="x" * 2000))
            try:
                await record_failure(writer, "OSError: [Errno 28] No space left on device")
            except StoreError as exc:  # not even the state fitted: said in one clear message
                assert "could not record it" in str(exc) and "interrupted" in str(exc)
            else:
                run = await store.get_run(run_id)
                assert run.status == "failed" and "No space left" in (run.error or "")
    async with await RunStore.open(db) as store:  # space is back (a new connection has no cap)
        run = await store.get_run(run_id)
        assert run.status in ("failed", "running")
        assert [r.id for r in await store.list_runs()] == [run_id]


async def test_reading_a_store_that_cannot_be_written_still_works(tmp_path: Path) -> None:
    db = tmp_path / "full.sqlite"
    async with await RunStore.open(db) as store:
        run_id = await store.create_run("reranker", "r")
        await store.set_status(run_id, "running")
    with sqlite3.connect(db) as conn:  # a dead owner: opening the store wants to mark it interrupted
        conn.execute("UPDATE runs SET heartbeat_at = ?, owner_host = 'elsewhere' WHERE id = ?",
                     (time.time() - 3600, run_id))
    conn.close()
    async with await RunStore.open(db, stale_after_s=1e9) as store:
        await store._writer.execute("PRAGMA query_only = ON")  # every write now fails, like a full disk
        store.stale_after_s = 1
        assert await store.mark_stale_runs() == []  # could not mark it: no crash, reads go on
        assert (await store.get_run(run_id)).status == "running"
        assert len(await store.list_runs()) == 1
