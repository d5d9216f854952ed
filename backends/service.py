"""The async model manager that serves reranking: lazy load, adapter hot reload, idle unload.

All heavy work (loading, scoring, reading adapters) runs in threads via `asyncio.to_thread`, so the
event loop (the TUI's, or a server's) never stalls. One asyncio lock guards the loaded model: a
request holds it while scoring, and reload and unload take it too, so neither can happen in the
middle of a request, and concurrent requests are served one after another on the same weights.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from backends.adapters import AdapterError, manifest_fingerprint
from backends.base import Score
from backends.scorer import Reranker, ScorerSettings, ScoreStats

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoreResponse:
    """Scores in input order plus what produced them."""

    scores: list[Score]
    stats: ScoreStats
    adapter_fingerprint: str | None
    load_seconds: float


class RerankService:
    """Serves `score()` from a lazily loaded Reranker that follows the active adapter folder."""

    def __init__(self, settings: ScorerSettings, active_adapter: Path | None = None,
                 reload_check_s: float = 2.0, idle_unload_s: float = 600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.active_adapter = active_adapter
        self.reload_check_s = reload_check_s
        self.idle_unload_s = idle_unload_s
        self._clock = clock
        self._lock = asyncio.Lock()
        self._reranker: Reranker | None = None
        self._serving_fingerprint: str | None = None
        self._rejected_fingerprint: str | None = None
        self._last_check = float("-inf")
        self._last_used = clock()
        self.in_flight = 0
        self.loads = 0
        self.unloads = 0
        self.last_adapter_error: str | None = None

    @property
    def loaded(self) -> bool:
        return self._reranker is not None

    @property
    def adapter_fingerprint(self) -> str | None:
        return self._serving_fingerprint

    async def score(self, query: str, docs: Sequence[str]) -> ScoreResponse:
        """Score documents for a query with the current active adapter (loading on first use)."""
        self.in_flight += 1
        try:
            async with self._lock:
                load_seconds = await self._ensure_loaded()
                await self._maybe_reload_adapter()
                reranker = self._reranker
                assert reranker is not None
                scores = await asyncio.to_thread(reranker.score, query, list(docs))
                return ScoreResponse(scores, reranker.last_stats, self._serving_fingerprint, load_seconds)
        finally:
            self.in_flight -= 1
            self._last_used = self._clock()

    async def _ensure_loaded(self) -> float:
        if self._reranker is not None:
            return 0.0
        start = time.perf_counter()
        self._reranker = await asyncio.to_thread(Reranker.load, self.settings)
        self.loads += 1
        self._serving_fingerprint = None
        self._last_check = float("-inf")
        return time.perf_counter() - start

    async def _maybe_reload_adapter(self) -> None:
        """At most every reload_check_s, swap in a changed, complete, compatible active adapter."""
        now = self._clock()
        if self.active_adapter is None or now - self._last_check < self.reload_check_s:
            return
        self._last_check = now
        if self.active_adapter.exists():
            fingerprint = manifest_fingerprint(self.active_adapter)
            if fingerprint is None:  # folder there but no manifest yet: still being written
                return
            folder: Path | None = self.active_adapter
        else:  # no active adapter (never promoted, or rolled back to the base)
            fingerprint, folder = None, None
        if fingerprint == self._serving_fingerprint or (fingerprint and fingerprint == self._rejected_fingerprint):
            return
        reranker = self._reranker
        assert reranker is not None
        try:
            await asyncio.to_thread(reranker.use_adapter, folder)
        except (AdapterError, OSError) as exc:
            # A half-written or foreign adapter: keep serving the previous one. Once the manifest
            # changes again (the writer finished), the next check retries it.
            self.last_adapter_error = str(exc)
            self._rejected_fingerprint = fingerprint
            log.warning("ignoring active adapter: %s", exc)
            return
        self._serving_fingerprint = fingerprint
        self._rejected_fingerprint = None
        self.last_adapter_error = None

    async def unload_if_idle(self) -> bool:
        """Unload the model if no request is in flight and it has been idle long enough."""
        if self._reranker is None or self.in_flight or self._clock() - self._last_used < self.idle_unload_s:
            return False
        async with self._lock:
            if self._reranker is None or self.in_flight or self._clock() - self._last_used < self.idle_unload_s:
                return False
            reranker, self._reranker = self._reranker, None
            self._serving_fingerprint = None
            await asyncio.to_thread(reranker.close)
            self.unloads += 1
            return True

    async def run_idle_reaper(self, every_s: float = 5.0) -> None:
        """Background task: check for idleness every `every_s` seconds until cancelled."""
        while True:
            await asyncio.sleep(every_s)
            await self.unload_if_idle()

    async def close(self) -> None:
        async with self._lock:
            if self._reranker is not None:
                await asyncio.to_thread(self._reranker.close)
                self._reranker = None
