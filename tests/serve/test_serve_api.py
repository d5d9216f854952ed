"""The HTTP API's contract on a real server process: both request shapes, options, auth, limits, errors."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serve.server_helpers import (
    DOCS,
    QUERY,
    REPO_ROOT,
    RUN_A,
    ServerProcess,
    make_adapter,
    promote,
    write_serve_config,
)

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LIMITS = """
token_env = "RAGWELD_TEST_SERVE_TOKEN"
max_documents = 8
max_document_chars = 400
max_query_chars = 100
max_body_bytes = 65536
max_queue = 1
"""


@pytest.fixture(scope="module")
def served(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A server with a promoted adapter, a bearer token and small limits; (url, config)."""
    folder = tmp_path_factory.mktemp("serve-api")
    config = write_serve_config(folder, tiny_model_dir, serve=LIMITS)
    promote(make_adapter(folder / RUN_A / "adapter", 1, tiny_model_dir, RUN_A), folder / "active", RUN_A)
    with ServerProcess(config, env={"RAGWELD_TEST_SERVE_TOKEN": TOKEN}) as server:
        yield server.url, config


def post(url: str, path: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(url + path, json=body, headers=AUTH if headers is None else headers, timeout=60)


def score_cli(config: Path, docs: list[str]) -> list[dict[str, Any]]:
    """`ragweld-tui score --json` with the same config (the same active adapter)."""
    args = [sys.executable, "-m", "ragweld_tui.cli", "--config", str(config), "score", "--json", "-q", QUERY]
    for doc in docs:
        args += ["-d", doc]
    out = subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=True)
    results: list[dict[str, Any]] = json.loads(out.stdout)["results"]
    return results


def test_cohere_shape_scores_equal_the_score_command(served: tuple[str, Path]) -> None:
    url, config = served
    response = post(url, "/v1/rerank", {"model": "anything", "query": QUERY, "documents": DOCS})
    assert response.status_code == 200, response.text
    body = response.json()
    cli = score_cli(config, DOCS)
    # Same order and exactly the same numbers as `ragweld-tui score` for the same adapter.
    assert [r["index"] for r in body["results"]] == [r["index"] for r in cli]
    assert [r["relevance_score"] for r in body["results"]] == [r["score"] for r in cli]
    assert "document" not in body["results"][0]
    meta = body["meta"]
    assert meta["adapter"]["run_id"] == RUN_A and len(meta["adapter"]["manifest_sha256"]) == 64
    assert meta["backend"] == "torch" and meta["base"].endswith("tiny")
    assert set(meta["timings"]) == {"queue_ms", "score_ms", "load_ms", "total_ms"}
    assert response.headers["x-ragweld-adapter"] == RUN_A and response.headers["x-request-id"] == body["id"]


def test_top_n_and_return_documents_and_document_objects(served: tuple[str, Path]) -> None:
    url, _ = served
    documents = [{"text": d} if i % 2 else d for i, d in enumerate(DOCS)]
    full = post(url, "/v2/rerank", {"query": QUERY, "documents": documents}).json()["results"]
    top = post(url, "/rerank", {"query": QUERY, "documents": documents, "top_n": 2, "return_documents": True})
    results = top.json()["results"]
    assert [r["index"] for r in results] == [r["index"] for r in full[:2]]
    assert [r["document"]["text"] for r in results] == [DOCS[r["index"]] for r in results]
    assert results[0]["relevance_score"] >= results[1]["relevance_score"]
    # top_n beyond the number of documents returns them all.
    assert len(post(url, "/v1/rerank", {"query": QUERY, "documents": DOCS, "top_n": 99}).json()["results"]) == len(DOCS)


def test_tei_shape_on_the_same_route(served: tuple[str, Path]) -> None:
    url, _ = served
    cohere = post(url, "/rerank", {"query": QUERY, "documents": DOCS}).json()["results"]
    tei = post(url, "/rerank", {"query": QUERY, "texts": DOCS, "return_text": True})
    assert tei.status_code == 200 and isinstance(tei.json(), list)
    assert [(r["index"], r["score"]) for r in tei.json()] == [(r["index"], r["relevance_score"]) for r in cohere]
    assert [r["text"] for r in tei.json()] == [DOCS[r["index"]] for r in tei.json()]
    raw = post(url, "/v1/rerank", {"query": QUERY, "texts": DOCS, "raw_scores": True, "truncate": True}).json()
    assert [r["index"] for r in raw] == [r["index"] for r in cohere]
    assert all(r["score"] < 0 or r["score"] > 0 for r in raw) and "text" not in raw[0]  # log-odds, not probabilities
    assert tei.headers["x-ragweld-adapter"] == RUN_A


