"""The process's one MLX thread: every MLX call (training, generation) runs on it, in order.

MLX streams belong to the thread that made them, and callers reach MLX from whichever worker
`asyncio.to_thread` picks; so all MLX work of the process runs on one daemon thread, and wrapped
methods may be called from any thread. The thread never ends: when a thread that used MLX exits
while the interpreter is finalizing, MLX's thread-local destructor takes the GIL and the process
aborts ("terminate called without an active exception"), seen with mlx 0.32.

The main thread needs one more step: mlx 0.32 keeps its compile cache per thread and frees a
thread's cache only when that thread calls `mx.clear_streams()`. Entries left in the main thread's
cache are destroyed by C++ thread-local destructors after `Py_Finalize` and segfault (exit 139).
`release_mlx_at_exit` registers an `atexit` hook (atexit runs on the main thread) that clears it;
every path that loads MLX calls it first. Details and a reproduction: docs/finalization-crash.md.
"""

from __future__ import annotations

import atexit
import functools
import queue
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")
# A queued call: the function, its arguments and the future its result goes to.
_Call = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], Future[Any]]


class MlxWorker:
    """One daemon thread that runs submitted calls in order and returns their results."""

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[_Call] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name="mlx-worker", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            fn, args, kwargs, future = self._calls.get()
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args, **kwargs))
                except BaseException as exc:  # handed to the caller, who re-raises it
                    future.set_exception(exc)

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """Queue a call; the future resolves when the MLX thread has run it."""
        future: Future[T] = Future()
        self._calls.put((fn, args, kwargs, future))
        return future

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn` on the MLX thread and return its result (directly when already there)."""
        if threading.current_thread() is self.thread:
            return fn(*args, **kwargs)
        return self.submit(fn, *args, **kwargs).result()


def _clear_main_thread_mlx() -> None:
    mx = sys.modules.get("mlx.core")
    if mx is not None and hasattr(mx, "clear_streams"):
        mx.clear_streams()


@functools.lru_cache(maxsize=1)
def release_mlx_at_exit() -> None:
    """Once per process: at exit, free the main thread's MLX streams and compile cache while the
    interpreter is still alive (see the module docstring). Harmless when MLX was never loaded."""
    atexit.register(_clear_main_thread_mlx)


@functools.lru_cache(maxsize=1)
def mlx_worker() -> MlxWorker:
    """The process's MLX thread, started on first use."""
    release_mlx_at_exit()
    return MlxWorker()


def pinned(method: Callable[..., T]) -> Callable[..., T]:
    """Decorator: run the method on the MLX thread."""
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        return mlx_worker().call(method, *args, **kwargs)
    return wrapper
