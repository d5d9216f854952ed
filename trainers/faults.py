"""Named kill points for the fault-injection tests: the code calls `fault_point(name)` where a crash
would hurt most (between a write and its rename, between a link swap and its commit).

Off unless the environment says so: `RAGWELD_FAULT=checkpoint.after_rename` kills the process
there with SIGKILL (as `kill -9` would: no cleanup, no flush); `RAGWELD_FAULT=name@N` at the N-th
time the point is reached. `RAGWELD_FAULT_ENOSPC=name` raises "No space left on device" there
instead, to test a full disk. Reading one environment variable costs nothing next to the file work
these points sit beside.
"""

from __future__ import annotations

import errno
import os
import signal

_hits: dict[str, int] = {}


def _matches(spec: str | None, name: str) -> bool:
    if not spec:
        return False
    target, _, nth = spec.partition("@")
    if target != name:
        return False
    _hits[name] = _hits.get(name, 0) + 1
    return not nth or _hits[name] == int(nth)


def fault_point(name: str) -> None:
    """Die here (SIGKILL) or raise ENOSPC here when a test asked for it; otherwise do nothing."""
    if _matches(os.environ.get("RAGWELD_FAULT"), name):
        os.kill(os.getpid(), signal.SIGKILL)
    if _matches(os.environ.get("RAGWELD_FAULT_ENOSPC"), name):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), name)
