"""Untrusted names: run ids are strict, SQL values are bound, artifact paths stay in the run folder."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from store import (
    InvalidRunIdError,
    LogEvent,
    MetricsEvent,
    RunStore,
    UnsafePathError,
    file_digest,
    new_run_id,
    safe_artifact_path,
    validate_run_id,
)

INJECTIONS = [
    "'; DROP TABLE runs;--",
    'Robert"); DROP TABLE events;--',
    "x' OR '1'='1",
    "a\\'b\"c`d",
    "名前 with ünïcode and \t tab",
]
BAD_IDS = [
    "",
    "r2024",
    "../../etc/passwd",
    "r20240101-000000-0000BEEF",
    "r20240101-000000-0000beef\n",
    "'; DROP TABLE runs;--",
    None,
    42,
]
SHA = "0" * 64


@pytest.fixture
async def store(tmp_path: Path):
    async with await RunStore.open(tmp_path / "s.sqlite", runs_root=tmp_path / "runs") as opened:
        yield opened


def test_run_ids_are_strict() -> None:
    run_id = new_run_id()
    assert validate_run_id(run_id) == run_id
    for bad in BAD_IDS:
        with pytest.raises(InvalidRunIdError):
            validate_run_id(bad)


async def test_every_entry_point_checks_the_run_id(store: RunStore) -> None:
    bad = "r1'; DROP TABLE runs;--"
    calls = [
        store.get_run(bad),
        store.set_status(bad, "running"),
        store.set_best(bad, 1.0),
        store.set_baseline(bad, 1.0),
        store.set_promoted(bad, True),
        store.delete_run(bad),
        store.events_since(bad),
        store.latest_metrics(bad),
        store.series(bad, "loss"),
        store.add_artifact(bad, "adapter", "a.bin", SHA, 1),
        store.artifacts(bad),
        store.record_promotion(bad, None, "x"),
        store.last_seq(bad),
        store.append_events(bad, []),
    ]
    for call in calls:
        with pytest.raises(InvalidRunIdError):
            await call
    with pytest.raises(InvalidRunIdError):
        store.writer(bad)


async def test_injection_strings_are_plain_data(store: RunStore) -> None:
    for text in INJECTIONS:
        run_id = await store.create_run(
            "agent",
            text,
            backend=text,
            base_model=text,
            config={text: text},
            dataset_fingerprint=text,
            primary_metric=text,
        )
        await store.append_events(run_id, [MetricsEvent(values={text: 1.0}), LogEvent(message=text)])
        file_name = text.replace("\\", "_") + ".bin"  # backslashes are refused in paths (Windows separator)
        await store.add_artifact(run_id, "adapter", file_name, SHA, 7)
        run = await store.get_run(run_id)
        assert (run.name, run.backend, run.base_model, run.dataset_fingerprint, run.primary_metric) == (text,) * 5
        assert run.config == {text: text}
        assert await store.latest_metrics(run_id) == {text: 1.0}
        assert [p.value for p in await store.series(run_id, text)] == [1.0]
        assert (await store.events_since(run_id, 1))[0].event == LogEvent(message=text)
        assert (await store.artifacts(run_id))[0].path == file_name
    assert len(await store.list_runs()) == len(INJECTIONS)
    with sqlite3.connect(store.path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    conn.close()
    assert {"runs", "events", "artifacts", "promotions", "metric_points"} <= tables


@pytest.mark.parametrize(
    "rel",
    [
        "../x",
        "../../etc/passwd",
        "/etc/passwd",
        "a/../../b",
        "a/..",
        "C:\\evil",
        "C:/evil",
        "a\\..\\..\\b",
        "",
        ".",
        "a/\x00b",
    ],
)
async def test_path_traversal_is_refused(store: RunStore, rel: str) -> None:
    run_id = await store.create_run("reranker", "paths")
    with pytest.raises(UnsafePathError):
        safe_artifact_path(store.runs_root, run_id, rel)
    with pytest.raises(UnsafePathError):
        await store.add_artifact(run_id, "adapter", rel, SHA, 1)
    assert await store.artifacts(run_id) == []


async def test_symlink_escape_is_refused(store: RunStore, tmp_path: Path) -> None:
    run_id = await store.create_run("reranker", "links")
    outside = tmp_path / "outside"
    outside.mkdir()
    run_dir = store.runs_root / run_id
    run_dir.mkdir(parents=True)
    os.symlink(outside, run_dir / "escape")
    with pytest.raises(UnsafePathError):
        await store.add_artifact(run_id, "adapter", "escape/adapters.safetensors", SHA, 1)
    other = await store.create_run("reranker", "linked folder")
    os.symlink(outside, store.runs_root / other)
    with pytest.raises(UnsafePathError):
        store.artifact_path(other, "adapters.safetensors")


async def test_safe_paths_are_normalised_and_recorded(store: RunStore) -> None:
    run_id = await store.create_run("reranker", "ok")
    path = store.runs_root / run_id / "adapter" / "adapters.safetensors"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"weights")
    digest, size = file_digest(path)
    record = await store.add_artifact(run_id, "adapter", "./adapter//adapters.safetensors", digest, size)
    assert record.path == "adapter/adapters.safetensors" and record.bytes == 7
    assert store.artifact_path(run_id, record.path) == path.resolve()
    with pytest.raises(ValueError):
        await store.add_artifact(run_id, "Adapter; DROP", "a.bin", digest, size)
    with pytest.raises(ValueError):
        await store.add_artifact(run_id, "adapter", "a.bin", "not-a-digest", size)
