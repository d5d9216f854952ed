"""Where the store lives: the `[store]` section and the data folder (`RAGWELD_HOME`).

This is the one place that decides the store's location, the runs folder and the data folder the
active adapters live in; the CLI, the TUI and the trainers all ask here.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs
from pydantic import BaseModel, ConfigDict, Field

APP_NAME = "ragweld-tui"


def data_dir() -> Path:
    """Where runs, the store and the active adapters live unless the config says otherwise."""
    override = os.environ.get("RAGWELD_HOME")
    return Path(override).expanduser() if override else Path(platformdirs.user_data_dir(APP_NAME))


class StoreConfig(BaseModel):
    """Where the SQLite store and the run artifacts live (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=True)

    path: Path | None = Field(None, strict=False)  # paths come as TOML strings
    runs_root: Path | None = Field(None, strict=False)

    def database(self) -> Path:
        """The SQLite file: `path`, else `<data dir>/ragweld.sqlite`."""
        return self.path or data_dir() / "ragweld.sqlite"

    def runs(self) -> Path:
        """The folder of run artifacts: `runs_root`, else `<data dir>/runs`."""
        return self.runs_root or data_dir() / "runs"


def store_location(config: StoreConfig, db: Path | str | None = None) -> tuple[Path, Path | None]:
    """(database, runs root) for a command: `--db PATH` keeps its runs beside it (None lets the store
    choose `runs/` next to the file); otherwise the configured store and runs folder."""
    if db:
        return Path(db).expanduser(), None
    return config.database(), config.runs()
