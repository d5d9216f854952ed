"""Event-loop lag probe: a periodic asyncio task that records how late each tick wakes up.

A tick that was asked to sleep `interval_s` but woke `interval_s + d` late means the loop was busy
for about `d` (a blocking call, a long handler, GIL contention from a training thread). The app
keeps one probe; tests and `bench/tui_lag.py` read its percentiles.
"""

from __future__ import annotations

import asyncio
import collections
import math
import time


class LagProbe:
    """Samples event-loop lag in seconds into a bounded ring buffer."""

    def __init__(self, interval_s: float = 0.05, max_samples: int = 20_000) -> None:
        self.interval_s = interval_s
        self.samples: collections.deque[float] = collections.deque(maxlen=max_samples)
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Whether the probe task is alive."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start sampling on the running loop (idempotent)."""
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="lag-probe")

    def stop(self) -> None:
        """Stop sampling; the samples are kept."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def reset(self) -> None:
        """Forget the samples (start of a measurement window)."""
        self.samples.clear()

    async def _run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(self.interval_s)
            self.samples.append(max(0.0, time.perf_counter() - start - self.interval_s))

    def percentile(self, p: float) -> float:
        """The p-th percentile lag in seconds (nearest rank; NaN with no samples)."""
        if not self.samples:
            return math.nan
        ordered = sorted(self.samples)
        rank = min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))
        return ordered[rank]

    def summary(self) -> dict[str, float]:
        """Sample count and p50/p99/max lag in milliseconds."""
        if not self.samples:
            return {"samples": 0, "p50_ms": math.nan, "p99_ms": math.nan, "max_ms": math.nan}
        return {"samples": len(self.samples), "p50_ms": self.percentile(50) * 1000,
                "p99_ms": self.percentile(99) * 1000, "max_ms": max(self.samples) * 1000}
