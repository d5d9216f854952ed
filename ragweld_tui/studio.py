"""What the screens need of the app, as a protocol: the store, the config, the selection, the long actions.

Screens reach the app through `AppScreen.ragweld_app`, typed as this protocol rather than as
`RagweldApp`: the app imports the screens, so a screen importing the app would close an import
circle. `RagweldApp` satisfies it (mypy checks that in `ragweld_tui.app`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from store import RunRecord, RunStore
from store.events import RunKind
from trainers.settings import AppConfig


class Studio(Protocol):
    """The running ragweld app, as its screens see it."""

    config: AppConfig
    config_path: str | None
    selected_run: str | None
    poll_interval_s: float
    clock: Callable[[], float]

    async def get_store(self) -> RunStore:
        """The open store (waits for it to open; raises StoreError if it cannot)."""
        ...

    def start_run(self, config: AppConfig, resume_run_id: str | None = None) -> None: ...

    def resume_run(self, run: RunRecord) -> None: ...

    def cancel_run(self, run: RunRecord) -> None: ...

    def ask_to_pause(self, run: RunRecord) -> None: ...

    def promote_run(self, run_id: str, force: bool = False) -> None: ...

    def rollback_active(self, kind: RunKind = "reranker") -> None: ...

    def delete_run(self, run_id: str, remove_files: bool = False) -> None: ...
