"""Run-store benchmark: batched append throughput and `series()` latency on a large run.

    python bench/store_bench.py [--events N] [--series-events M] [--points 500]

Appends go through the real EventWriter (default batch 512, 0.25 s interval) from a worker thread,
as a trainer would; `series()` is timed on one metric with M points. Targets from issue 3:
>= 20k events/s appended and <= 100 ms for 500 points on 1M events.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from store import MetricsEvent, RunStore  # noqa: E402

APPEND_TARGET = 20_000.0
SERIES_TARGET_MS = 100.0


async def append_rate(store: RunStore, count: int, *, threaded: bool, max_batch: int = 512) -> float:
    """Events per second from the first emit to the commit of the last one."""
    run_id = await store.create_run("reranker", f"bench {'thread' if threaded else 'loop'} {count}")
    await store.set_status(run_id, "running")
    start = time.perf_counter()
    async with store.writer(run_id, max_batch=max_batch) as writer:
        if threaded:

            def train() -> None:
                for step in range(count):
                    writer.emit_threadsafe(MetricsEvent(values={"loss": 1.0 / (step + 1), "lr": 1e-4}), step=step)

            await asyncio.to_thread(train)
        else:
            for step in range(count):
                writer.emit(MetricsEvent(values={"loss": 1.0 / (step + 1), "lr": 1e-4}), step=step)
                if step % 512 == 511:
                    await asyncio.sleep(0)  # a trainer loop yields between steps
        last = await writer.flush()
    elapsed = time.perf_counter() - start
    assert last == count + 1, (last, count)
    await store.set_status(run_id, "completed")
    return count / elapsed


async def series_latency(store: RunStore, count: int, points: int, repeats: int) -> tuple[float, float, float, float]:
    """(fill events/s, p50 ms, p95 ms, events_since tail ms) for one metric with `count` points."""
    run_id = await store.create_run("reranker", f"bench series {count}")
    await store.set_status(run_id, "running")
    start = time.perf_counter()
    async with store.writer(run_id, max_batch=5000, max_pending=200_000) as writer:
        for step in range(count):
            writer.emit(MetricsEvent(values={"loss": 1.0 / (step + 1), "lr": 1e-4}), step=step)
            if step % 5000 == 4999:
                await asyncio.sleep(0)
    fill_rate = count / (time.perf_counter() - start)
    await store.set_status(run_id, "completed")
    for _ in range(3):
        await store.series(run_id, "loss", points)
    timings = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = await store.series(run_id, "loss", points)
        timings.append((time.perf_counter() - t0) * 1000)
        assert 0 < len(result) <= points
    t0 = time.perf_counter()
    tail = await store.events_since(run_id, count - 1000, limit=1000)
    tail_ms = (time.perf_counter() - t0) * 1000
    assert len(tail) == 1000
    p95 = statistics.quantiles(timings, n=20)[-1]
    return fill_rate, statistics.median(timings), p95, tail_ms


async def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        db = Path(folder) / "bench.sqlite"
        async with await RunStore.open(db) as store:
            threaded = await append_rate(store, args.events, threaded=True)
            loop = await append_rate(store, args.events, threaded=False)
            fill, p50, p95, tail_ms = await series_latency(store, args.series_events, args.points, args.repeats)
        size_mb = sum(p.stat().st_size for p in Path(folder).iterdir()) / 1e6
    rows = [
        (
            "append, worker thread (batch 512)",
            f"{threaded:,.0f} events/s",
            f">= {APPEND_TARGET:,.0f}/s",
            threaded >= APPEND_TARGET,
        ),
        (
            "append, event loop (batch 512)",
            f"{loop:,.0f} events/s",
            f">= {APPEND_TARGET:,.0f}/s",
            loop >= APPEND_TARGET,
        ),
        (f"fill {args.series_events:,} events (batch 5000)", f"{fill:,.0f} events/s", "", None),
        (
            f"series() {args.points} pts on {args.series_events:,}, p50",
            f"{p50:.2f} ms",
            f"<= {SERIES_TARGET_MS:.0f} ms",
            p50 <= SERIES_TARGET_MS,
        ),
        (
            f"series() {args.points} pts on {args.series_events:,}, p95",
            f"{p95:.2f} ms",
            f"<= {SERIES_TARGET_MS:.0f} ms",
            p95 <= SERIES_TARGET_MS,
        ),
        ("events_since() 1000 events at the tail", f"{tail_ms:.2f} ms", "", None),
        ("database size", f"{size_mb:,.0f} MB", "", None),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'result':>18}  {'target':>12}  verdict")
    for name, value, target, ok in rows:
        verdict = "" if ok is None else ("PASS" if ok else "FAIL")
        print(f"{name:<{width}}  {value:>18}  {target:>12}  {verdict}")
    return 0 if all(ok is not False for *_, ok in rows) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="events per append measurement")
    parser.add_argument("--series-events", type=int, default=1_000_000, help="points in the series() run")
    parser.add_argument("--points", type=int, default=500, help="max_points for series()")
    parser.add_argument("--repeats", type=int, default=50, help="timed series() calls")
    parser.add_argument("--dir", default=None, help="folder for the temporary store (a local disk)")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
