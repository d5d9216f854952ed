"""The HTTP API of `ragweld-tui serve` (Starlette): rerank in two shapes, models, health, feedback.

Routes: `POST /v1/rerank`, `/v2/rerank` and `/rerank` (Cohere/Jina or TEI shape, see `api_input`),
`GET /v1/models`, `GET /health` and `POST /v1/feedback`. With a bearer token configured, every
route but `/health` requires `Authorization: Bearer <token>`.

Every answer is JSON. Client mistakes are 4xx with `{"error": {"code", "message", "field"}}`; an
unexpected failure is a 500 with a one-line message, its traceback going to the server's log only.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from backends.adapters import AdapterError, Manifest, read_manifest
from backends.prompt import PromptError, template_fingerprint
from backends.rerank_worker import QueueFull, RerankWorker, WorkerResult, WorkerStopped
from backends.service import RerankService
from backends.settings import ServeConfig
from ragweld_tui.serve.api_input import (
    ApiError,
    RerankRequest,
    decode_json,
    invalid,
    parse_feedback,
    parse_rerank,
)
from ragweld_tui.serve.feedback import FeedbackLog, RecentRequests, Shown, feedback_row
from ragweld_tui.serve.latency import LatencyWindow

log = logging.getLogger("ragweld_tui.serve")
Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class ServerContext:
    """What the routes share: the scoring worker, the feedback log, counters and the auth token."""

    limits: ServeConfig
    service: RerankService
    worker: RerankWorker
    feedback: FeedbackLog
    token: str | None = None
    recent: RecentRequests = field(default_factory=RecentRequests)
    latency: LatencyWindow = field(default_factory=LatencyWindow)
    started: float = field(default_factory=time.time)
    requests: int = 0  # rerank requests answered
    errors: int = 0  # 5xx answers (overload included)
    rejected: int = 0  # 4xx answers


def make_app(state: ServerContext) -> Starlette:
    """The ASGI app over `state` (the runner starts and stops the worker and the background tasks)."""
    routes = [
        Route("/health", _guarded(state, _health, auth=False), methods=["GET"]),
        Route("/v1/models", _guarded(state, _models), methods=["GET"]),
        Route("/v1/rerank", _guarded(state, _rerank), methods=["POST"]),
        Route("/rerank", _guarded(state, _rerank), methods=["POST"]),
        Route("/v2/rerank", _guarded(state, _rerank), methods=["POST"]),  # where Cohere's v2 SDK posts
        Route("/v1/feedback", _guarded(state, _feedback), methods=["POST"]),
    ]
    return Starlette(routes=routes, exception_handlers={
        HTTPException: _http_error,  # 404, 405 as JSON
        Exception: _internal_error,
    })


def _guarded(state: ServerContext, handler: Callable[[ServerContext, Request], Awaitable[Response]],
             auth: bool = True) -> Handler:
    """The route: auth check, then the handler; ApiError becomes its JSON answer, anything else a 500."""

    async def endpoint(request: Request) -> Response:
        try:
            if auth and state.token is not None:
                _check_token(request, state.token)
            return await handler(state, request)
        except ApiError as exc:
            if exc.status >= 500:
                state.errors += 1
            else:
                state.rejected += 1
            return JSONResponse(exc.body(), exc.status, headers=exc.headers)
        except Exception:
            state.errors += 1
            log.exception("internal error on %s %s", request.method, request.url.path)
            return _internal_body()

    return endpoint


def _check_token(request: Request, token: str) -> None:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise ApiError(401, "unauthorized", "missing or wrong bearer token (Authorization: Bearer <token>)",
                       headers={"WWW-Authenticate": "Bearer"})


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes `limit` bytes (never read whole first)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _body_too_large(int(declared), limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _body_too_large(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _body_too_large(size: int, limit: int) -> ApiError:
    return ApiError(413, "too_large", f"body: {size} bytes or more, more than [serve].max_body_bytes = {limit}",
                    "body", headers={"Connection": "close"})


async def _json_body(state: ServerContext, request: Request) -> dict[str, Any]:
    return decode_json(await _read_body(request, state.limits.max_body_bytes))


async def _rerank(state: ServerContext, request: Request) -> Response:
    start = time.perf_counter()
    req = parse_rerank(await _json_body(state, request), state.limits)
    try:
        result = await state.worker.score(req.query, req.documents)
    except PromptError as exc:
        raise invalid("query", str(exc)) from None
    except QueueFull as exc:
        raise ApiError(503, "overloaded", str(exc), headers={"Retry-After": str(exc.retry_after_s)}) from None
    except WorkerStopped as exc:
        raise ApiError(503, "shutting_down", str(exc), headers={"Retry-After": "1"}) from None
    request_id = uuid.uuid4().hex
    ids = req.document_ids or [None] * len(req.documents)
    state.recent.remember(request_id, Shown(req.query, req.documents, ids))
    total = time.perf_counter() - start
    state.requests += 1
    state.latency.add(total)
    headers = _adapter_headers(result, request_id)
    if req.shape == "tei":
        return JSONResponse(_tei_body(req, result), headers=headers)
    return JSONResponse(_cohere_body(state, req, result, request_id, total), headers=headers)


def _ranked(result: WorkerResult) -> list[int]:
    """Indices best first (ties: input order), the order `ragweld-tui score` prints."""
    return sorted(range(len(result.scores)), key=lambda i: (-result.scores[i].logit, i))


def _cohere_body(state: ServerContext, req: RerankRequest, result: WorkerResult, request_id: str,
                 total: float) -> dict[str, Any]:
    order = _ranked(result)[: req.top_n]
    results = []
    for i in order:
        item: dict[str, Any] = {"index": i, "relevance_score": result.scores[i].probability}
        if req.return_documents:
            item["document"] = {"text": req.documents[i]}
        results.append(item)
    group = result.group
    meta = {
        "model": state.service.settings.model,
        "base": state.service.settings.model,
        "adapter": _adapter_meta(group.adapter_manifest, group.adapter_fingerprint),
        "backend": group.backend, "device": group.device, "dtype": group.dtype,
        "timings": {"queue_ms": _ms(result.queue_seconds), "score_ms": _ms(result.score_seconds),
                    "load_ms": _ms(group.load_seconds), "total_ms": _ms(total)},
        "batch": {"requests": result.group_size, "tokens": result.tokens},
    }
    return {"id": request_id, "results": results, "meta": meta}


def _tei_body(req: RerankRequest, result: WorkerResult) -> list[dict[str, Any]]:
    out = []
    for i in _ranked(result):
        score = result.scores[i]
        item: dict[str, Any] = {"index": i, "score": score.logit if req.raw_scores else score.probability}
        if req.return_documents:
            item["text"] = req.documents[i]
        out.append(item)
    return out


def _adapter_meta(manifest: Manifest | None, fingerprint: str | None) -> dict[str, Any] | None:
    if manifest is None:
        return None
    return {"run_id": manifest.run_id, "manifest_sha256": fingerprint, "trained_on": manifest.backend,
            "metrics": manifest.metrics}


def _adapter_headers(result: WorkerResult, request_id: str) -> dict[str, str]:
    """The adapter that scored the request, also as headers (TEI's answer is a bare list)."""
    manifest = result.group.adapter_manifest
    return {"X-Request-Id": request_id, "X-Ragweld-Adapter": (manifest.run_id or "unnamed") if manifest else "base",
            "X-Ragweld-Adapter-Sha256": result.group.adapter_fingerprint or ""}


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


async def _models(state: ServerContext, request: Request) -> Response:
    service = state.service
    active = _active_manifest(service)
    served = service.adapter_manifest
    model = {
        "id": service.settings.model, "object": "model", "owned_by": "ragweld-tui",
        "base": service.settings.model, "template_fingerprint": template_fingerprint(),
        "active_adapter": None if active is None else {
            "run_id": active.run_id, "path": str(service.active_adapter), "base_model": active.base_model,
            "trained_on": active.backend, "dataset_fingerprint": active.dataset_fingerprint,
            "metrics_at_promotion": active.metrics},
        "serving": {"loaded": service.loaded, "adapter_run_id": served.run_id if served else None,
                    "adapter_sha256": service.adapter_fingerprint, "last_adapter_error": service.last_adapter_error},
    }
    return JSONResponse({"object": "list", "data": [model]})


def _active_manifest(service: RerankService) -> Manifest | None:
    folder = service.active_adapter
    if folder is None or not folder.exists():
        return None
    try:
        return read_manifest(folder.resolve())
    except AdapterError:
        return None


async def _health(state: ServerContext, request: Request) -> Response:
    served = state.service.adapter_manifest
    return JSONResponse({
        "status": "ok", "model_loaded": state.service.loaded, "loads": state.service.loads,
        "unloads": state.service.unloads, "adapter_run_id": served.run_id if served else None,
        "waiting": state.worker.waiting, "requests": state.requests, "errors": state.errors,
        "rejected": state.rejected, "uptime_s": round(time.time() - state.started, 1),
    })


async def _feedback(state: ServerContext, request: Request) -> Response:
    req = parse_feedback(await _json_body(state, request), state.limits)
    row = feedback_row(req, state.recent)
    await asyncio.to_thread(state.feedback.append, row)  # acknowledged only once it is on disk
    return JSONResponse({"accepted": True, "positives": len(row["positives"]), "negatives": len(row["negatives"]),
                         "path": str(state.feedback.path)})


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    message = f"{request.method} {request.url.path}: {exc.detail}"
    return JSONResponse({"error": {"code": code, "message": message}}, exc.status_code, headers=exc.headers)


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
    return _internal_body()


def _internal_body() -> Response:
    return JSONResponse({"error": {"code": "internal", "message": "internal error; the server's log has the details"}},
                        500)
