"""config.toml validation: errors name the file, the key and the allowed values; env overrides apply."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainers.settings import AppConfig
from ragweld_tui.config import load_config
from ragweld_tui.errors import UserError

REPO_CONFIG = Path(__file__).resolve().parents[1] / "config.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_the_shipped_config_is_valid_and_uses_the_embedded_default() -> None:
    config = load_config(REPO_CONFIG)
    assert config.model.base == "embedded:tiny-qwen3-reranker"
    assert config.prompt.max_length == 8192
    # The shipped file documents the defaults: every value in it is the default.
    assert config.model_dump() == AppConfig().model_dump()


@pytest.mark.parametrize(("text", "message"), [
    ('[model]\nbackend = "tpu"\n', "[model].backend: must be one of 'auto', 'mlx' or 'torch' (got 'tpu')"),
    ("[model]\nbogus = 1\n", "[model].bogus: unknown setting"),
    ("[prompt]\nmax_length = 3\n", "[prompt].max_length: Input should be greater than or equal to 64"),
    ('[model]\ndevice = "tpu"\n', "[model].device: must be one of auto, cpu, cuda, mps, gpu or cuda:N (got 'tpu')"),
    ("[model\nbase = 1\n", "invalid TOML"),
])
def test_bad_values_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(UserError) as info:
        load_config(write(tmp_path, text))
    assert str(tmp_path / "config.toml") in str(info.value) and message in str(info.value)


def test_toml_errors_name_the_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="line 3"):
        load_config(write(tmp_path, '[model]\nbase = "x"\nbackend = \n'))


def test_environment_overrides_and_relative_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[store]\npath = "db/runs.sqlite"\n')
    monkeypatch.setenv("RAGWELD_BACKEND", "mlx")
    monkeypatch.setenv("RAGWELD_DEVICE", "cpu")
    config = load_config(path)
    assert (config.model.backend, config.model.device) == ("mlx", "cpu")
    assert config.store_path() == tmp_path / "db" / "runs.sqlite"
    monkeypatch.setenv("RAGWELD_DEVICE", "quantum")
    with pytest.raises(UserError, match="RAGWELD_DEVICE"):
        load_config(path)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="config file not found"):
        load_config(tmp_path / "nope.toml")
