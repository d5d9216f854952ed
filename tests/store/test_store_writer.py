"""EventWriter: batching on size and interval, worker-thread emission, back-pressure, heartbeat."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from store import LogEvent, MetricsEvent, RunNotFoundError, RunStore, StateEvent, StoreError


@pytest.fixture
async def store(tmp_path: Path):
    async with await RunStore.open(tmp_path / "w.sqlite") as opened:
        yield opened


async def _wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_flush_reports_the_last_committed_seq(store: RunStore) -> None:
    run_id = await store.create_run("reranker", "w")
    async with store.writer(run_id, flush_interval_s=60) as writer:
        for step in range(10):
            writer.emit(MetricsEvent(values={"loss": float(step)}), step=step)
        assert writer.last_committed_seq == 0 and writer.pending_count == 10
        assert await writer.flush() == 10 == writer.last_committed_seq
        assert await store.last_seq(run_id) == 10


async def test_full_batches_flush_without_waiting_for_the_interval(store: RunStore) -> None:
    run_id = await store.create_run("reranker", "size")
    async with store.writer(run_id, flush_interval_s=60, max_batch=10) as writer:
        for step in range(25):
            writer.emit(LogEvent(message=str(step)))
        await _wait_for(lambda: writer.last_committed_seq >= 20)
        assert writer.pending_count <= 5


async def test_the_interval_flushes_small_batches(store: RunStore) -> None:
    run_id = await store.create_run("reranker", "interval")
    async with store.writer(run_id, flush_interval_s=0.05) as writer:
        writer.emit(LogEvent(message="one"))
        await _wait_for(lambda: writer.last_committed_seq == 1)


async def test_worker_threads_emit_safely_in_order(store: RunStore) -> None:
    run_id = await store.create_run("agent", "threads")
    per_thread = 5000
    async with store.writer(run_id, max_batch=256, max_pending=512) as writer:  # small: back-pressure kicks in

        def train(name: str) -> None:
            for step in range(per_thread):
                writer.emit_threadsafe(MetricsEvent(values={name: float(step)}), step=step)

        await asyncio.gather(asyncio.to_thread(train, "a"), asyncio.to_thread(train, "b"))
        with pytest.raises(StoreError, match="emit_threadsafe"):
            await asyncio.to_thread(writer.emit, LogEvent(message="emit() belongs to the loop thread"))
    assert writer.last_committed_seq == 2 * per_thread
    steps: dict[str, list[int]] = {"a": [], "b": []}
    seq = 0
    while page := await store.events_since(run_id, seq, limit=4000):
        for record in page:
            (name,) = record.event.values
            steps[name].append(record.step)
        seq = page[-1].seq
    assert steps == {"a": list(range(per_thread)), "b": list(range(per_thread))}
    with pytest.raises(StoreError, match="closed"):
        writer.emit_threadsafe(LogEvent(message="late"))


async def test_heartbeat_is_kept_fresh_while_idle(store: RunStore) -> None:
    run_id = await store.create_run("agent", "beat")
    started = (await store.set_status(run_id, "running")).heartbeat_at
    async with store.writer(run_id, flush_interval_s=0.02, heartbeat_interval_s=0.05):
        await asyncio.sleep(0.3)
        beat = (await store.get_run(run_id)).heartbeat_at
    assert beat is not None and started is not None and beat > started


async def test_writer_status_change_comes_after_pending_events(store: RunStore) -> None:
    run_id = await store.create_run("agent", "order")
    await store.set_status(run_id, "running")
    async with store.writer(run_id, flush_interval_s=60) as writer:
        writer.emit(MetricsEvent(values={"loss": 0.1}), step=99)
        run = await writer.set_status("completed")
    assert run.status == "completed"
    kinds = [type(r.event) for r in await store.events_since(run_id)]
    assert kinds == [StateEvent, MetricsEvent, StateEvent]


async def test_failed_commits_keep_events_and_raise(store: RunStore) -> None:
    run_id = await store.create_run("agent", "doomed")
    writer = await store.writer(run_id, flush_interval_s=60).start()
    with sqlite3.connect(store.path) as conn:  # another process deletes the run under the writer
        conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
    conn.close()
    writer.emit(LogEvent(message="kept"))
    with pytest.raises(RunNotFoundError):
        await writer.flush()
    assert writer.pending_count == 1 and isinstance(writer.error, RunNotFoundError)
    with pytest.raises(RunNotFoundError):
        await writer.close()


async def test_closing_the_store_flushes_open_writers(tmp_path: Path) -> None:
    store = await RunStore.open(tmp_path / "c.sqlite")
    run_id = await store.create_run("agent", "left open")
    writer = await store.writer(run_id, flush_interval_s=60).start()
    writer.emit(LogEvent(message="not yet committed"))
    await store.close()
    assert writer.last_committed_seq == 1
    async with await RunStore.open(tmp_path / "c.sqlite") as reopened:
        assert (await reopened.events_since(run_id))[0].event == LogEvent(message="not yet committed")


async def test_emit_requires_a_started_writer(store: RunStore) -> None:
    run_id = await store.create_run("agent", "unstarted")
    writer = store.writer(run_id)
    with pytest.raises(StoreError, match="not started"):
        writer.emit_threadsafe(LogEvent(message="x"))
    with pytest.raises(StoreError, match="not started"):
        writer.emit(LogEvent(message="x"))
