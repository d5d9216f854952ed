"""The server over time: promotions and rollbacks under load, idle unload, the store line, shutdown."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from backends.scorer import Reranker
from backends.settings import ScorerSettings
from store import RunStore
from tests.serve.server_helpers import DOCS, QUERY, RUN_A, RUN_B, ServerProcess, make_adapter, promote, write_serve_config


Answer = tuple[float, float, int, dict[str, Any]]  # (time sent, time answered, status, body)


def expected_scores(model_dir: Path, adapter: Path | None) -> list[float]:
    """What `Reranker.score` gives with this adapter (None: the base), in input order."""
    reranker = Reranker.load(ScorerSettings(model=str(model_dir), backend="torch", max_length=512))
    reranker.use_adapter(adapter)
    scores = [s.probability for s in reranker.score(QUERY, DOCS)]
    reranker.close()
    return scores


def by_index(body: dict[str, Any]) -> list[float]:
    out = [0.0] * len(DOCS)
    for result in body["results"]:
        out[result["index"]] = result["relevance_score"]
    return out


async def sustained_load(url: str, clients: int, stop: asyncio.Event,
                         answers: list[Answer]) -> None:
    """`clients` loops posting the same rerank request until `stop`, appending `Answer`s."""

    async def client(http: httpx.AsyncClient) -> None:
        while not stop.is_set():
            sent = time.monotonic()
            response = await http.post(url + "/v1/rerank", json={"query": QUERY, "documents": DOCS})
            answers.append((sent, time.monotonic(), response.status_code, response.json()))

    async with httpx.AsyncClient(timeout=120) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))


async def answered_after(answers: list[Answer], after: float, count: int) -> None:
    """Wait until `count` requests sent after `after` were answered (however slow the machine is)."""
    deadline = time.monotonic() + 120
    while sum(1 for sent, *_ in answers if sent > after) < count:
        assert time.monotonic() < deadline, "the server stopped answering"
        await asyncio.sleep(0.05)


def test_promotion_and_rollback_under_load(tiny_model_dir: Path, tmp_path: Path) -> None:
    config = write_serve_config(tmp_path, tiny_model_dir, serving="reload_check_s = 0.2\nidle_unload_s = 1.5",
                                serve="heartbeat_s = 0.2")
    active = tmp_path / "active"
    run_a = make_adapter(tmp_path / "a", 1, tiny_model_dir, RUN_A)
    run_b = make_adapter(tmp_path / "b", 2, tiny_model_dir, RUN_B)
    promote(run_a, active, RUN_A)
    expected = {RUN_A: expected_scores(tiny_model_dir, run_a), RUN_B: expected_scores(tiny_model_dir, run_b),
                None: expected_scores(tiny_model_dir, None)}
    with ServerProcess(config) as server:
        swaps: list[tuple[float, str | None]] = []

        async def scenario() -> list[Answer]:
            answers: list[Answer] = []
            stop = asyncio.Event()
            load = asyncio.create_task(sustained_load(server.url, 6, stop, answers))
            await answered_after(answers, 0.0, 12)
            for adapter, run_id in ((run_b, RUN_B), (run_a, RUN_A), (None, None)):  # promote, roll back twice
                promote(adapter, active, run_id or "")
                swaps.append((time.monotonic(), run_id))
                await answered_after(answers, swaps[-1][0] + 0.3, 12)  # well past reload_check_s
            stop.set()
            await load
            return answers

        answers = asyncio.run(scenario())
        assert len(answers) >= 48 and all(status == 200 for _, _, status, _ in answers)  # zero errors
        for *_, body in answers:
            adapter = body["meta"]["adapter"]
            run_id = adapter["run_id"] if adapter else None
            # Every response names the adapter that scored it, and its scores are that adapter's
            # (no request was scored half by one adapter and half by another).
            np.testing.assert_allclose(by_index(body), expected[run_id], rtol=0, atol=1e-6)
        for (swapped, run_id), following in zip(swaps, [*swaps[1:], (float("inf"), None)]):
            # A request sent more than reload_check_s (0.2 s) after the swap, and answered before the
            # next one, was scored by the new adapter.
            settled = [body for sent, answered, _, body in answers if sent > swapped + 0.3 and answered < following[0]]
            assert settled and all((b["meta"]["adapter"] or {}).get("run_id") == run_id for b in settled), run_id
        seen = {(b["meta"]["adapter"] or {}).get("run_id") for *_, b in answers}
        assert seen == {RUN_A, RUN_B, None}

        # The store line: serving, with the adapter it serves (the base now) and its figures.
        time.sleep(0.5)
        [line] = asyncio.run(servers(tmp_path))
        assert line.state == "serving" and line.address == server.url and line.adapter_run_id is None
        assert line.requests == len(answers) and line.errors == 0 and line.p50_ms and line.p95_ms

        # Idle unload really runs after idle_unload_s, and the next request reloads the model.
        deadline = time.monotonic() + 20
        while httpx.get(server.url + "/health").json()["model_loaded"] and time.monotonic() < deadline:
            time.sleep(0.2)
        health = httpx.get(server.url + "/health").json()
        assert not health["model_loaded"] and health["unloads"] >= 1
        again = httpx.post(server.url + "/v1/rerank", json={"query": QUERY, "documents": DOCS}).json()
        assert again["meta"]["timings"]["load_ms"] > 0 and httpx.get(server.url + "/health").json()["model_loaded"]
        np.testing.assert_allclose(by_index(again), expected[None], rtol=0, atol=1e-6)

        assert server.stop(signal.SIGTERM) == 0  # a graceful stop
        assert "Traceback" not in server.stderr()
    [stopped] = asyncio.run(servers(tmp_path, include_finished=True))
    assert stopped.state == "stopped" and asyncio.run(servers(tmp_path)) == []


async def servers(folder: Path, include_finished: bool = False) -> list[Any]:
    async with await RunStore.open(folder / "ragweld.sqlite", create=False) as store:
        return await store.list_servers(include_finished=include_finished)


def test_a_killed_server_is_shown_as_gone(tiny_model_dir: Path, tmp_path: Path) -> None:
    config = write_serve_config(tmp_path, tiny_model_dir, serve="heartbeat_s = 0.2")
    server = ServerProcess(config)
    server.wait_ready()
    assert [s.state for s in asyncio.run(servers(tmp_path))] == ["serving"]
    server.stop(signal.SIGKILL)  # reaped by stop(): a zombie would still look alive
    [gone] = asyncio.run(servers(tmp_path))
    assert gone.state == "gone" and "gone" in (gone.gone_reason or "")
