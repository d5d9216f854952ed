"""EventWriter: batched, non-blocking event appends for one run, fed from the loop or a worker thread.

Trainers run their steps in a worker thread while the asyncio loop owns the store. Emitting only
validates, encodes and appends to a thread-safe deque; a background task commits the buffer in
transactions of at most `max_batch` events every `flush_interval_s`, or at once when a batch is
full. `last_committed_seq` says what is durable (survives a process crash). The same task keeps the
run's heartbeat fresh even when no events flow, so other processes can tell it is alive.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import aiosqlite

from store.append import PendingEvent, append_batch, pending
from store.errors import StoreError
from store.events import Event
from store.models import RunRecord


class WriterHost(Protocol):
    """What an EventWriter needs of its store (`RunStore` is one): transactions, the last committed
    seq, the heartbeat and status changes. A protocol, so the writer does not import the store."""

    owner_token: str  # this process's lease token: a run another process took over refuses its events

    def transaction(self) -> AbstractAsyncContextManager[aiosqlite.Connection]: ...

    async def last_seq(self, run_id: str) -> int: ...

    async def heartbeat(self, run_id: str) -> None: ...

    async def set_status(self, run_id: str, status: str, error: str | None = None,
                         reason: str | None = None) -> RunRecord: ...

LOG = logging.getLogger(__name__)
HEARTBEAT_MIN_S = 1.0


class EventWriter:
    """Buffers events of one run and commits them in batches; see the module docstring.

    Use `async with store.writer(run_id) as writer:`; inside, call `writer.emit(event, step=...)`
    on the loop or `writer.emit_threadsafe(event, step=...)` from a worker thread.
    """

    def __init__(
        self,
        store: WriterHost,
        run_id: str,
        *,
        on_close: Callable[[EventWriter], Any] | None = None,
        flush_interval_s: float = 0.25,
        max_batch: int = 512,
        heartbeat_interval_s: float = 5.0,
        max_pending: int = 100_000,
    ) -> None:
        if max_batch < 1 or max_pending < max_batch or flush_interval_s <= 0:
            raise ValueError("need max_batch >= 1, max_pending >= max_batch and flush_interval_s > 0")
        self.store = store
        self.run_id = run_id
        self._on_close = on_close
        self.flush_interval_s = flush_interval_s
        self.max_batch = max_batch
        self.heartbeat_interval_s = heartbeat_interval_s
        self.max_pending = max_pending
        self.error: BaseException | None = None  # last failed commit; events stay buffered and are retried
        self._buffer: collections.deque[PendingEvent] = collections.deque()
        self._last_committed = 0
        self._last_beat = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._wake = asyncio.Event()
        self._wake_requested = False
        self._space = threading.Event()
        self._flush_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def last_committed_seq(self) -> int:
        """The highest seq of this run known to be committed (0 before the first event)."""
        return self._last_committed

    @property
    def pending_count(self) -> int:
        """Events emitted but not yet committed."""
        return len(self._buffer)

    async def start(self) -> EventWriter:
        """Bind to the running loop, learn the run's last seq and start the flush task."""
        if self._task is not None:
            return self
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._last_committed = await self.store.last_seq(self.run_id)
        self._task = asyncio.create_task(self._run(), name=f"event-writer-{self.run_id}")
        return self

    async def __aenter__(self) -> EventWriter:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def emit(self, event: Event, *, step: int | None = None, ts: float | None = None) -> None:
        """Queue an event from the event loop's thread; never waits for a commit."""
        self._check_open()
        if threading.get_ident() != self._loop_thread:
            raise StoreError("EventWriter.emit() called off the event loop thread; use emit_threadsafe()")
        self._buffer.append(pending(event, step, ts))
        if len(self._buffer) >= self.max_batch:
            self._wake.set()

    def emit_threadsafe(self, event: Event, *, step: int | None = None, ts: float | None = None) -> None:
        """Queue an event from any thread (a training worker).

        Encoding happens here, in the caller's thread. The loop is woken only when a batch is full,
        not per event. If the buffer holds `max_pending` events (the disk cannot keep up) the caller
        blocks until a batch is committed: back-pressure instead of unbounded memory.
        """
        self._check_open()
        item = pending(event, step, ts)
        while len(self._buffer) >= self.max_pending and not self._closed:
            self._request_wake()
            self._space.clear()
            self._space.wait(0.05)
        self._buffer.append(item)
        if len(self._buffer) >= self.max_batch and not self._wake_requested:
            self._request_wake()

    def _request_wake(self) -> None:
        assert self._loop is not None
        self._wake_requested = True
        try:
            self._loop.call_soon_threadsafe(self._wake.set)
        except RuntimeError:
            pass  # loop closed; close() already drained or failed loudly

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"the event writer of run {self.run_id} is closed")
        if self._loop is None:
            raise StoreError("the event writer is not started; use `async with store.writer(run_id)`")

    async def flush(self) -> int:
        """Commit everything emitted so far; return the last committed seq. Raises if the commit fails."""
        async with self._flush_lock:
            await self._drain()
        return self._last_committed

    async def _drain(self) -> None:
        """Commit the buffer in transactions of at most `max_batch`; a failed batch goes back in front."""
        while self._buffer:
            batch: list[PendingEvent] = []
            while self._buffer and len(batch) < self.max_batch:
                batch.append(self._buffer.popleft())
            now = time.time()
            beat = now if now - self._last_beat >= HEARTBEAT_MIN_S else None  # one UPDATE a second is plenty
            try:
                async with self.store.transaction() as conn:
                    last = await append_batch(conn, self.run_id, batch, heartbeat_at=beat,
                                              owner_token=self.store.owner_token)
            except BaseException as exc:
                self._buffer.extendleft(reversed(batch))
                self.error = exc
                raise
            self._last_committed = last
            if beat is not None:
                self._last_beat = beat
            self.error = None
            self._space.set()

    async def _run(self) -> None:
        """Flush on an interval or when woken by a full batch; heartbeat when idle."""
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.flush_interval_s)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            self._wake_requested = False
            if self._closed:
                return
            try:
                async with self._flush_lock:
                    await self._drain()
                    if time.time() - self._last_beat >= self.heartbeat_interval_s:
                        await self.store.heartbeat(self.run_id)
                        self._last_beat = time.time()
            except Exception as exc:  # keep the events and retry next interval; flush()/close() re-raise
                LOG.warning("event writer for run %s could not commit (will retry): %s", self.run_id, exc)

    def discard_pending(self) -> int:
        """Drop the events not yet committed (when they cannot be: a full disk); returns how many."""
        dropped = len(self._buffer)
        self._buffer.clear()
        self._space.set()
        return dropped

    async def close(self) -> int:
        """Stop the flush task and commit everything still buffered; return the last committed seq."""
        if self._task is None or self._closed:
            self._closed = True
            return self._last_committed
        self._closed = True
        self._wake.set()
        await self._task
        self._space.set()
        if self._on_close is not None:
            self._on_close(self)
        return await self.flush()

    async def set_status(self, status: str, error: str | None = None, reason: str | None = None) -> RunRecord:
        """Commit pending events first, then change the run status, so the state event comes last."""
        await self.flush()
        return await self.store.set_status(self.run_id, status, error=error, reason=reason)
