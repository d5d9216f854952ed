"""The `ragweld-tui serve` process: uvicorn on a socket we bind, the worker and the background tasks.

Why Starlette on uvicorn: the API is five routes with hand-written checks (every error names its
field), so FastAPI's layer of automatic validation and schema generation would be one more set of
error shapes to override; Starlette is the ASGI toolkit FastAPI itself is built on, and uvicorn is
the server both are run with in production.

Startup binds the socket first (so `--port 0` knows its port), opens the feedback file, loads the
model and the active adapter, registers the server in the store, then prints one
`listening on http://HOST:PORT` line; a mistake in any of these is one line and exit 2, before
anything listens.
While it runs, background tasks pick up promotions every `[serving].reload_check_s`, unload the model
after `[serving].idle_unload_s` without requests (never while work is queued or in flight), and
update the store line every `[serve].heartbeat_s`. SIGINT/SIGTERM finish the requests in flight
(for up to 10 s), then stop the worker, mark the server stopped in the store and exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import uvicorn

from backends.rerank_worker import RerankWorker
from backends.service import RerankService
from backends.settings import scorer_settings
from ragweld_tui.config import AppConfig
from ragweld_tui.errors import UserError
from ragweld_tui.serve.app import ServerContext, make_app
from ragweld_tui.serve.feedback import FeedbackLog
from store import RunStore, StoreError, is_run_id
from store.settings import data_dir, store_location

log = logging.getLogger("ragweld_tui.serve")


def feedback_path(config: AppConfig) -> Path:
    """`[serve].feedback_path`, else `<data dir>/feedback/feedback.jsonl`."""
    return config.serve.feedback_path or data_dir() / "feedback" / "feedback.jsonl"


def bearer_token(config: AppConfig) -> str | None:
    """The token from the environment variable `[serve].token_env` names (None: no auth)."""
    name = config.serve.token_env
    if name is None:
        return None
    token = os.environ.get(name, "").strip()
    if not token:
        raise UserError(f"[serve].token_env names the environment variable {name}, which is not set or empty; "
                        f"export {name}=<token> or remove token_env")
    return token


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket on host:port (port 0: any free one); UserError when it cannot bind."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UserError(f"--host {host}: cannot resolve ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc} "
                        "(is another server running? choose another --port)") from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def build_state(config: AppConfig) -> ServerContext:
    """The server's worker, service and feedback log as the config describes them."""
    settings = scorer_settings(config.model, config.prompt, config.scoring, config.rerank_model())
    service = RerankService(settings, config.active_adapter_dir(), reload_check_s=config.serving.reload_check_s,
                            idle_unload_s=config.serving.idle_unload_s)
    worker = RerankWorker(service, max_queue=config.serve.max_queue, max_wait_s=config.serve.batch_wait_ms / 1000,
                          token_budget=config.serve.batch_token_budget)
    return ServerContext(config.serve, service, worker, FeedbackLog(feedback_path(config)), token=bearer_token(config))


def serve(config: AppConfig, host: str = "127.0.0.1", port: int | None = None, db: str | None = None,
          announce: Callable[[str], None] = print) -> int:
    """Run the server until SIGINT/SIGTERM; returns the exit code. Everything a user can get wrong
    (the model, the backend, the store, the feedback file, the port) fails before anything listens,
    as a UserError."""
    state = build_state(config)
    if not is_loopback(host) and state.token is None:
        print(f"warning: serving on {host} without a token: anyone who can reach this machine can use the API "
              "(set [serve].token_env)", file=sys.stderr)
    sock = bind(host, config.serve.port if port is None else port)
    database, runs_root = store_location(config.store, db)
    try:
        asyncio.run(_serve(state, config, sock, database, runs_root, announce))
    finally:
        sock.close()
    announce("stopped")
    return 0


