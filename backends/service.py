"""The async model manager that serves reranking: lazy load, adapter hot reload, idle unload.

The lifecycle (one lock, lazy load in a thread, throttled hot reload of the active adapter, idle
unload) is `backends.hosting.AdapterHost`, shared with the agent's chat service; this module says
how a reranker loads, takes an adapter and scores. `score_group` scores several requests under one
hold of the model, so all of them see the same adapter (the HTTP server's batches).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import time
from dataclasses import dataclass
from pathlib import Path

from backends.adapters import Manifest
from backends.base import Score
from backends.hosting import AdapterHost
from backends.prompt import PromptError
from backends.scorer import Reranker, ScoreStats
from backends.settings import ScorerSettings


@dataclass(frozen=True)
class ScoreResponse:
    """Scores in input order plus what produced them."""

    scores: list[Score]
    stats: ScoreStats
    adapter_fingerprint: str | None
    load_seconds: float


@dataclass(frozen=True)
class RequestScore:
    """One request's scores in a group and what scoring it alone cost, or why it could not be scored."""

    scores: list[Score]
    stats: ScoreStats
    error: PromptError | None = None


@dataclass(frozen=True)
class GroupResponse:
    """A group's scores in request order, the one adapter that scored all of them, and the engine."""

    results: list[RequestScore]
    adapter_fingerprint: str | None
    adapter_manifest: Manifest | None
    load_seconds: float
    backend: str
    device: str
    dtype: str


class RerankService(AdapterHost[Reranker]):
    """Serves `score()` from a lazily loaded Reranker that follows the active adapter folder."""

    def __init__(self, settings: ScorerSettings, active_adapter: Path | None = None,
                 reload_check_s: float = 2.0, idle_unload_s: float = 600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(active_adapter, reload_check_s, idle_unload_s, clock)
        self.settings = settings
        self.engine_label: str | None = None  # "torch on cpu (float32)" once a model was loaded

    def _load(self) -> Reranker:
        reranker = Reranker.load(self.settings)
        engine = reranker.engine
        self.engine_label = f"{engine.backend} on {engine.device} ({engine.dtype})"
        return reranker

    def _apply_adapter(self, model: Reranker, folder: Path | None) -> None:
        model.use_adapter(folder)

    def _close_model(self, model: Reranker) -> None:
        model.close()

    async def score(self, query: str, docs: Sequence[str]) -> ScoreResponse:
        """Score documents for a query with the current active adapter (loading on first use)."""
        group = await self.score_group([(query, docs)])
        [result] = group.results
        if result.error is not None:
            raise result.error
        return ScoreResponse(result.scores, result.stats, group.adapter_fingerprint, group.load_seconds)

    async def score_group(self, requests: Sequence[tuple[str, Sequence[str]]]) -> GroupResponse:
        """Score (query, documents) requests one after another under a single hold of the model: each
        exactly as `score` would (tokenizing included, on the model's thread, so it never competes
        with the model for the cores), all with the same adapter, in one hop to a worker thread. A
        request whose prompt is refused (PromptError) fails alone."""
        async with self._using() as reranker:
            results = await self.in_model_thread(_score_each, reranker, requests)
            engine = reranker.engine
            return GroupResponse(results, self._serving_fingerprint, self._serving_manifest, self.last_load_seconds,
                                 engine.backend, engine.device, engine.dtype)


def _score_each(reranker: Reranker, requests: Sequence[tuple[str, Sequence[str]]]) -> list[RequestScore]:
    out = []
    for query, docs in requests:
        try:
            scores = reranker.score(query, docs)
        except PromptError as exc:
            out.append(RequestScore([], ScoreStats(), exc))
            continue
        out.append(RequestScore(scores, reranker.last_stats))
    return out
