"""`ragweld-tui --run` end to end on CISI with the tiny model, on both backends; bad input; cancel."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from backends.adapters import MLX_WEIGHTS, PEFT_WEIGHTS, verify_adapter
from ragweld_tui.config import load_config
from store import RunStore
from tests.trainers.run_helpers import CISI, run_cli, store_runs, write_config

pytestmark = pytest.mark.skipif(not (CISI / "corpus.jsonl").is_file(), reason="../shared/data/cisi missing")


@pytest.mark.parametrize(("backend", "weights", "precision", "checkpointing"),
                         [("torch", PEFT_WEIGHTS, "bf16", True), ("mlx", MLX_WEIGHTS, "auto", False)])
def test_run_on_cisi_end_to_end(tmp_path: Path, backend: str, weights: str, precision: str, checkpointing: bool) -> None:
    config = write_config(tmp_path, backend, data=str(CISI), precision=precision, gradient_checkpointing=checkpointing)
    result = run_cli("--run", str(config))
    assert result.returncode == 0, result.stderr + result.stdout
    assert "mrr@10" in result.stdout and "promotion:" in result.stdout
    # first stage → base → tuned on the same BM25 candidates, with rerank latency and throughput.
    assert "dev candidates: bm25 top 100" in result.stdout
    lines = result.stdout.splitlines()
    table = lines[next(i for i, line in enumerate(lines) if line.startswith("system")) + 1:]
    assert [row.split()[0] for row in table[:3]] == ["first", "base", "tuned"]
    assert all(col in result.stdout for col in ("p50 ms", "p95 ms", "pairs/s"))
    (run,) = store_runs(tmp_path / "db.sqlite")
    assert run.status == "completed" and run.backend == backend and run.baseline is not None
    adapter = tmp_path / "runs" / run.id / "adapter"
    manifest = verify_adapter(adapter)
    assert (adapter / weights).is_file() and manifest.backend == backend and manifest.run_id == run.id
    # The precision that ran (auto resolved: fp32 on MLX's CPU) is in the run's config and the manifest.
    ran = "fp32" if precision == "auto" else precision
    assert run.config["train"]["precision"] == manifest.precision == ran
    assert run.config["train"]["gradient_checkpointing"] is manifest.gradient_checkpointing is checkpointing
    compiled = backend == "mlx"  # `[train].compile = auto`: MLX compiles its step, torch ignores the setting
    assert run.config["train"]["compile"] is compiled
    shown = run_cli("--config", str(config), "runs", "show", run.id).stdout
    assert f"precision  {ran}{' + checkpointing' if checkpointing else ''}{' + compiled' if compiled else ''}\n" in shown

    async def events():
        store = await RunStore.open(tmp_path / "db.sqlite")
        try:
            return [e.event.type for e in await store.events_since(run.id, 0, 10_000)], await store.artifacts(run.id)
        finally:
            await store.close()

    types, artifacts = asyncio.run(events())
    assert {"metrics", "eval", "telemetry", "log", "state", "checkpoint"} <= set(types)
    assert {a.path for a in artifacts} >= {"adapter/manifest.json", f"adapter/{weights}"}
    if "PROMOTED" in result.stdout:
        assert verify_adapter(tmp_path / "active" / "reranker").run_id == run.id


def _active_before(tmp_path: Path) -> Path:
    """An existing active adapter (made by a real short run) that bad input must leave alone."""
    config = write_config(tmp_path, "torch", max_steps=2, eval_every=1, auto_promote=False)
    assert run_cli("--run", str(config)).returncode == 0
    (run,) = store_runs(tmp_path / "db.sqlite")
    forced = run_cli("--config", str(config), "promote", run.id, "--force")
    assert forced.returncode == 0, forced.stderr
    return (tmp_path / "active" / "reranker").resolve()


BAD_FILES = [
    ('{"query": "q", "positives": ["a"], "negatives": ["b"]}\n{"query": "q2", "positives": [\n', ":2:", "JSON"),
    ('{"query": "q", "negatives": ["b"]}\n', ":1:", "positives"),
    ('{"query": "  ", "positives": ["a"], "negatives": ["b"]}\n', ":1:", "query"),
    ('{"query": "q", "positives": "a", "negatives": ["b"]}\n', ":1:", "list"),
]


def test_bad_input_changes_nothing(tmp_path: Path) -> None:
    active = _active_before(tmp_path)
    runs_before = len(store_runs(tmp_path / "db.sqlite"))
    for index, (text, where, what) in enumerate(BAD_FILES):
        data = tmp_path / f"bad{index}.jsonl"
        data.write_text(text)
        result = run_cli("--run", str(write_config(tmp_path, "torch", data=str(data))))
        assert result.returncode == 2, result.stderr
        assert f"{data}{where}" in result.stderr and what in result.stderr and "Traceback" not in result.stderr
    for extra, message in ((dict(data=str(tmp_path / "missing.jsonl")), "missing.jsonl"),
                           (dict(learning_rate=-1), "[train].learning_rate")):
        result = run_cli("--run", str(write_config(tmp_path, "torch", **extra)))
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    runs = store_runs(tmp_path / "db.sqlite")
    assert len(runs) == runs_before and not any(r.status == "running" for r in runs)
    assert (tmp_path / "active" / "reranker").resolve() == active
    verify_adapter(active)


def test_resume_needs_an_interrupted_run(tmp_path: Path) -> None:
    config = write_config(tmp_path, "torch")
    result = run_cli("--run", str(config), "--resume", "r20260101-000000-deadbeef")
    assert result.returncode == 2 and "no run r20260101-000000-deadbeef" in result.stderr


async def test_cancel_takes_effect_within_one_step(tmp_path: Path) -> None:
    from trainers.run_loop import run_for_config

    config = load_config(write_config(tmp_path, "torch", max_steps=50))
    cancel = threading.Event()
    seen: list[int] = []

    def on_progress(update) -> None:
        seen.append(update.step)
        if update.step == 2:
            cancel.set()

    store = await RunStore.open(config.store_path(), runs_root=config.runs_root())
    try:
        outcome = await run_for_config(config, store, cancel, on_progress=on_progress)
        run = await store.get_run(outcome.run_id)
    finally:
        await store.close()
    assert outcome.status == run.status == "cancelled"
    assert seen == [1, 2] and outcome.steps == 2
    assert not (tmp_path / "active" / "reranker").exists()


async def test_nan_loss_fails_the_run_and_promotes_nothing(tmp_path: Path) -> None:
    from trainers.run_loop import run_for_config

    # A LoRA scale at the edge of float32 overflows the weights after the first update: NaN loss.
    path = write_config(tmp_path, "torch", max_steps=8, learning_rate=1.0, max_grad_norm=1e30, eval_every=100)
    path.write_text(path.read_text() + "[lora]\nalpha = 3e38\nrank = 1\n")
    config = load_config(path)
    store = await RunStore.open(config.store_path(), runs_root=config.runs_root())
    try:
        outcome = await run_for_config(config, store)
        run = await store.get_run(outcome.run_id)
        checkpoints = [e for e in await store.events_since(run.id, 0, 1000) if e.event.type == "checkpoint"]
    finally:
        await store.close()
    assert outcome.status == run.status == "failed" and "non-finite" in (run.error or "")
    assert not checkpoints and not (tmp_path / "active" / "reranker").exists() and not run.promoted
