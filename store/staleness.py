"""Finding dead runs: a `running` run whose owner is gone becomes `interrupted` (and resumable).

An owner on this host is judged by its pid alone: a stopped (SIGSTOP) or busy process keeps its run
however old its heartbeat. Owners elsewhere (and this process) are judged by the heartbeat.
"""

from __future__ import annotations

import os
import sqlite3

import aiosqlite

from store.append import insert_events, pending
from store.db import fetch_all
from store.events import StateEvent
from store.lease import owner_alive

RUNNING = """SELECT pk, id, heartbeat_at, started_at, created_at, owner_pid, owner_host, owner_started
             FROM runs WHERE status = 'running'"""


def stale_reason(row: sqlite3.Row, now: float, host: str, stale_after_s: float) -> str | None:
    """Why a `running` row (from `RUNNING`) is dead, or None if it may still be alive."""
    pid, owner_host = row["owner_pid"], row["owner_host"]
    if pid is not None and owner_host == host and pid != os.getpid():
        if not owner_alive(pid, row["owner_started"]):
            return f"owner process {pid} on {owner_host} is gone"
        return None
    last = row["heartbeat_at"] or row["started_at"] or row["created_at"]
    if now - last > stale_after_s:
        return f"no heartbeat for {now - last:.0f} s"
    return None


async def mark_stale(conn: aiosqlite.Connection, now: float, host: str, stale_after_s: float) -> list[str]:
    """Inside the caller's write transaction: re-read the running runs (they may have moved on) and
    mark the dead ones `interrupted`, with a state event; returns their ids."""
    marked = []
    for row in await fetch_all(conn, RUNNING):
        reason = stale_reason(row, now, host, stale_after_s)
        if reason:
            await conn.execute("UPDATE runs SET status = 'interrupted', error = ? WHERE pk = ?",
                               (f"interrupted: {reason}", row["pk"]))
            await insert_events(conn, int(row["pk"]), [pending(StateEvent(status="interrupted", reason=reason))])
            marked.append(row["id"])
    return marked
