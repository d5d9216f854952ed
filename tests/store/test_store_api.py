"""RunStore API: connection pragmas, lifecycle, NaN/Inf round trips, lineage, stale runs, series."""

from __future__ import annotations

import math
import os
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from store import (
    CheckpointEvent,
    EvalEvent,
    InvalidTransitionError,
    LogEvent,
    MetricsEvent,
    RunNotFoundError,
    RunStore,
    StateEvent,
    StoreError,
    StoreMissingError,
    TelemetryEvent,
    WalUnsupportedError,
)
from store.db import check_local_filesystem, connect, fetch_one

NAN, INF = float("nan"), float("inf")


@pytest.fixture
async def store(tmp_path: Path):
    async with await RunStore.open(tmp_path / "s.sqlite") as opened:
        yield opened


def _same(a: float | None, b: float | None) -> bool:
    return a == b or (a is not None and b is not None and math.isnan(a) and math.isnan(b))


async def test_connections_use_wal_normal_sync_foreign_keys_and_busy_timeout(tmp_path: Path) -> None:
    conn = await connect(tmp_path / "p.sqlite", busy_timeout_s=7)
    try:
        for pragma, expected in (
            ("journal_mode", "wal"),
            ("synchronous", 1),
            ("foreign_keys", 1),
            ("busy_timeout", 7000),
        ):
            assert (await fetch_one(conn, f"PRAGMA {pragma}"))[0] == expected
    finally:
        await conn.close()


async def test_wal_refusal_is_explicit(tmp_path: Path) -> None:
    with pytest.raises(WalUnsupportedError, match="local disk"):
        await connect(":memory:")  # SQLite answers "memory": the same check that catches NFS
    mountinfo = (
        "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
        "40 27 0:50 / /mnt/share\\040dir rw,relatime - nfs4 server:/export rw,vers=4.2\n"
    )
    with pytest.raises(WalUnsupportedError, match="nfs4 filesystem.*local disk"):
        check_local_filesystem(Path("/mnt/share dir/store.sqlite"), mountinfo)
    check_local_filesystem(Path("/home/me/store.sqlite"), mountinfo)


async def test_open_without_create_refuses_a_missing_store(tmp_path: Path) -> None:
    with pytest.raises(StoreMissingError):
        await RunStore.open(tmp_path / "missing.sqlite", create=False)
    assert not (tmp_path / "missing.sqlite").exists()


async def test_lifecycle_stamps_times_owner_and_state_events(store: RunStore) -> None:
    run_id = await store.create_run(
        "reranker",
        "first",
        backend="torch",
        base_model="Qwen/Qwen3-Reranker-0.6B",
        config={"lr": 1e-4, "nested": [1, 2]},
        dataset_fingerprint="sha256:abc",
        primary_metric="ndcg@10",
        goal="maximize",
    )
    run = await store.get_run(run_id)
    assert (run.status, run.started_at, run.config, run.promoted) == (
        "queued",
        None,
        {"lr": 1e-4, "nested": [1, 2]},
        False,
    )
    running = await store.set_status(run_id, "running")
    assert running.started_at is not None and running.owner_pid == os.getpid() and running.finished_at is None
    done = await store.set_status(run_id, "completed")
    assert done.finished_at is not None and done.finished_at >= running.started_at
    with pytest.raises(InvalidTransitionError):
        await store.set_status(run_id, "running")
    states = [e.event.status for e in await store.events_since(run_id) if isinstance(e.event, StateEvent)]
    assert states == ["running", "completed"]
    failed = await store.create_run("agent", "second")
    await store.set_status(failed, "running")
    assert (await store.set_status(failed, "failed", error="CUDA out of memory")).error == "CUDA out of memory"
    assert [r.id for r in await store.list_runs()] == [failed, run_id]
    assert [r.id for r in await store.list_runs(kind="agent", status="failed")] == [failed]
    with pytest.raises(ValueError):
        await store.create_run("classifier", "bad kind")
    with pytest.raises(ValueError):
        await store.create_run("agent", "bad goal", goal="maximise")
    with pytest.raises(RunNotFoundError):
        await store.get_run("r20000101-000000-00000000")


async def test_nan_and_inf_round_trip(store: RunStore) -> None:
    run_id = await store.create_run("reranker", "nan")
    await store.set_baseline(run_id, NAN)
    await store.set_best(run_id, -INF)
    run = await store.get_run(run_id)
    assert math.isnan(run.baseline) and run.best == -INF
    await store.set_best(run_id, INF)
    assert (await store.get_run(run_id)).best == INF
    events = [
        MetricsEvent(values={"loss": NAN, "grad_norm": INF, "neg": -INF, "ok": 0.5}),
        EvalEvent(metrics={"ndcg@10": NAN, "mrr": INF}, is_best=True),
        TelemetryEvent(proj_x=NAN, proj_y=-INF, loss=INF),
        CheckpointEvent(path="ckpt/step-3", step=3),
        LogEvent(level="warning", message="loss is nan"),
    ]
    await store.append_events(run_id, [(e, 3) for e in events])
    back = [record.event for record in await store.events_since(run_id)]
    assert len(back) == len(events)
    for sent, got in zip(events, back, strict=False):
        for field, value in sent.model_dump().items():
            other = getattr(got, field)
            if isinstance(value, dict):
                assert value.keys() == other.keys() and all(_same(value[k], other[k]) for k in value)
            elif isinstance(value, float):
                assert _same(value, other)
            else:
                assert value == other
    latest = await store.latest_metrics(run_id)
    assert math.isnan(latest["loss"]) and latest["grad_norm"] == INF and latest["neg"] == -INF
    assert math.isnan(latest["eval/ndcg@10"]) and latest["eval/mrr"] == INF
    point = (await store.series(run_id, "loss"))[0]
    assert math.isnan(point.value) and point.mean is None and point.count == 0


