"""HTTP servers in the store: register, heartbeat figures, stop; a killed server process reads as gone."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from store import (
    InvalidServerIdError,
    InvalidTransitionError,
    RunStore,
    ServerNotFoundError,
)
from store.db import connect
from store.schema import MIGRATIONS, migrate

REPO = Path(__file__).resolve().parents[2]
RUN = "r20250101-120000-0000000a"
# A server as `ragweld-tui serve` registers itself: prints its id, then lives until killed.
SERVER = textwrap.dedent(
    """
    import asyncio, sys, time
    from store import RunStore

    async def main():
        async with await RunStore.open(sys.argv[1]) as store:
            server = await store.register_server("127.0.0.1:8799", "Qwen/Qwen3-Reranker-0.6B", "torch")
            await store.update_server(server.id, adapter_run_id=None, adapter_fingerprint=None, requests=3,
                                      errors=0, p50_ms=1.5, p95_ms=2.5)
            print(server.id, flush=True)
            time.sleep(600)

    asyncio.run(main())
    """
)


def _sql(db: Path, statement: str, params: tuple[object, ...]) -> None:
    """A write as another machine's server would leave it (plain SQL: this host cannot be elsewhere)."""
    with sqlite3.connect(db) as conn:
        conn.execute(statement, params)
    conn.close()


async def test_register_update_list_and_stop(tmp_path: Path) -> None:
    async with await RunStore.open(tmp_path / "s.sqlite") as store:
        assert await store.list_servers() == []
        server = await store.register_server("127.0.0.1:8787", "Qwen/Qwen3-Reranker-0.6B", "torch")
        assert server.id.startswith("srv-") and server.state == "serving" and server.gone_reason is None
        assert (server.pid, server.host, server.requests, server.adapter_run_id) == (
            os.getpid(), socket.gethostname(), 0, None)
        assert server.started_at == server.heartbeat_at and server.stopped_at is None
        assert await store.get_server(server.id) == server
        await store.update_server(server.id, adapter_run_id=RUN, adapter_fingerprint="ab" * 32, requests=123,
                                  errors=2, p50_ms=4.2, p95_ms=9)
        [listed] = await store.list_servers()
        assert (listed.id, listed.state, listed.adapter_run_id, listed.adapter_fingerprint) == (
            server.id, "serving", RUN, "ab" * 32)
        assert (listed.requests, listed.errors, listed.p50_ms, listed.p95_ms) == (123, 2, 4.2, 9.0)
        assert listed.heartbeat_at >= server.heartbeat_at and listed.address == "127.0.0.1:8787"
        newer = await store.register_server("127.0.0.1:8788")
        assert [s.id for s in await store.list_servers()] == [newer.id, server.id]  # newest first

        await store.stop_server(server.id)
        assert [s.id for s in await store.list_servers()] == [newer.id]  # a clean stop leaves the list
        stopped = await store.get_server(server.id)
        assert stopped.state == "stopped" and stopped.stopped_at is not None and stopped.gone_reason is None
        await store.stop_server(server.id)  # stopping twice keeps the first time
        assert (await store.get_server(server.id)).stopped_at == stopped.stopped_at
        assert [(s.id, s.state) for s in await store.list_servers(include_finished=True)] == [
            (newer.id, "serving"), (server.id, "stopped")]
        with pytest.raises(InvalidTransitionError, match="has stopped"):
            await store.update_server(server.id, adapter_run_id=None, adapter_fingerprint=None, requests=0,
                                      errors=0, p50_ms=None, p95_ms=None)


