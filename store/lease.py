"""Run ownership: one live owner per run, taken atomically in the store.

A lease is (pid, host, process start time, token) on the run's row. It is taken in the same
`BEGIN IMMEDIATE` transaction that checks the run's status, so two processes resuming one run
cannot both win. Liveness is judged by the pid when the owner is on this host (a stopped process,
SIGSTOP, is alive and keeps its run), by the heartbeat otherwise. The start time guards against a
recycled pid.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import aiosqlite

from store.db import fetch_one
from store.errors import InvalidTransitionError


class RunOwnedError(InvalidTransitionError):
    """The run is running under another live owner; it cannot be taken over."""


def process_start(pid: int) -> float | None:
    """The start time of a process in clock ticks since boot (Linux /proc), or None where unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return float(fields[19])  # field 22 of stat; [0] here is field 3 (state)
    except (OSError, IndexError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (signal 0 probes without signalling)."""
    if os.name == "nt":  # os.kill(pid, 0) would terminate it on Windows; rely on the heartbeat there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists but belongs to someone else
    return True


def owner_alive(pid: int, started: float | None) -> bool:
    """Whether the owning process on this host still lives (and is the same process, not a reused pid)."""
    if not pid_alive(pid):
        return False
    now = process_start(pid)
    return started is None or now is None or now == started


def describe_owner(row: sqlite3.Row) -> str:
    return f"process {row['owner_pid']} on {row['owner_host']}"


async def take_lease(conn: aiosqlite.Connection, pk: int, run_id: str, token: str, host: str, now: float) -> None:
    """Inside the caller's write transaction: make this process the run's owner, or raise RunOwnedError.

    running -> running is allowed only for the same token (the owner restating itself).
    """
    row = await fetch_one(conn, "SELECT status, owner_pid, owner_host, owner_token FROM runs WHERE pk = ?", (pk,))
    if row is not None and row["status"] == "running" and row["owner_token"] != token:
        raise RunOwnedError(f"run {run_id} is running under {describe_owner(row)}; it cannot be taken over")
    pid = os.getpid()
    await conn.execute(
        """UPDATE runs SET status = 'running', started_at = COALESCE(started_at, ?), heartbeat_at = ?,
           finished_at = NULL, error = NULL, owner_pid = ?, owner_host = ?, owner_token = ?, owner_started = ?
           WHERE pk = ?""",
        (now, now, pid, host, token, process_start(pid), pk),
    )


async def check_owner(conn: aiosqlite.Connection, pk: int, run_id: str, token: str) -> None:
    """Inside the caller's write transaction: refuse a write to a running run that another process
    owns now (its lease was taken over after this process was judged dead, e.g. a stale heartbeat
    from another host). The writer learns it lost the run instead of writing beside the new owner."""
    row = await fetch_one(conn, "SELECT status, owner_pid, owner_host, owner_token FROM runs WHERE pk = ?", (pk,))
    if row is not None and row["status"] == "running" and row["owner_token"] not in (None, token):
        raise RunOwnedError(f"run {run_id} is now owned by {describe_owner(row)}; this process no longer writes to it")