def test_models_and_health(served: tuple[str, Path]) -> None:
    url, _ = served
    models = httpx.get(url + "/v1/models", headers=AUTH).json()["data"][0]
    assert models["active_adapter"]["run_id"] == RUN_A and models["active_adapter"]["metrics_at_promotion"]
    assert models["serving"]["adapter_run_id"] == RUN_A and len(models["template_fingerprint"]) == 16
    health = httpx.get(url + "/health")  # no token needed
    assert health.status_code == 200 and health.json()["status"] == "ok" and health.json()["model_loaded"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}])
def test_every_route_but_health_needs_the_token(served: tuple[str, Path], headers: dict[str, str]) -> None:
    url, _ = served
    for method, path in (("POST", "/v1/rerank"), ("POST", "/v2/rerank"), ("POST", "/rerank"), ("GET", "/v1/models"),
                         ("POST", "/v1/feedback")):
        response = httpx.request(method, url + path, json={"query": QUERY, "documents": DOCS}, headers=headers)
        assert response.status_code == 401, (path, response.text)
        assert response.json()["error"]["code"] == "unauthorized" and response.headers["www-authenticate"] == "Bearer"


BAD_BODIES = [
    ({"documents": DOCS}, 422, "query"),
    ({"query": 3, "documents": DOCS}, 422, "query"),
    ({"query": "  ", "documents": DOCS}, 422, "query"),
    ({"query": QUERY}, 422, "documents"),
    ({"query": QUERY, "documents": "one doc"}, 422, "documents"),
    ({"query": QUERY, "documents": []}, 422, "documents"),
    ({"query": QUERY, "documents": ["fine", ""]}, 422, "documents[1]"),
    ({"query": QUERY, "documents": ["fine", 7]}, 422, "documents[1]"),
    ({"query": QUERY, "documents": [{"txt": "x"}]}, 422, "documents[0].txt"),
    ({"query": QUERY, "documents": [{"text": None}]}, 422, "documents[0].text"),
    ({"query": QUERY, "documents": DOCS, "top_n": 0}, 422, "top_n"),
    ({"query": QUERY, "documents": DOCS, "top_n": "3"}, 422, "top_n"),
    ({"query": QUERY, "documents": DOCS, "return_documents": "yes"}, 422, "return_documents"),
    ({"query": QUERY, "documents": DOCS, "top_k": 3}, 422, "top_k"),
    ({"query": QUERY, "documents": DOCS, "texts": DOCS}, 422, None),
    ({"query": QUERY, "texts": [{"text": "x"}]}, 422, "texts[0]"),
    ({"query": QUERY, "texts": DOCS, "raw_scores": 1}, 422, "raw_scores"),
    ({"query": "q" * 101, "documents": DOCS}, 413, "query"),
    ({"query": QUERY, "documents": ["d"] * 9}, 413, "documents"),
    ({"query": QUERY, "documents": ["fine", "x" * 401]}, 413, "documents[1]"),
]


@pytest.mark.parametrize(("body", "status", "field"), BAD_BODIES)
def test_bad_rerank_bodies_get_the_right_status_and_field(served: tuple[str, Path], body: dict[str, Any],
                                                          status: int, field: str | None) -> None:
    url, _ = served
    response = post(url, "/v1/rerank", body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error.get("field") == field and error["message"] and "Traceback" not in response.text


def test_malformed_and_oversized_bodies(served: tuple[str, Path]) -> None:
    url, _ = served
    for content, message in ((b"not json", "not valid JSON"), (b"[1, 2]", "JSON object"), (b"\xff\xfe", "UTF-8")):
        response = httpx.post(url + "/v1/rerank", content=content, headers=AUTH)
        assert response.status_code == 400 and message in response.json()["error"]["message"]
    big = json.dumps({"query": QUERY, "documents": ["x" * 1000] * 10_000}).encode()  # 10 MB
    assert len(big) > 10_000_000
    response = httpx.post(url + "/v1/rerank", content=big, headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 413 and response.json()["error"]["field"] == "body"
    assert "max_body_bytes" in response.json()["error"]["message"]
    for method, path, code in (("GET", "/v1/nothing", 404), ("GET", "/v1/rerank", 405)):
        response = httpx.request(method, url + path, headers=AUTH)
        assert response.status_code == code and response.json()["error"]["message"]
    # The server is still fine after all of that.
    assert post(url, "/v1/rerank", {"query": QUERY, "documents": DOCS}).status_code == 200


def test_a_full_queue_answers_503_with_retry_after(served: tuple[str, Path]) -> None:
    url, _ = served
    heavy = {"query": QUERY, "documents": [" ".join(["citation index journal"] * 17)] * 8}

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(headers=AUTH, timeout=120) as client:
            return list(await asyncio.gather(*(client.post(url + "/v1/rerank", json=heavy) for _ in range(24))))

    responses = asyncio.run(burst())
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 503} and 200 in statuses and 503 in statuses, statuses
    busy = next(r for r in responses if r.status_code == 503)
    assert int(busy.headers["retry-after"]) >= 1 and busy.json()["error"]["code"] == "overloaded"
