"""What every served model shares: lazy load, active-adapter hot reload, idle unload, one lock.

`AdapterHost` keeps one loaded model (a reranker, a chat generator) that follows an active adapter
folder. All heavy work (loading, applying adapters, scoring, closing) runs on the host's own model
thread (`in_model_thread`), so the event loop never stalls and the model is always driven from the
same thread: torch's OpenMP keeps one team of threads per calling thread, and a rotating pool of
callers left idle teams spinning beside the working one. One asyncio lock guards the model: a request holds it while it
runs, and reload and unload take it too, so neither can happen in the middle of a request.
Subclasses say how to load, apply an adapter folder (None: the plain base) and close.

The active path is resolved once per check (a promotion's link points at an immutable version
folder), so the fingerprint and the manifest recorded for a swap always describe the adapter that
was applied, even when another promotion lands in the middle of the check.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Generic, TypeVar

from backends.adapters import AdapterError, Manifest, manifest_fingerprint, read_manifest

log = logging.getLogger(__name__)
M = TypeVar("M")
T = TypeVar("T")


class AdapterHost(Generic[M]):
    """A lazily loaded model that serves the active adapter folder and unloads when idle."""

    def __init__(self, active_adapter: Path | None = None, reload_check_s: float = 2.0, idle_unload_s: float = 600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.active_adapter = active_adapter
        self.reload_check_s = reload_check_s
        self.idle_unload_s = idle_unload_s
        self._clock = clock
        self._lock = asyncio.Lock()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._model: M | None = None
        self._serving_fingerprint: str | None = None
        self._serving_manifest: Manifest | None = None
        self._rejected_fingerprint: str | None = None
        self._last_check = float("-inf")
        self._last_used = clock()
        self.in_flight = 0
        self.loads = 0
        self.unloads = 0
        self.last_adapter_error: str | None = None
        self.last_load_seconds = 0.0

    # -- what a model kind defines (all run in a worker thread) ---------------------------------
    def _load(self) -> M:
        raise NotImplementedError

    def _apply_adapter(self, model: M, folder: Path | None) -> None:
        """Serve `folder` (verified and checked for compatibility) or the plain base; raise AdapterError."""
        raise NotImplementedError

    def _close_model(self, model: M) -> None:
        raise NotImplementedError

    # -- shared machinery ----------------------------------------------------------------------
    async def in_model_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on the model's thread and wait for it without blocking the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, functools.partial(fn, *args))

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def adapter_fingerprint(self) -> str | None:
        """sha256 of the served adapter's manifest.json (None: the plain base, or not loaded)."""
        return self._serving_fingerprint

    @property
    def adapter_manifest(self) -> Manifest | None:
        """The served adapter's manifest (its run id, base, metrics); None: the plain base."""
        return self._serving_manifest

    @contextlib.asynccontextmanager
    async def _using(self) -> AsyncIterator[M]:
        """Hold the model for one request: loaded, on the current adapter, not unloaded meanwhile."""
        self.in_flight += 1
        try:
            async with self._lock:
                self.last_load_seconds = await self._ensure_loaded()
                await self._maybe_reload_adapter()
                assert self._model is not None
                yield self._model
        finally:
            self.in_flight -= 1
            self._last_used = self._clock()

    async def _ensure_loaded(self) -> float:
        if self._model is not None:
            return 0.0
        start = time.perf_counter()
        self._model = await self.in_model_thread(self._load)
        self.loads += 1
        self._serving_fingerprint = self._serving_manifest = None
        self._last_check = float("-inf")
        return time.perf_counter() - start

    async def _maybe_reload_adapter(self) -> None:
        """At most every reload_check_s, swap in a changed, complete, compatible active adapter."""
        now = self._clock()
        if self.active_adapter is None or now - self._last_check < self.reload_check_s:
            return
        self._last_check = now
        if self.active_adapter.is_symlink() and not self.active_adapter.exists():
            # A dangling link is a broken promotion, not a rollback: keep the last good adapter, loudly.
            self.last_adapter_error = f"the active adapter {self.active_adapter} points to a missing folder"
            log.warning("keeping the last good adapter: %s", self.last_adapter_error)
            return
        if self.active_adapter.exists():
            resolved = self.active_adapter.resolve()  # the immutable version folder
            fingerprint = manifest_fingerprint(resolved)
            if fingerprint is None:  # folder there but no manifest yet: still being written
                return
            folder: Path | None = resolved
        else:  # no active adapter (never promoted, or rolled back to the base)
            fingerprint, folder = None, None
        if fingerprint == self._serving_fingerprint or (fingerprint and fingerprint == self._rejected_fingerprint):
            return
        model = self._model
        assert model is not None
        try:
            manifest = None if folder is None else await asyncio.to_thread(read_manifest, folder)
            await self.in_model_thread(self._apply_adapter, model, folder)
        except (AdapterError, OSError) as exc:
            # A half-written or foreign adapter: keep serving the previous one. Once the manifest
            # changes again (the writer finished), the next check retries it.
            self.last_adapter_error = str(exc)
            self._rejected_fingerprint = fingerprint
            log.warning("ignoring active adapter: %s", exc)
            return
        self._serving_fingerprint, self._serving_manifest = fingerprint, manifest
        self._rejected_fingerprint = None
        self.last_adapter_error = None

    async def unload_if_idle(self) -> bool:
        """Unload the model if no request is in flight and it has been idle long enough."""
        if self._model is None or self.in_flight or self._clock() - self._last_used < self.idle_unload_s:
            return False
        async with self._lock:
            if self._model is None or self.in_flight or self._clock() - self._last_used < self.idle_unload_s:
                return False
            model, self._model = self._model, None
            self._serving_fingerprint = self._serving_manifest = None
            await self.in_model_thread(self._close_model, model)
            self.unloads += 1
            return True

    async def warm(self) -> None:
        """Load the model and its active adapter now (the first request would otherwise pay for it)."""
        async with self._using():
            pass

    async def refresh_adapter(self) -> None:
        """Pick up a promotion or rollback now if the model is loaded (a server calls this every
        reload_check_s, so a swap lands between requests instead of delaying the next one)."""
        if self._model is None or self._lock.locked():
            return
        async with self._lock:
            if self._model is not None:
                await self._maybe_reload_adapter()

    async def run_idle_reaper(self, every_s: float = 5.0, busy: Callable[[], bool] = lambda: False) -> None:
        """Background task: every `every_s` seconds unload the model if idle and not `busy()` (work
        queued for it but not yet started) until cancelled."""
        while True:
            await asyncio.sleep(every_s)
            if not busy():
                await self.unload_if_idle()

    async def close(self) -> None:
        async with self._lock:
            if self._model is not None:
                model, self._model = self._model, None
                await self.in_model_thread(self._close_model, model)
