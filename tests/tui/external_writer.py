"""Run as a separate process: write a run (or more events of one) into a store, as `ragweld-tui --run` would.

usage: python external_writer.py DB new NAME      -> creates a running run with events, prints its id
       python external_writer.py DB append RUN_ID -> appends a log line and completes the run
"""

from __future__ import annotations

import asyncio
import sys

from store import LogEvent, MetricsEvent, RunStore, TelemetryEvent


async def main(db: str, action: str, arg: str) -> None:
    store = await RunStore.open(db)
    try:
        if action == "new":
            run_id = await store.create_run("reranker", arg, "torch", "embedded:tiny-qwen3-reranker",
                                            {"train": {"max_steps": 10}}, None, "mrr@10")
            await store.set_status(run_id, "running")
            events = [(LogEvent(message="hello from another process"), None)]
            for step in range(1, 6):
                events.append((MetricsEvent(values={"train/loss": 1.0 / step}), step))
                events.append((TelemetryEvent(proj_x=float(step), proj_y=float(-step), loss=1.0 / step), step))
            await store.append_events(run_id, events)
            print(run_id)
        else:
            await store.append_events(arg, [(LogEvent(level="warning", message="second message from outside"), 6)])
            await store.set_status(arg, "completed")
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
