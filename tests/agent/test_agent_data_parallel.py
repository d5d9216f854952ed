"""An agent (chat LoRA) run in 2 processes (gloo) takes the one-process updates: conversations, not
groups, are what each rank's shard holds, and the loss is divided by the global target-token count."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.agent.helpers import write_agent_config
from tests.trainers.run_helpers import run_cli, store_runs
from tests.trainers.test_data_parallel import final_adapter, max_difference, one_process_adapter


@pytest.mark.slow  # two training processes and their launcher: about a minute on a loaded 2-core CPU
def test_agent_two_processes_equal_one_process(tmp_path: Path, chat_model_dir: Path) -> None:
    steps = 3
    config = write_agent_config(tmp_path, chat_model_dir, max_steps=steps, eval_every=100, checkpoint_every=1,
                                auto_promote=False, batch_size=5)
    proc = run_cli("--run", str(config), "--nproc", "2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run,) = store_runs(tmp_path / "db.sqlite")
    assert run.kind == "agent" and run.status == "completed" and run.world_size == 2
    difference = max_difference(final_adapter(tmp_path, run.id, steps), one_process_adapter(config, steps))
    print(f"agent, 2 processes vs 1: max |ΔLoRA| {difference:.2e}")
    assert difference <= 1e-5
