"""One scoring worker for many concurrent callers: a bounded queue, batches, one adapter per batch.

The HTTP server's handlers call `RerankWorker.score(query, docs)`. Requests wait in a bounded queue
(full: `QueueFull`, which the server answers with 503 and Retry-After). The worker takes the first
waiting request plus every other one already queued (or arriving within `max_wait_s`), up to
`token_budget` prompt tokens (estimated from characters, as the text is not tokenized yet), and
scores them as one batch under a single hold of the model: one hop to the model's thread, one adapter
check, and every request of the batch is scored by the same adapter (the server names it in each
response). Inside a batch each request is scored exactly as `Reranker.score` scores it, tokenizing
included: tokenizing on the model's thread keeps the model's cores to itself (tokenizing beside a
running model stalled its threads and cost a third of the throughput on a 2-core machine), and a
document's score never depends on what else was in flight, so it equals `ragweld-tui score`'s for
the same adapter.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass, field
from backends.base import Score
from backends.service import GroupResponse, RerankService

CHARS_PER_TOKEN = 4  # for the batch budget only: English BPE averages about four characters a token
PROMPT_TOKENS = 64  # the reranker prompt's own tokens around each (query, document) pair


class QueueFull(RuntimeError):
    """The worker's queue is full: the caller should retry after `retry_after_s`."""

    def __init__(self, waiting: int, retry_after_s: int) -> None:
        super().__init__(f"{waiting} requests are waiting for the model; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class WorkerStopped(RuntimeError):
    """The worker shut down before the request was scored."""


@dataclass(frozen=True)
class WorkerResult:
    """One request's scores (input order), the batch it was scored in and where its time went."""

    scores: list[Score]
    group: GroupResponse
    group_size: int
    tokens: int
    queue_seconds: float
    score_seconds: float


@dataclass
class _Job:
    query: str
    docs: list[str]
    tokens: int
    future: asyncio.Future[WorkerResult]
    enqueued: float = field(default_factory=time.perf_counter)


class RerankWorker:
    """Owns the `RerankService` for a server: queues, batches and scores requests."""

    def __init__(self, service: RerankService, max_queue: int = 64, max_wait_s: float = 0.0,
                 token_budget: int = 65536) -> None:
        self.service = service
        self.max_queue = max_queue
        self.max_wait_s = max_wait_s
        self.token_budget = token_budget
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(max_queue)
        self._carry: _Job | None = None  # taken from the queue but over the last batch's budget
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.batched_requests = 0
        self._seconds_per_request = 0.0  # moving average of a request's share of its batch's time

    @property
    def waiting(self) -> int:
        """Requests queued and not yet being scored."""
        return self._queue.qsize() + (self._carry is not None)

    def busy(self) -> bool:
        """Work is queued for the model (the idle reaper must not unload it now)."""
        return self.waiting > 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="rerank-worker")

    async def stop(self) -> None:
        """Stop the worker; requests still queued fail with WorkerStopped."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        pending = [self._carry] if self._carry else []
        self._carry = None
        while not self._queue.empty():
            pending.append(self._queue.get_nowait())
        for job in pending:
            if not job.future.done():
                job.future.set_exception(WorkerStopped("the server is shutting down"))

    async def score(self, query: str, docs: list[str]) -> WorkerResult:
        """Score `docs` for `query` in the next batch; raises QueueFull, or PromptError (bad input)."""
        tokens = len(docs) * (PROMPT_TOKENS + len(query) // CHARS_PER_TOKEN) + sum(len(d) for d in docs) // CHARS_PER_TOKEN
        job = _Job(query, docs, tokens, asyncio.get_running_loop().create_future())
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            raise QueueFull(self.waiting, self.retry_after_s()) from None
        return await job.future

    def retry_after_s(self) -> int:
        """A whole-second hint for Retry-After: about how long the queue takes to drain at the
        recent pace (at least 1 s)."""
        return max(1, math.ceil(self.waiting * self._seconds_per_request))

    async def _next_batch(self) -> list[_Job]:
        first = self._carry or await self._queue.get()
        self._carry = None
        batch, tokens = [first], first.tokens
        deadline = time.perf_counter() + self.max_wait_s
        while tokens < self.token_budget:
            try:
                job = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            if tokens + job.tokens > self.token_budget:
                self._carry = job  # first in line for the next batch
                break
            batch.append(job)
            tokens += job.tokens
        return batch

    async def _run(self) -> None:
        while True:
            batch = [job for job in await self._next_batch() if not job.future.done()]  # drop abandoned
            if not batch:
                continue
            started = time.perf_counter()
            try:
                group = await self.service.score_group([(job.query, job.docs) for job in batch])
            except asyncio.CancelledError:
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(WorkerStopped("the server is shutting down"))
                raise
            except Exception as exc:  # a failed batch fails its requests, never the worker
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            self.batches += 1
            self.batched_requests += len(batch)
            share = (time.perf_counter() - started) / len(batch)
            self._seconds_per_request = share if self.batches == 1 else 0.8 * self._seconds_per_request + 0.2 * share
            for job, result in zip(batch, group.results):
                if job.future.done():
                    continue
                if result.error is not None:
                    job.future.set_exception(result.error)
                else:
                    job.future.set_result(WorkerResult(result.scores, group, len(batch), result.stats.real_tokens,
                                                       started - job.enqueued, result.stats.seconds))
