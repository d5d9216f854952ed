"""A fixed run store for TUI tests: deterministic ids, times and series, so screens snapshot stably.

Runs are written through the public RunStore API; ids and times are then pinned with plain SQL
(the store stamps wall-clock times), and every event's ts becomes created_at + seq.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import sqlite3
from pathlib import Path

from store import (AlarmEvent, CheckpointEvent, DatasetEvent, EvalEvent, LogEvent, MetricsEvent, PromotionEvent,
                   RunStore, TelemetryEvent)

DAY = 86400.0
T0 = 1735732800.0  # 2025-01-01 12:00:00Z
NOW = T0 + 5 * DAY  # the fixed clock the tests give the app
RUN_A = "r20250101-120000-0000000a"
RUN_B = "r20250102-120000-0000000b"
RUN_C = "r20250103-120000-0000000c"
RUN_D = "r20250104-120000-0000000d"


def run_config(**train: object) -> dict:
    """A fixed stored config, written out by hand so config-model changes elsewhere never move snapshots."""
    return {
        "model": {"base": "embedded:tiny-qwen3-reranker", "backend": "auto", "dtype": "auto"},
        "data": {"path": None, "format": "auto", "dev_fraction": 0.2, "seed": 0},
        "lora": {"rank": 8, "alpha": 16.0, "dropout": 0.0},
        "train": {"kind": "reranker", "name": "reranker", "max_steps": 200, "batch_size": 8, "learning_rate": 2e-4,
                  "primary_metric": "mrr@10", "promote_epsilon": 0.01, "auto_promote": True} | train,
    }


DEMO_DATASET = DatasetEvent(
    source="the bundled demo", format="triplets", fingerprint="fp-cisi-16q",
    summary="triplets data (demo) from the bundled demo: 16 queries, 64 positives, 320 negatives; dev candidates: "
            "the data's own lists (no first stage)",
    counts={"n_queries": 16, "n_without_positives": 0, "n_positives": 64, "n_negatives": 320,
            "n_without_negatives": 0, "n_beyond_max_queries": 0, "n_false_negatives_dropped": 0, "n_too_long": 0},
    train=12, dev=4)


def training_events(steps: int, lr: float, seed: float, eval_every: int, baseline: float, gain: float) -> list:
    """The dataset event (first, as the trainers write it), then the metrics, telemetry and eval events of a
    smooth synthetic run, with the human log lines the trainers also write."""
    events: list = [(DEMO_DATASET, None),
                    (EvalEvent(metrics={"mrr@10": baseline, "ndcg@10": baseline + 0.05}, split="baseline"), 0)]
    events.append((LogEvent(message="triplets data (demo) from the bundled demo: 16 queries, 64 positives, "
                                    "320 negatives"), None))
    events.append((LogEvent(message="torch on cpu (no GPU found); 12 train / 4 dev queries"), None))
    for step in range(1, steps + 1):
        loss = 1.2 * math.exp(-step / (steps / 3)) + 0.25 + 0.04 * math.sin(step * seed)
        rate = lr * min(1.0, step / 10) * (1 - step / (steps + 1))
        grad = 0.5 + 0.3 * math.cos(step / 7)
        events.append((MetricsEvent(values={"train/loss": loss, "train/lr": rate, "train/grad_norm": grad,
                                            "train/tokens_per_s": 900 + (step % 13) * 10}), step))
        angle = step / steps * 3 * math.pi
        radius = 1.0 - step / (steps * 1.2)
        x, y = radius * math.cos(angle + seed), radius * math.sin(angle + seed)
        events.append((TelemetryEvent(proj_x=x, proj_y=y, loss=loss), step))
        if step % eval_every == 0:
            value = baseline + gain * step / steps
            metrics = {"mrr@10": value, "ndcg@10": value + 0.05}
            events.append((EvalEvent(metrics=metrics, split="dev", is_best=True), step))
            events.append((CheckpointEvent(path=f"checkpoints/step-{step:07d}", step=step), step))
    return events


async def _build(db: Path) -> None:
    runs_root = db.parent / "runs"
    store = await RunStore.open(db, runs_root=runs_root)
    try:
        ids = {}
        a = await store.create_run("reranker", "cisi-lora-r8", "torch", "embedded:tiny-qwen3-reranker",
                                   run_config(name="cisi-lora-r8", max_steps=120), "fp-cisi-16q", "mrr@10", "maximize")
        await store.set_status(a, "running", reason="started")
        await store.append_events(a, training_events(120, 2e-4, 0.7, 20, 0.41, 0.06))
        await store.set_baseline(a, 0.41)
        await store.set_best(a, 0.47)
        body = json.dumps({"run_id": RUN_A, "base_model": "embedded:tiny-qwen3-reranker", "rank": 8}, sort_keys=True)
        digest = hashlib.sha256(body.encode()).hexdigest()
        await store.add_artifact(a, "adapter", "adapter/manifest.json", digest, len(body))
        await store.add_artifact(a, "adapter", "adapter/adapter_model.safetensors", "ab" * 32, 1_572_864)
        await store.set_status(a, "completed", reason="best mrr@10 0.4700 at step 120")
        await store.record_promotion(a, None, "improves on the baseline by +0.0600 (≥ epsilon 0.01)")
        verdict = PromotionEvent(promoted=True, metric="mrr@10", reference="baseline",
                                 figures={"tuned": 0.47, "baseline": 0.41, "first stage": 0.38},
                                 reasons=["improves on the baseline by +0.0600 (≥ epsilon 0.01)"])
        await store.append_events(a, [(verdict, None)])
        ids[a] = (RUN_A, T0, 754.0)

        b = await store.create_run("reranker", "cisi-lr-high", "mlx", "embedded:tiny-qwen3-reranker",
                                   run_config(name="cisi-lr-high", max_steps=80, learning_rate=1e-3), "fp-cisi-16q",
                                   "mrr@10", "maximize")
        await store.set_status(b, "running")
        await store.append_events(b, training_events(80, 1e-3, 1.9, 20, 0.41, 0.02))
        await store.set_baseline(b, 0.41)
        await store.set_best(b, 0.43)
        await store.set_status(b, "completed")
        serving = f"serving run {RUN_A}"  # the id run A gets once ids are pinned below
        refused = PromotionEvent(promoted=False, metric="mrr@10", reference=serving,
                                 figures={"tuned": 0.43, "baseline": 0.41, "first stage": 0.38, serving: 0.47},
                                 reasons=[f"improvement -0.0400 over the serving adapter ({RUN_A}) 0.4700 is "
                                          "below epsilon 0.01"])
        await store.append_events(b, [(refused, None)])
        ids[b] = (RUN_B, T0 + DAY, 431.0)

        c = await store.create_run("reranker", "diverged", "torch", "Qwen/Qwen3-Reranker-0.6B",
                                   run_config(name="diverged", learning_rate=1.0), "fp-cisi-16q", "mrr@10", "maximize")
        await store.set_status(c, "running")
        await store.append_events(c, training_events(12, 1.0, 3.1, 100, 0.41, 0.0)[:30])
        alarm = "loss 8.1e+05 is over 100× its running mean at step 12"
        await store.append_events(c, [(AlarmEvent(kind="loss_divergence", message=alarm, value=8.1e5, threshold=100.0),
                                       12),
                                      (LogEvent(level="warning", message="grad norm 1e6 clipped"), 12),
                                      (LogEvent(level="error", message="TrainingFailed: loss is nan at step 13"), 13)])
        await store.set_status(c, "failed", error="TrainingFailed: loss is nan at step 13")
        await store.set_alarm(c, alarm)
        ids[c] = (RUN_C, T0 + 2 * DAY, 65.0)

        d = await store.create_run("agent", "agent-chat", "mlx", "mlx-community/Qwen3-1.7B-4bit",
                                   run_config(name="agent-chat", kind="agent", primary_metric="eval_loss"), None,
                                   "eval_loss", "minimize")
        await store.set_status(d, "running")
        await store.append_events(d, [(LogEvent(message="loading model"), None)])
        await store.set_status(d, "interrupted", reason="owner process 4242 is gone")
        ids[d] = (RUN_D, T0 + 3 * DAY, 30.0)
    finally:
        await store.close()
    with sqlite3.connect(db) as conn:
        for old, (new, created, duration) in ids.items():
            conn.execute(
                """UPDATE runs SET id = ?, created_at = ?, started_at = ?, heartbeat_at = ?, owner_pid = NULL,
                   owner_host = NULL, finished_at = CASE WHEN finished_at IS NULL THEN NULL ELSE ? END WHERE id = ?""",
                (new, created, created + 5, created + 5 + duration, created + 5 + duration, old))
            conn.execute("UPDATE promotions SET run_id = ?, promoted_at = ? WHERE run_id = ?",
                         (new, created + 900, old))
        conn.execute("UPDATE artifacts SET created_at = (SELECT created_at FROM runs WHERE pk = run_pk) + 800")
        conn.execute("UPDATE events SET ts = (SELECT created_at FROM runs WHERE pk = run_pk) + 5 + seq")
    manifest = runs_root / RUN_A / "adapter" / "manifest.json"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({"run_id": RUN_A, "base_model": "embedded:tiny-qwen3-reranker", "rank": 8},
                                   sort_keys=True))


def build_fixture_db(db: Path) -> Path:
    """Write the fixed store at `db` (runs folder beside it) and return its path."""
    asyncio.run(_build(db))
    return db
