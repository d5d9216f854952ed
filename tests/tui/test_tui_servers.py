"""The runs list shows the HTTP servers registered in the store: a live one serving, a killed one gone."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import textwrap
from pathlib import Path

from ragweld_tui.format import server_line
from ragweld_tui.widgets.status_line import StatusLine
from store import RunStore, ServerRecord
from tests.tui.conftest import fixed_app, refresh, screen_text, settle, wait_for_text
from tests.tui.fixture_db import RUN_A

REPO = Path(__file__).resolve().parents[2]
# A server as `ragweld-tui serve` registers itself, serving run A's adapter: prints its id, then
# lives until killed.
SERVER = textwrap.dedent(
    """
    import asyncio, sys, time
    from store import RunStore

    async def main():
        async with await RunStore.open(sys.argv[1]) as store:
            server = await store.register_server("127.0.0.1:8799", "embedded:tiny-qwen3-reranker", "torch")
            await store.update_server(server.id, adapter_run_id=sys.argv[2], adapter_fingerprint="ab" * 32,
                                      requests=7, errors=1, p50_ms=1.5, p95_ms=12.25)
            print(server.id, flush=True)
            time.sleep(600)

    asyncio.run(main())
    """
)


def test_server_lines_for_the_base_model_and_a_stopped_server() -> None:
    server = ServerRecord(id="srv-20250101-120000-0000000a", pid=7, host="box", process_started=None,
                          address="127.0.0.1:8787", base_model=None, backend=None, adapter_run_id=None,
                          adapter_fingerprint=None, requests=0, errors=0, p50_ms=None, p95_ms=None, started_at=100.0,
                          heartbeat_at=400.0, stopped_at=None, state="serving")
    assert server_line(server, 400.0) == (
        "● serving http://127.0.0.1:8787 · base model · 0 req · 0 err · p50 — · p95 — · up 5m00s")
    stopped = server.model_copy(update={"state": "stopped", "stopped_at": 500.0, "address": "http://[::1]:80"})
    assert server_line(stopped, 600.0) == "✗ server http://[::1]:80 (pid 7) stopped"


async def test_a_serving_server_then_gone_then_stopped(fixture_db: Path, app_config) -> None:
    app = fixed_app(fixture_db, app_config)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        line = app.screen.query_one("#servers", StatusLine)
        without = screen_text(app)
        assert not line.display and "serving" not in without
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", SERVER, str(fixture_db), RUN_A, stdout=asyncio.subprocess.PIPE,
            env=dict(os.environ, PYTHONPATH=str(REPO)))
        try:
            assert child.stdout is not None
            server_id = (await child.stdout.readline()).decode().strip()
            text = await wait_for_text(pilot, "● serving http://127.0.0.1:8799")
            assert line.display and line.text == (f"● serving http://127.0.0.1:8799 · adapter {RUN_A} · 7 req · "
                                                  "1 err · p50 1.5 ms · p95 12 ms · up 0s")
            assert "● completed" in text  # run A's row: the adapter being served
            child.send_signal(signal.SIGKILL)
            await child.wait()  # reaped: a zombie still answers signal 0
            await refresh(pilot)
            assert line.text == (f"✗ server http://127.0.0.1:8799 (pid {child.pid}) gone: "
                                 f"process {child.pid} on {socket.gethostname()} is gone")
            assert "● completed" not in screen_text(app)
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()
        async with await RunStore.open(fixture_db) as store:  # cleared by hand: a stopped server leaves the list
            await store.stop_server(server_id)
        await refresh(pilot)
        text = screen_text(app)
        assert not line.display and "✗ server" not in text
        assert text.splitlines()[1].split() == without.splitlines()[1].split()  # the table right under the title
