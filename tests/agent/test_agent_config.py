"""The agent's configuration: the shipped agent.toml, kind defaults and rules, and import hygiene."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from backends.settings import EMBEDDED_CHAT
from ragweld_tui.config import load_config, parse_config
from ragweld_tui.errors import UserError

REPO = Path(__file__).resolve().parents[2]


def test_the_shipped_agent_toml_is_valid() -> None:
    config = load_config(REPO / "agent.toml")
    assert config.train.kind == "agent" and config.model.base == EMBEDDED_CHAT
    assert config.train.primary_metric == "eval_loss" and config.data.path is None and config.data.format == "chat"


def test_agent_runs_default_to_the_chat_model_and_eval_loss() -> None:
    config = parse_config({"train": {"kind": "agent"}}, "t")
    assert (config.model.base, config.train.primary_metric, config.train.name) == (EMBEDDED_CHAT, "eval_loss", "agent")
    assert parse_config({}, "t").model.base == "embedded:tiny-qwen3-reranker"  # the reranker's defaults stay
    kept = parse_config({"model": {"base": "Qwen/Qwen3-1.7B"}, "train": {"kind": "agent", "name": "mine"}}, "t")
    assert (kept.model.base, kept.train.name) == ("Qwen/Qwen3-1.7B", "mine")


@pytest.mark.parametrize(("raw", "message"), [
    ({"train": {"kind": "agent", "primary_metric": "ndcg@10"}},
     "t: [train].primary_metric = 'ndcg@10' is a reranker metric; agent runs use eval_loss"),
    ({"train": {"primary_metric": "eval_loss"}}, "t: [train].primary_metric = 'eval_loss' is the agent's metric"),
    ({"train": {"kind": "agent"}, "data": {"format": "beir"}}, "[data].format = 'beir' is reranker data"),
    ({"data": {"format": "chat"}}, "[data].format = 'chat' is agent training data"),
    ({"chat": {"top_p": 0}}, "[chat].top_p"),
    ({"train": {"kind": "agent", "train_on": "first"}}, "[train].train_on"),
])
def test_mismatched_settings_are_refused(raw: dict, message: str) -> None:
    with pytest.raises(UserError) as info:
        parse_config(raw, "t")
    assert message in str(info.value)


def test_cli_with_the_chat_command_imports_no_framework() -> None:
    forbidden = ("torch", "mlx", "transformers", "peft", "mlx_lm")
    code = ("import json, sys; from ragweld_tui.cli import build_parser; build_parser(); "
            "import ragweld_tui.commands.chat, ragweld_tui.config; "
            f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({forbidden!r}))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True, cwd=REPO)
    assert json.loads(result.stdout) == []