async def test_bad_ids_and_figures_are_refused(tmp_path: Path) -> None:
    async with await RunStore.open(tmp_path / "s.sqlite") as store:
        server = await store.register_server("127.0.0.1:8787")
        with pytest.raises(InvalidServerIdError, match="srv-<YYYYMMDD>"):
            await store.get_server("srv-1'; DROP TABLE servers; --")
        with pytest.raises(ServerNotFoundError, match="no server srv-20250101-120000-00000000"):
            await store.stop_server("srv-20250101-120000-00000000")
        with pytest.raises(ServerNotFoundError):
            await store.update_server("srv-20250101-120000-00000000", adapter_run_id=None, adapter_fingerprint=None,
                                      requests=0, errors=0, p50_ms=None, p95_ms=None)
        for bad in ({"requests": -1}, {"errors": True}, {"p50_ms": float("nan")}, {"p95_ms": -2.0},
                    {"adapter_run_id": "../../etc"}):
            figures: dict = {"adapter_run_id": None, "adapter_fingerprint": None, "requests": 0, "errors": 0,
                             "p50_ms": None, "p95_ms": None} | bad
            with pytest.raises(ValueError):
                await store.update_server(server.id, **figures)
        with pytest.raises(ValueError, match="address"):
            await store.register_server(" ")
        assert (await store.get_server(server.id)).requests == 0


async def test_a_killed_server_process_is_gone(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    async with await RunStore.open(db):
        pass  # created and migrated before the child opens it
    child = subprocess.Popen([sys.executable, "-c", SERVER, str(db)], stdout=subprocess.PIPE, text=True,
                             env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        assert child.stdout is not None
        server_id = child.stdout.readline().strip()
        async with await RunStore.open(db) as store:
            [server] = await store.list_servers()
            assert (server.id, server.state, server.pid, server.requests, server.p95_ms) == (
                server_id, "serving", child.pid, 3, 2.5)
            child.send_signal(signal.SIGKILL)
            child.wait()  # reaped: a zombie still answers signal 0
            [server] = await store.list_servers()
            assert server.state == "gone" and server.stopped_at is None
            assert server.gone_reason == f"process {child.pid} on {socket.gethostname()} is gone"
    finally:
        child.kill()
        child.wait()


async def test_a_recycled_pid_is_not_the_server(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    async with await RunStore.open(db) as store:
        server = await store.register_server("127.0.0.1:8787")
        _sql(db, "UPDATE servers SET process_started = process_started + 1 WHERE id = ?", (server.id,))
        gone = await store.get_server(server.id)
        assert gone.state == "gone" and f"process {os.getpid()}" in (gone.gone_reason or "")


async def test_a_server_on_another_host_is_judged_by_its_heartbeat(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    async with await RunStore.open(db, stale_after_s=30) as store:
        server = await store.register_server("10.0.0.2:8787")
        _sql(db, "UPDATE servers SET host = 'gpu-box', pid = 1, heartbeat_at = ? WHERE id = ?",
             (time.time() - 5, server.id))
        assert (await store.get_server(server.id)).state == "serving"
        _sql(db, "UPDATE servers SET heartbeat_at = ? WHERE id = ?", (time.time() - 120, server.id))
        [gone] = await store.list_servers()
        assert gone.state == "gone" and gone.gone_reason == "no heartbeat from gpu-box for 120 s"
        # Long dead: out of the default list, still in the full one.
        _sql(db, "UPDATE servers SET heartbeat_at = ? WHERE id = ?", (time.time() - 25 * 3600, server.id))
        assert await store.list_servers() == []
        assert [s.state for s in await store.list_servers(include_finished=True)] == ["gone"]


async def test_servers_migration_applies_to_an_existing_store(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite"
    conn = await connect(db)
    try:
        await migrate(conn, db, MIGRATIONS[:-1])  # the store as the previous version left it
    finally:
        await conn.close()
    _sql(db, "INSERT INTO runs (id, kind, name, status, created_at) VALUES (?, 'reranker', 'old', 'completed', 0)",
         (RUN,))
    async with await RunStore.open(db) as store:
        assert (await store.get_run(RUN)).name == "old"
        server = await store.register_server("127.0.0.1:8787")
        assert [s.id for s in await store.list_servers()] == [server.id]
    with sqlite3.connect(db) as check:
        names = [r[0] for r in check.execute("SELECT name FROM store_migrations ORDER BY id")]
        assert "0007_servers" in names and names == [m.name for m in MIGRATIONS]
        assert check.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
    check.close()
