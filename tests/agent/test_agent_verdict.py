"""The agent's gate compares with the agent adapter serving now, measured on the run's own dev
conversations: a short run that beats its base but not the serving adapter is not promoted."""

from __future__ import annotations

from pathlib import Path

from tests.agent.helpers import agent_cli, store_runs, write_agent_config


def test_an_agent_run_must_beat_the_serving_agent_adapter(tmp_path: Path, chat_model_dir: Path) -> None:
    trained = agent_cli("--run", str(write_agent_config(tmp_path, chat_model_dir)))
    assert "promotion: PROMOTED" in trained.stdout, trained.stdout + trained.stderr
    (serving,) = store_runs(tmp_path / "db.sqlite")
    active = (tmp_path / "active" / "agent").resolve()

    short = agent_cli("--run", str(write_agent_config(tmp_path, chat_model_dir, max_steps=4, eval_every=4,
                                                      checkpoint_every=4)))
    assert short.returncode == 0, short.stderr
    run = next(r for r in store_runs(tmp_path / "db.sqlite") if r.id != serving.id)
    assert run.baseline - run.best >= 0.05 and run.best > serving.best, "precondition: beats its base only"
    assert "promotion: not promoted" in short.stdout
    assert f"must beat the serving adapter (run {serving.id})" in short.stdout
    assert f"serving run {serving.id} {serving.best:.4f}" in short.stdout  # re-measured on the same dev split
    assert (run.serving_run_id, round(run.serving, 6)) == (serving.id, round(serving.best, 6))
    assert (tmp_path / "active" / "agent").resolve() == active
