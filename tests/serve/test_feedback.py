"""The learning loop's feedback: what the API accepts, durable appends under a kill -9, training on it."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from ragweld_tui.serve.feedback import FeedbackLog
from store import RunStore
from tests.serve.server_helpers import DOCS, QUERY, ServerProcess, write_serve_config
from trainers.data_triplets import load_triplets
from trainers.datasets import load_dataset
from trainers.settings import DataConfig


def lines(path: Path) -> list[dict[str, Any]]:
    """Every line of the file, each of which must be whole JSON."""
    raw = path.read_bytes()
    assert not raw or raw.endswith(b"\n"), "torn last line"
    return [json.loads(line) for line in raw.decode("utf-8").splitlines()]


def test_feedback_by_documents_ids_and_request_id(tiny_model_dir: Path, tmp_path: Path) -> None:
    config = write_serve_config(tmp_path, tiny_model_dir)
    with ServerProcess(config) as server:
        url = server.url
        # The documents shown, with relevant ones by index.
        first = httpx.post(url + "/v1/feedback", json={"query": QUERY, "documents": DOCS, "relevant": [0, 2]})
        assert first.status_code == 200 and first.json()["positives"] == 2 and first.json()["negatives"] == 3
        # Documents with the client's ids, relevant ones by id.
        docs = [{"id": f"doc-{i}", "text": d} for i, d in enumerate(DOCS)]
        by_id = httpx.post(url + "/v1/feedback", json={"query": "bread", "documents": docs, "relevant": ["doc-1"]})
        assert by_id.status_code == 200
        # Only the request id of a rerank call, relevant ones by index into what it showed.
        rerank = httpx.post(url + "/v1/rerank", json={"query": "weather", "documents": DOCS}).json()
        by_request = httpx.post(url + "/v1/feedback", json={"request_id": rerank["id"], "relevant": [3]})
        assert by_request.status_code == 200, by_request.text
        for body, status, field in (
            ({"request_id": "nope", "relevant": [0]}, 422, "request_id"),
            ({"query": QUERY, "documents": DOCS, "relevant": [9]}, 422, "relevant[0]"),
            ({"query": QUERY, "documents": DOCS, "relevant": []}, 422, "relevant"),
            ({"query": QUERY, "documents": DOCS, "relevant": ["not shown"]}, 422, "relevant[0]"),
            ({"query": QUERY, "documents": DOCS, "relevant": [True]}, 422, "relevant[0]"),
            ({"documents": DOCS, "relevant": [0]}, 422, "query"),
            ({"query": QUERY, "relevant": [0]}, 422, "documents"),
            ({"query": QUERY, "documents": DOCS, "relevant": [0], "clicked": 1}, 422, "clicked"),
        ):
            response = httpx.post(url + "/v1/feedback", json=body)
            assert response.status_code == status and response.json()["error"]["field"] == field, (body, response.text)
    rows = lines(tmp_path / "feedback.jsonl")
    assert [(r["query"], r["positives"]) for r in rows] == [
        (QUERY, [DOCS[0], DOCS[2]]), ("bread", [DOCS[1]]), ("weather", [DOCS[3]])]
    assert rows[0]["negatives"] == [DOCS[1], DOCS[3], DOCS[4]] and rows[2]["request_id"] == rerank["id"]
    assert all(r["source"] == "feedback" for r in rows)


def test_acknowledged_feedback_survives_kill_9_without_a_torn_line(tiny_model_dir: Path, tmp_path: Path) -> None:
    config = write_serve_config(tmp_path, tiny_model_dir)
    server = ServerProcess(config)
    url = server.wait_ready()
    acknowledged: list[str] = []

    async def poster(http: httpx.AsyncClient, worker: int) -> None:
        for n in range(10_000):
            marker = f"query {worker}-{n}"
            try:
                response = await http.post(url + "/v1/feedback",
                                           json={"query": marker, "documents": DOCS, "relevant": [n % len(DOCS)]})
            except httpx.HTTPError:
                return  # the server died under us: this one was never acknowledged
            if response.status_code == 200:
                acknowledged.append(marker)

    async def scenario() -> None:
        async with httpx.AsyncClient(timeout=30) as http:
            posters = [asyncio.create_task(poster(http, w)) for w in range(8)]
            while len(acknowledged) < 150:
                await asyncio.sleep(0.01)
            server.stop(signal.SIGKILL)  # mid-stream: posts are in flight
            await asyncio.gather(*posters)

    asyncio.run(scenario())
    rows = lines(tmp_path / "feedback.jsonl")  # whole lines only
    written = [r["query"] for r in rows]
    assert set(acknowledged) <= set(written) and len(written) == len(set(written))
    assert len(acknowledged) >= 150
    # The file trains as it is.
    dataset = load_triplets(tmp_path / "feedback.jsonl")
    assert dataset.report.n_feedback_rows == len(rows)


def test_a_torn_tail_is_dropped_when_the_log_opens(tmp_path: Path) -> None:
    path = tmp_path / "feedback.jsonl"
    log = FeedbackLog(path)
    log.open()
    log.append({"query": "q", "positives": ["a"], "negatives": ["b"], "source": "feedback"})
    with path.open("ab") as handle:  # what a crash in the middle of a write could leave
        handle.write(b'{"query": "half')
    reopened = FeedbackLog(path)
    reopened.open()
    assert reopened.repaired_bytes == len(b'{"query": "half')
    assert lines(path) == [{"query": "q", "positives": ["a"], "negatives": ["b"], "source": "feedback"}]


@pytest.mark.slow
def test_headless_run_trains_on_collected_feedback(tiny_model_dir: Path, tmp_path: Path) -> None:
    """serve → collect → train: a `--run` on the feedback file, its summary counting the feedback rows."""
    from tests.trainers.run_helpers import run_cli, store_runs, write_config

    path = tmp_path / "feedback.jsonl"
    log = FeedbackLog(path)
    log.open()
    topics = ["citation", "bread", "weather", "journals", "coupling"]
    for i in range(20):
        positive = DOCS[i % len(DOCS)]
        log.append({"query": f"{topics[i % 5]} question {i}", "positives": [positive],
                    "negatives": [d for d in DOCS if d != positive], "source": "feedback"})
    dataset = load_dataset(DataConfig(path=path))
    assert dataset.report.n_feedback_rows == 20 and "20 rows of serving feedback" in dataset.report.summary()
    config = write_config(tmp_path, data=str(path), max_steps=4, eval_every=2, checkpoint_every=2)
    result = run_cli("--run", str(config))
    assert result.returncode == 0, result.stderr
    [run] = store_runs(tmp_path / "db.sqlite")
    assert run.status == "completed"

    async def dataset_events() -> list[Any]:
        async with await RunStore.open(tmp_path / "db.sqlite") as store:
            return [e.event for e in await store.events_since(run.id, 0, 10_000) if e.event.type == "dataset"]

    [event] = asyncio.run(dataset_events())
    assert event.counts["n_feedback_rows"] == 20 and "20 rows of serving feedback" in event.summary
