"""Request latency percentiles over a sliding window (for /health, the store line and the TUI)."""

from __future__ import annotations

from collections import deque


class LatencyWindow:
    """The last `size` request durations; p50 and p95 in milliseconds (None before any request)."""

    def __init__(self, size: int = 1000) -> None:
        self._seconds: deque[float] = deque(maxlen=size)

    def add(self, seconds: float) -> None:
        self._seconds.append(seconds)

    def percentile_ms(self, q: float) -> float | None:
        """Nearest-rank percentile `q` (0-100) of the window, in ms."""
        if not self._seconds:
            return None
        ordered = sorted(self._seconds)
        rank = max(1, -(-len(ordered) * q // 100))  # ceil(n * q / 100), at least 1
        return round(ordered[int(rank) - 1] * 1000, 3)
