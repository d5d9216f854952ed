"""Subprocess roles for the store tests (run as `python tests/store/store_procs.py ROLE ...`).

Separate processes are the point: crashes, lock contention and concurrent creation only happen
between real processes. Each role prints progress lines on stdout, flushed, for the test to read.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from store import MetricsEvent, RunStore  # noqa: E402
from store.db import connect  # noqa: E402
from store.schema import migrate  # noqa: E402


def say(line: str) -> None:
    print(line, flush=True)


async def crash_writer(db: str, seed: int) -> None:
    """Append batches of random size forever; after each commit print the committed seq.

    Every event of batch b carries (batch=b, i, n) so the test can check that no batch is partial.
    """
    rng = random.Random(seed)
    store = await RunStore.open(db)
    run_id = await store.create_run("reranker", f"crash-{seed}", backend="torch")
    await store.set_status(run_id, "running")
    say(f"run {run_id}")
    async with store.writer(run_id, flush_interval_s=0.05) as writer:
        batch = 0
        while True:
            size = rng.randint(1, writer.max_batch)
            for i in range(size):
                writer.emit(MetricsEvent(values={"batch": batch, "i": i, "n": size, "loss": rng.random()}), step=batch)
            say(f"committed {await writer.flush()}")
            batch += 1


async def bulk_writer(db: str, count: int) -> None:
    """Emit `count` events from a worker thread (the trainer pattern) as fast as possible."""
    store = await RunStore.open(db)
    run_id = await store.create_run("agent", "bulk")
    await store.set_status(run_id, "running")
    say(f"run {run_id}")
    async with store.writer(run_id) as writer:

        def train() -> None:
            for step in range(count):
                writer.emit_threadsafe(MetricsEvent(values={"loss": 1.0 / (step + 1)}), step=step)

        await asyncio.to_thread(train)
        last = await writer.set_status("completed")
    say(f"done {await store.last_seq(run_id)} {last.status}")
    await store.close()


async def open_fresh(db: str, start_at: float) -> None:
    """Wait for a shared start time, then migrate; print which migrations this process applied."""
    while time.time() < start_at:
        await asyncio.sleep(0.001)
    conn = await connect(db)
    try:
        say(json.dumps(await migrate(conn, db)))
    finally:
        await conn.close()
    store = await RunStore.open(db)
    await store.close()


def main() -> None:
    role, db, arg = sys.argv[1], sys.argv[2], sys.argv[3]
    if role == "crash-writer":
        asyncio.run(crash_writer(db, int(arg)))
    elif role == "bulk-writer":
        asyncio.run(bulk_writer(db, int(arg)))
    elif role == "open-fresh":
        asyncio.run(open_fresh(db, float(arg)))
    else:
        raise SystemExit(f"unknown role {role}")


if __name__ == "__main__":
    main()
