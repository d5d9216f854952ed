"""Run leases: one owner per run, taken atomically; a stopped owner on this host keeps its run."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from store import RunStore
from store.lease import RunOwnedError, process_start


async def test_a_second_store_cannot_take_a_running_run(tmp_path: Path) -> None:
    db = tmp_path / "lease.sqlite"
    async with await RunStore.open(db) as first, await RunStore.open(db) as second:
        run_id = await first.create_run("reranker", "r")
        await first.set_status(run_id, "running")
        await first.set_status(run_id, "interrupted")
        await first.set_status(run_id, "running")
        await first.set_status(run_id, "running")  # the owner may restate itself
        with pytest.raises(RunOwnedError, match=f"process {os.getpid()}"):
            await second.set_status(run_id, "running")
        run = await second.get_run(run_id)
        assert run.status == "running" and run.owner_pid == os.getpid()


async def test_a_stopped_owner_on_this_host_is_not_declared_interrupted(tmp_path: Path) -> None:
    db = tmp_path / "lease.sqlite"
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        async with await RunStore.open(db) as store:
            run_id = await store.create_run("reranker", "r")
            await store.set_status(run_id, "running")
        with sqlite3.connect(db) as conn:  # the lease as the owner process would have taken it, heartbeat long stale
            conn.execute("UPDATE runs SET owner_pid = ?, owner_started = ?, owner_token = 'other', heartbeat_at = ? "
                         "WHERE id = ?", (owner.pid, process_start(owner.pid), time.time() - 3600, run_id))
        conn.close()
        owner.send_signal(signal.SIGSTOP)
        async with await RunStore.open(db, stale_after_s=1) as store:
            assert (await store.get_run(run_id)).status == "running"
            with pytest.raises(RunOwnedError, match=f"process {owner.pid}"):
                await store.set_status(run_id, "running")
        owner.send_signal(signal.SIGCONT)
        async with await RunStore.open(db, stale_after_s=1) as store:
            assert (await store.get_run(run_id)).status == "running"
        owner.kill()
        owner.wait()
        async with await RunStore.open(db, stale_after_s=1) as store:
            run = await store.get_run(run_id)
            assert run.status == "interrupted" and "gone" in (run.error or "")
    finally:
        owner.kill()
        owner.wait()


async def test_a_recycled_pid_is_not_the_owner(tmp_path: Path) -> None:
    db = tmp_path / "lease.sqlite"
    if process_start(os.getppid()) is None:
        pytest.skip("no /proc start times here")
    async with await RunStore.open(db) as store:
        run_id = await store.create_run("reranker", "r")
        await store.set_status(run_id, "running")
    with sqlite3.connect(db) as conn:  # a live pid whose start time is not the owner's
        conn.execute("UPDATE runs SET owner_pid = ?, owner_started = -1 WHERE id = ?", (os.getppid(), run_id))
    conn.close()
    async with await RunStore.open(db) as store:
        assert (await store.get_run(run_id)).status == "interrupted"


async def test_a_process_whose_run_was_taken_over_can_no_longer_write_to_it(tmp_path: Path) -> None:
    # The first process was judged dead (say, a stale heartbeat from another host) and a second one
    # resumed the run: the lease moved. The first one's events and its closing status are refused,
    # so it cannot write beside the new owner or end the run under it.
    from store import LogEvent, StoreError

    db = tmp_path / "lease.sqlite"
    async with await RunStore.open(db) as first, await RunStore.open(db) as second:
        run_id = await first.create_run("reranker", "r")
        await first.set_status(run_id, "running")
        async with first.writer(run_id) as writer:
            writer.emit(LogEvent(message="before the takeover"))
            await writer.flush()
            await first.set_status(run_id, "interrupted")  # as the staleness check does
            await second.set_status(run_id, "running")
            writer.emit(LogEvent(message="after the takeover"))
            with pytest.raises(RunOwnedError, match="no longer writes to it"):
                await writer.flush()
            writer.discard_pending()
        with pytest.raises(RunOwnedError):
            await first.set_status(run_id, "failed")
        await second.set_status(run_id, "completed")  # the owner ends it
        messages = [getattr(e.event, "message", None) for e in await second.events_since(run_id, 0)]
        assert "before the takeover" in messages and "after the takeover" not in messages
        assert issubclass(RunOwnedError, StoreError)