class _Uvicorn(uvicorn.Server):
    """uvicorn's server, except that after SIGINT/SIGTERM it shuts down gracefully and returns instead
    of re-raising the signal: re-raised, the signal cancelled our own cleanup (the worker, the store
    line, the store's connections) halfway, and the process hung on the store's threads."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


async def _serve(state: ServerContext, config: AppConfig, sock: socket.socket, database: Path,
                 runs_root: Path | None, announce: Callable[[str], None]) -> None:
    """Prepare (feedback file, model, store line), serve until a signal, then clean up in order."""
    try:
        await asyncio.to_thread(state.feedback.open)
    except OSError as exc:
        raise UserError(f"{state.feedback.path}: cannot open the feedback file ({exc.strerror or exc})") from None
    if state.feedback.repaired_bytes:
        log.warning("%s: dropped a torn last line (%d bytes, never acknowledged)", state.feedback.path,
                    state.feedback.repaired_bytes)
    try:
        await state.service.warm()  # the first request must not pay for loading
    except ValueError as exc:  # no such backend or device here, a bad model folder or tokenizer
        raise UserError(str(exc)) from None
    try:
        store = await RunStore.open(database, runs_root=runs_root)
    except StoreError as exc:
        raise UserError(str(exc)) from None
    address = url_of(sock)
    record = await store.register_server(address=address, base_model=state.service.settings.model,
                                         backend=_backend_name(state))
    server = _Uvicorn(uvicorn.Config(make_app(state), log_level="warning", access_log=False, lifespan="off",
                                           timeout_graceful_shutdown=10))
    state.worker.start()
    tasks = [
        asyncio.create_task(_every(config.serving.reload_check_s or 1.0, state.service.refresh_adapter)),
        asyncio.create_task(state.service.run_idle_reaper(min(5.0, max(0.05, config.serving.idle_unload_s / 4)),
                                                          busy=state.worker.busy)),
        asyncio.create_task(_every(config.serve.heartbeat_s, lambda: _heartbeat(state, store, record.id))),
        asyncio.create_task(_announce_when_started(server, state, address, announce)),
    ]
    try:
        await server.serve(sockets=[sock])
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await state.worker.stop()
        with contextlib.suppress(Exception):  # the store line must not keep the process from ending
            await _heartbeat(state, store, record.id)
            await store.stop_server(record.id)
        await store.close()
        await state.service.close()


async def _announce_when_started(server: uvicorn.Server, state: ServerContext, address: str,
                                 announce: Callable[[str], None]) -> None:
    """One `listening on URL` line once uvicorn accepts connections (scripts and tests wait for it)."""
    while not server.started:
        await asyncio.sleep(0.02)
    served = state.service.adapter_manifest
    announce(f"listening on {address} · model {state.service.settings.model} · "
             f"adapter {(served.run_id or 'unnamed') if served else 'none (base)'} · backend {_backend_name(state)} · "
             f"feedback → {state.feedback.path}")


def _backend_name(state: ServerContext) -> str:
    return state.service.engine_label or state.service.settings.backend


async def _every(seconds: float, action: Callable[[], object]) -> None:
    """Run `action` (sync or async) every `seconds` until cancelled; a failure is logged, not fatal."""
    while True:
        await asyncio.sleep(seconds)
        try:
            result = action()
            if asyncio.iscoroutine(result):
                await result
        except Exception:
            log.exception("background task failed")


async def _heartbeat(state: ServerContext, store: RunStore, server_id: str) -> None:
    served = state.service.adapter_manifest
    # An adapter placed by hand may name no run of this store; its manifest hash still identifies it.
    run_id = served.run_id if served is not None and is_run_id(served.run_id) else None
    await store.update_server(server_id, adapter_run_id=run_id,
                              adapter_fingerprint=state.service.adapter_fingerprint, requests=state.requests,
                              errors=state.errors, p50_ms=state.latency.percentile_ms(50),
                              p95_ms=state.latency.percentile_ms(95))
