"""The async model manager that serves reranking: lazy load, adapter hot reload, idle unload.

The lifecycle (one lock, lazy load in a thread, throttled hot reload of the active adapter, idle
unload) is `backends.hosting.AdapterHost`, shared with the agent's chat service; this module says
how a reranker loads, takes an adapter and scores.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
import time
from dataclasses import dataclass
from pathlib import Path

from backends.base import Score
from backends.hosting import AdapterHost
from backends.scorer import Reranker, ScoreStats
from backends.settings import ScorerSettings


@dataclass(frozen=True)
class ScoreResponse:
    """Scores in input order plus what produced them."""

    scores: list[Score]
    stats: ScoreStats
    adapter_fingerprint: str | None
    load_seconds: float


class RerankService(AdapterHost[Reranker]):
    """Serves `score()` from a lazily loaded Reranker that follows the active adapter folder."""

    def __init__(self, settings: ScorerSettings, active_adapter: Path | None = None,
                 reload_check_s: float = 2.0, idle_unload_s: float = 600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(active_adapter, reload_check_s, idle_unload_s, clock)
        self.settings = settings

    def _load(self) -> Reranker:
        return Reranker.load(self.settings)

    def _apply_adapter(self, model: Reranker, folder: Path | None) -> None:
        model.use_adapter(folder)

    def _close_model(self, model: Reranker) -> None:
        model.close()

    async def score(self, query: str, docs: Sequence[str]) -> ScoreResponse:
        """Score documents for a query with the current active adapter (loading on first use)."""
        async with self._using() as reranker:
            scores = await asyncio.to_thread(reranker.score, query, list(docs))
            return ScoreResponse(scores, reranker.last_stats, self._serving_fingerprint, self.last_load_seconds)