async def test_promotion_lineage(store: RunStore) -> None:
    first, second, agent = [
        await store.create_run(k, n) for k, n in (("reranker", "a"), ("reranker", "b"), ("agent", "c"))
    ]
    for run_id in (first, second, agent):
        await store.set_status(run_id, "running")
    with pytest.raises(InvalidTransitionError):
        await store.record_promotion(first, None, "not finished")
    for run_id in (first, second, agent):
        await store.set_status(run_id, "completed")
    await store.record_promotion(first, None, "beats base by 0.02")
    await store.record_promotion(agent, None, "eval loss down")
    await store.record_promotion(second, first, "beats first by 0.01")
    lineage = await store.promotions("reranker")
    assert [(p.run_id, p.replaced_run_id, p.reason) for p in lineage] == [
        (first, None, "beats base by 0.02"),
        (second, first, "beats first by 0.01"),
    ]
    assert lineage[0].promoted_at <= lineage[1].promoted_at
    assert await store.active_run("reranker") == second and await store.active_run("agent") == agent
    flags = {r.id: r.promoted for r in await store.list_runs()}
    assert flags == {first: False, second: True, agent: True}
    with pytest.raises(StoreError, match="promoted"):
        await store.delete_run(second)
    await store.append_events(first, [MetricsEvent(values={"loss": 1.0})])
    await store.delete_run(first)
    with pytest.raises(RunNotFoundError):
        await store.events_since(first)
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM metric_points").fetchone() == (0,)
    conn.close()
    assert len(await store.promotions()) == 3  # history outlives the deleted run
    await store.set_promoted(agent, False)
    assert not (await store.get_run(agent)).promoted


async def test_stale_and_orphaned_running_runs_become_interrupted(tmp_path: Path) -> None:
    db = tmp_path / "stale.sqlite"
    async with await RunStore.open(db) as store:
        stale, alive, orphan = [await store.create_run("agent", n) for n in ("stale", "alive", "orphan")]
        for run_id in (stale, alive, orphan):
            await store.set_status(run_id, "running")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE runs SET heartbeat_at = ? WHERE id = ?", (time.time() - 120, stale))
        conn.execute("UPDATE runs SET owner_pid = ? WHERE id = ?", (2**22 + 12345, orphan))  # no such process
    conn.close()
    async with await RunStore.open(db, stale_after_s=30) as store:
        assert (await store.get_run(alive)).status == "running"  # this process, fresh heartbeat
        stale_run, orphan_run = await store.get_run(stale), await store.get_run(orphan)
        assert stale_run.status == "interrupted" and "no heartbeat" in stale_run.error
        assert orphan_run.status == "interrupted" and "gone" in orphan_run.error
        last = (await store.events_since(stale))[-1].event
        assert isinstance(last, StateEvent) and last.status == "interrupted"
        resumed = await store.set_status(stale, "running")  # interrupted runs are resumable
        assert resumed.status == "running" and resumed.error is None
        assert await store.mark_stale_runs() == []


@pytest.mark.parametrize("max_points", [1, 2, 7, 100, 500, 5000])
async def test_series_downsamples_with_exact_samples_and_bucket_means(store: RunStore, max_points: int) -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=3000)
    values[[10, 500, 2999]] = [NAN, INF, -INF]
    run_id = await store.create_run("reranker", "series")
    events = []
    for i, v in enumerate(values):
        events.append((MetricsEvent(values={"loss": float(v)}), i))
        if i % 7 == 0:
            events.append((LogEvent(message="interleaved"), i))  # seqs of the metric are not contiguous
    await store.append_events(run_id, events)
    seq_to_index = {
        r.seq: r.step for r in await store.events_since(run_id, limit=10_000) if isinstance(r.event, MetricsEvent)
    }
    points = await store.series(run_id, "loss", max_points)
    assert 1 <= len(points) <= max_points
    assert [p.seq for p in points] == sorted({p.seq for p in points})
    assert points[-1].seq == max(seq_to_index)
    if max_points > 1:
        assert points[0].seq == min(seq_to_index)
    previous = 0
    for point in points:
        index = seq_to_index[point.seq]
        assert point.step == index and _same(point.value, float(values[index]))
        bucket = values[previous : index + 1]
        finite = bucket[np.isfinite(bucket)]
        assert point.count == len(finite)
        if len(finite):
            assert point.mean == pytest.approx(float(finite.mean()), rel=1e-9, abs=1e-9)
        else:
            assert point.mean is None
        previous = index + 1
    if max_points >= len(values):
        assert len(points) == len(values)
    assert await store.series(run_id, "no-such-metric") == []
