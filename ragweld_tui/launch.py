"""Runs started from the TUI are their own processes: `ragweld-tui --run CONFIG [--resume RUN_ID]`,
detached from the terminal, so closing the TUI (or losing the SSH connection) never ends training.

Each launch gets a folder under `<runs root>/launches/` holding the config it runs (written as TOML,
with the store's database and runs folder filled in so the child writes where the TUI reads) and the
process's output. The child has its own session (no SIGHUP when the terminal goes), stdin from
/dev/null, stdout and stderr to `output.log`. The TUI then only watches the store.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ragweld_tui
from store import RunRecord
from trainers.settings import AppConfig

LAUNCHES = "launches"
CONFIG_FILE, LOG_FILE = "config.toml", "output.log"
PATH_KEYS = (("serving", "active_adapter"), ("serving", "feedback_path"), ("data", "path"))


def _toml_value(value: Any) -> str:
    """A TOML literal for a JSON-mode value (strings as JSON strings: valid TOML basic strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ValueError(f"cannot write {value!r} as TOML")


def config_toml(config: AppConfig, database: Path, runs_root: Path) -> str:
    """The config as a TOML file `load_config` reads back to the same settings, on the given store.

    Relative paths are made absolute (the file lives elsewhere than the TUI's directory); unset
    (None) settings are left out, so they keep their defaults.
    """
    raw: dict[str, dict[str, Any]] = config.model_dump(mode="json")
    raw["store"] = {"path": str(database.resolve()), "runs_root": str(runs_root.resolve())}
    for section, key in PATH_KEYS:
        value = raw.get(section, {}).get(key)
        if isinstance(value, str):
            raw[section][key] = str(Path(value).expanduser().resolve())
    lines: list[str] = []
    for section, values in raw.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in values.items() if value is not None]
        lines.append("")
    return "\n".join(lines)


@dataclass
class Launch:
    """One training process started here: what it runs, where it writes, and the run it made."""

    process: subprocess.Popen[bytes]
    folder: Path
    name: str
    resume_run_id: str | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def log(self) -> Path:
        return self.folder / LOG_FILE

    def is_its_run(self, run: RunRecord) -> bool:
        """Whether `run` is the one this process trains (it took the run's lease)."""
        if self.resume_run_id is not None and run.id != self.resume_run_id:
            return False
        return run.owner_pid == self.pid and run.owner_host == socket.gethostname()

    def last_log_line(self) -> str:
        """The last non-empty line the process wrote (its error, when it died early)."""
        try:
            lines = [line.strip() for line in self.log.read_text(errors="replace").splitlines() if line.strip()]
        except OSError:
            return f"(no output: {self.log} cannot be read)"
        return lines[-1] if lines else "(no output)"


def spawn_run(config: AppConfig, database: Path, runs_root: Path, resume_run_id: str | None = None) -> Launch:
    """Write the launch folder and start the detached training process (returns at once)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    label = resume_run_id or "".join(c if c.isalnum() or c in "-_" else "-" for c in config.train.name)[:40]
    folder = runs_root / LAUNCHES / f"{stamp}-{label}-{secrets.token_hex(3)}"
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / CONFIG_FILE
    config_path.write_text(config_toml(config, database, runs_root), encoding="utf-8")
    command = [sys.executable, "-m", "ragweld_tui.cli", "--run", str(config_path)]
    if resume_run_id is not None:
        command += ["--resume", resume_run_id]
    # The child runs this very code: the folder ragweld_tui was imported from goes first on its path.
    source = str(Path(ragweld_tui.__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(p for p in (source, os.environ.get("PYTHONPATH")) if p))
    with open(folder / LOG_FILE, "ab") as log, open(os.devnull, "rb") as devnull:
        process = subprocess.Popen(command, stdin=devnull, stdout=log, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True, close_fds=True)
    return Launch(process, folder, config.train.name, resume_run_id)
