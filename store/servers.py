"""HTTP rerank servers in the store: each `ragweld-tui serve` process registers itself, refreshes
its figures with a heartbeat every few seconds and records a clean stop, so any other process (the
TUI's runs list, `ragweld-tui runs`) shows what is served and notices a server that was killed.

A server's state is judged when it is read, as a run's owner is (store.staleness): on this host by
its pid and process start time (a recycled pid is not the server), elsewhere by a heartbeat older
than the store's `stale_after_s`. Writes run inside the caller's write transaction
(`RunStore.transaction()`); reads take any connection.
"""

from __future__ import annotations

import math
import os
import sqlite3
import time
from typing import Literal

import aiosqlite
from pydantic import BaseModel, ConfigDict

from store.db import fetch_all, fetch_one
from store.errors import InvalidTransitionError, ServerNotFoundError
from store.ids import new_server_id, validate_run_id, validate_server_id
from store.lease import owner_alive, process_start

ServerState = Literal["serving", "stopped", "gone"]
GONE_LISTED_S = 24 * 3600.0  # a dead server stays in the default list this long after its last heartbeat
_COLUMNS = (
    "id, pid, host, process_started, address, base_model, backend, adapter_run_id, adapter_fingerprint, "
    "requests, errors, p50_ms, p95_ms, started_at, heartbeat_at, stopped_at"
)


class ServerRecord(BaseModel):
    """One row of `servers` plus its state when read: `serving` (alive), `stopped` (shut down
    cleanly) or `gone` (its process died without stopping; `gone_reason` says how that was told)."""

    model_config = ConfigDict(frozen=True)

    id: str
    pid: int
    host: str
    process_started: float | None
    address: str
    base_model: str | None
    backend: str | None
    adapter_run_id: str | None
    adapter_fingerprint: str | None
    requests: int
    errors: int
    p50_ms: float | None
    p95_ms: float | None
    started_at: float
    heartbeat_at: float
    stopped_at: float | None
    state: ServerState
    gone_reason: str | None = None


def judge(row: sqlite3.Row, now: float, host: str, stale_after_s: float) -> tuple[ServerState, str | None]:
    """The state of a `servers` row and, when gone, why it is taken for dead."""
    if row["stopped_at"] is not None:
        return "stopped", None
    pid, owner = int(row["pid"]), str(row["host"])
    if owner == host:  # a busy or stopped (SIGSTOP) server is alive; only its process ending is gone
        if owner_alive(pid, row["process_started"]):
            return "serving", None
        return "gone", f"process {pid} on {owner} is gone"
    silent = now - float(row["heartbeat_at"])
    if silent > stale_after_s:
        return "gone", f"no heartbeat from {owner} for {silent:.0f} s"
    return "serving", None


def _record(row: sqlite3.Row, now: float, host: str, stale_after_s: float) -> ServerRecord:
    state, reason = judge(row, now, host, stale_after_s)
    return ServerRecord.model_validate(dict(row) | {"state": state, "gone_reason": reason})


async def insert_server(conn: aiosqlite.Connection, address: str, base_model: str | None, backend: str | None,
                        host: str) -> ServerRecord:
    """Inside the caller's write transaction: register this process as a server (serving, no adapter
    reported yet)."""
    if not isinstance(address, str) or not address.strip():
        raise ValueError("a server's address must be a non-empty string such as 127.0.0.1:8787")
    pid, now = os.getpid(), time.time()
    record = ServerRecord(id=new_server_id(), pid=pid, host=host, process_started=process_start(pid),
                          address=address, base_model=base_model, backend=backend, adapter_run_id=None,
                          adapter_fingerprint=None, requests=0, errors=0, p50_ms=None, p95_ms=None, started_at=now,
                          heartbeat_at=now, stopped_at=None, state="serving")
    await conn.execute(
        """INSERT INTO servers (id, pid, host, process_started, address, base_model, backend, started_at, heartbeat_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (record.id, pid, host, record.process_started, address, base_model, backend, now, now),
    )
    return record


def _count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"a server's {name} must be a non-negative int, not {value!r}")
    return value


def _millis(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"a server's {name} must be a finite number of ms >= 0 or None, not {value!r}")
    return float(value)


async def update_server(conn: aiosqlite.Connection, server_id: str, *, adapter_run_id: str | None,
                        adapter_fingerprint: str | None, requests: int, errors: int, p50_ms: float | None,
                        p95_ms: float | None) -> None:
    """Inside the caller's write transaction: the server's adapter (None: the base model) and running
    totals, with the heartbeat. A stopped server is refused: its process said it was done."""
    validate_server_id(server_id)
    if adapter_run_id is not None:
        validate_run_id(adapter_run_id)
    cursor = await conn.execute(
        """UPDATE servers SET adapter_run_id = ?, adapter_fingerprint = ?, requests = ?, errors = ?, p50_ms = ?,
           p95_ms = ?, heartbeat_at = ? WHERE id = ? AND stopped_at IS NULL""",
        (adapter_run_id, adapter_fingerprint, _count("requests", requests), _count("errors", errors),
         _millis("p50_ms", p50_ms), _millis("p95_ms", p95_ms), time.time(), server_id),
    )
    if cursor.rowcount == 0:
        if await fetch_one(conn, "SELECT 1 FROM servers WHERE id = ?", (server_id,)) is None:
            raise ServerNotFoundError(f"no server {server_id} in the store")
        raise InvalidTransitionError(f"server {server_id} has stopped; it cannot be updated")


async def stop_server(conn: aiosqlite.Connection, server_id: str) -> None:
    """Inside the caller's write transaction: record a clean shutdown (a second stop keeps the first time)."""
    validate_server_id(server_id)
    cursor = await conn.execute(
        "UPDATE servers SET stopped_at = COALESCE(stopped_at, ?) WHERE id = ?", (time.time(), server_id)
    )
    if cursor.rowcount == 0:
        raise ServerNotFoundError(f"no server {server_id} in the store")


async def get_server(conn: aiosqlite.Connection, server_id: str, host: str, stale_after_s: float) -> ServerRecord:
    """One server with its state now, or ServerNotFoundError."""
    validate_server_id(server_id)
    row = await fetch_one(conn, f"SELECT {_COLUMNS} FROM servers WHERE id = ?", (server_id,))
    if row is None:
        raise ServerNotFoundError(f"no server {server_id} in the store")
    return _record(row, time.time(), host, stale_after_s)


async def list_servers(conn: aiosqlite.Connection, host: str, stale_after_s: float,
                       include_finished: bool = False) -> list[ServerRecord]:
    """Servers not stopped that beat within `GONE_LISTED_S` (a live one beats every few seconds, so a
    dead one stays listed as gone that long), newest first; every server ever registered, stopped
    ones included, with `include_finished`."""
    now = time.time()
    rows = await fetch_all(
        conn,
        f"""SELECT {_COLUMNS} FROM servers WHERE :all OR (stopped_at IS NULL AND heartbeat_at >= :since)
            ORDER BY started_at DESC, pk DESC""",
        {"all": include_finished, "since": now - GONE_LISTED_S},
    )
    return [_record(row, now, host, stale_after_s) for row in rows]
