"""Agent runs end to end: `--run` on the bundled demo (PyTorch via the CLI, MLX in process), the
shared events/artifacts/manifest/promotion, bad chat files, exact resume, the `chat` REPL."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from backends.adapters import MLX_WEIGHTS, PEFT_WEIGHTS, verify_adapter
from backends.chat_template import chat_template_fingerprint
from ragweld_tui.cli import main
from ragweld_tui.config import load_config
from store import RunStore
from tests.agent.helpers import TAUGHT, agent_cli, store_runs, write_agent_config
from trainers.engine_base import read_state


async def events_and_artifacts(db: Path, run_id: str):
    store = await RunStore.open(db)
    try:
        return [e.event.type for e in await store.events_since(run_id, 0, 10_000)], await store.artifacts(run_id)
    finally:
        await store.close()


def test_demo_run_learns_promotes_and_chats(tmp_path: Path, chat_model_dir: Path) -> None:
    config = write_agent_config(tmp_path, chat_model_dir)
    result = agent_cli("--run", str(config))
    assert result.returncode == 0, result.stderr + result.stdout
    assert "eval_loss" in result.stdout and "perplexity" in result.stdout and "PROMOTED" in result.stdout
    (run,) = store_runs(tmp_path / "db.sqlite")
    assert run.kind == "agent" and run.status == "completed" and run.primary_metric == "eval_loss"
    assert run.goal == "minimize" and run.best < 0.5 * run.baseline and run.promoted
    adapter = tmp_path / "runs" / run.id / "adapter"
    manifest = verify_adapter(adapter)
    assert manifest.kind == "agent" and manifest.template_fingerprint == chat_template_fingerprint()
    assert (adapter / PEFT_WEIGHTS).is_file() and manifest.metrics["eval_loss"] == pytest.approx(run.best)
    types, artifacts = asyncio.run(events_and_artifacts(tmp_path / "db.sqlite", run.id))
    assert {"metrics", "eval", "telemetry", "log", "state", "checkpoint"} <= set(types)
    assert {a.path for a in artifacts} >= {"adapter/manifest.json", f"adapter/{PEFT_WEIGHTS}"}
    active = tmp_path / "active" / "agent"
    assert verify_adapter(active).run_id == run.id

    chat = agent_cli("--config", str(config), "chat", "--temperature", "0", "--max-tokens", "12",
                     stdin="What is the capital of Peru?\n/reset\nWhat is 2 plus 2?\n")
    assert chat.returncode == 0, chat.stderr
    assert f"adapter {active}" in chat.stderr and len(chat.stdout.strip().splitlines()) == 2

    # Bad chat data: exit 2 naming file:line, no run created, the active adapter untouched.
    bad = [('{"messages": [{"role": "user", "content": "q"}]}\n', ":1:", "assistant's reply"),
           ('{"prompt": "q", "completion": "a"}\n{"messages": [{"role": "user", "content": [{"type": "image"}]}, '
            '{"role": "assistant", "content": "a"}]}\n', ":2:", "images are not supported"),
           ('{"prompt": "q", "completion": "a"}\nnot json\n', ":2:", "invalid JSON")]
    target = active.resolve()
    for index, (text, where, what) in enumerate(bad):
        data = tmp_path / f"bad{index}.jsonl"
        data.write_text(text)
        out = agent_cli("--run", str(write_agent_config(tmp_path, chat_model_dir, data=data)))
        assert out.returncode == 2, out.stderr
        assert f"{data}{where}" in out.stderr and what in out.stderr and "Traceback" not in out.stderr
    assert len(store_runs(tmp_path / "db.sqlite")) == 1 and active.resolve() == target


def test_kind_and_metric_must_agree(tmp_path: Path, chat_model_dir: Path, capsys: pytest.CaptureFixture) -> None:
    for extra, message in ((dict(primary_metric="mrr@10"), "is a reranker metric"),
                           (dict(kind="reranker", primary_metric="eval_loss"), "is the agent's metric")):
        assert main(["--run", str(write_agent_config(tmp_path, chat_model_dir, **extra))]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "db.sqlite").exists()


class _Crash(BaseException):
    """Stands in for a killed process: not an Exception, so the run loop cannot record it."""


async def test_mlx_run_and_exact_resume(tmp_path: Path, chat_model_dir: Path) -> None:
    """MLX trains the demo and writes an mlx-lm adapter; a run that dies after its step-4 checkpoint
    and is resumed ends with the adapter of an uninterrupted run."""
    from trainers.agent_plan import AgentPlan
    from trainers.run_loop import run_training

    config = load_config(write_agent_config(tmp_path, chat_model_dir, "mlx", max_steps=8, eval_every=4,
                                            checkpoint_every=2, auto_promote=False))
    plan = await asyncio.to_thread(AgentPlan.prepare, config)
    store = await RunStore.open(config.store_path(), runs_root=config.runs_root())
    try:
        whole = await run_training(config, store, plan)
        assert whole.status == "completed" and whole.best["eval_loss"] < whole.baseline["eval_loss"] - 1.0
        adapter = config.runs_root() / whole.run_id / "adapter"
        assert (adapter / MLX_WEIGHTS).is_file() and verify_adapter(adapter).backend == "mlx"
        assert json.loads((adapter / "adapter_config.json").read_text())["num_layers"] == 2

        real = plan.batches_for

        def dies_at_step_5(step: int):
            if step == 5:
                raise _Crash
            return real(step)

        plan.batches_for = dies_at_step_5
        with pytest.raises(_Crash):
            await run_training(config, store, plan)
        plan.batches_for = real
        (cut,) = [r for r in await store.list_runs() if r.id != whole.run_id]
        await store.set_status(cut.id, "interrupted")  # what opening the store does for a dead process
        resumed = await run_training(config, store, plan, resume_run_id=cut.id)
        assert resumed.status == "completed" and resumed.best == pytest.approx(whole.best, abs=1e-6)
    finally:
        await store.close()
    final = {r: read_state(sorted((config.runs_root() / r / "checkpoints").glob("step-*"))[-1])
             for r in (whole.run_id, cut.id)}
    assert final[whole.run_id].step == final[cut.id].step == 8
    for name, (a, b) in final[whole.run_id].lora.modules.items():
        np.testing.assert_allclose(final[cut.id].lora.modules[name][0], a, atol=1e-6)
        np.testing.assert_allclose(final[cut.id].lora.modules[name][1], b, atol=1e-6)


def test_chat_with_an_explicit_adapter(chat_model_dir: Path, taught_adapter: Path, tiny_model_dir: Path,
                                       tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ask = TAUGHT[0]["content"] + "\n"
    result = agent_cli("chat", "--model", str(chat_model_dir), "--adapter", str(taught_adapter), "--temperature", "0",
                       stdin=ask)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == TAUGHT[1]["content"]
    foreign = agent_cli("chat", "--model", str(tiny_model_dir), "--adapter", str(taught_adapter), stdin=ask)
    assert foreign.returncode == 2 and "adapter refused" in foreign.stderr and "trained on base" in foreign.stderr
    assert main(["chat", "--adapter", str(tmp_path / "nope")]) == 2
    assert "adapter folder not found" in capsys.readouterr().err
