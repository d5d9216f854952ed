"""Bridges from the TUI to the trainers: start, resume, cancel, promote and roll back runs.

Trainer modules are imported lazily, in a thread (they pull in numpy, torch or mlx), never at import
time of the TUI. A missing trainer module becomes `Unavailable` with a one-line reason, so the key
still answers with a clear notification instead of a traceback.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from ragweld_tui.commands.common import user_errors
from ragweld_tui.config import AppConfig, parse_config
from ragweld_tui.errors import UserError
from store import RunRecord, RunStore

RUN_MODULE = "trainers.run_loop"  # run_for_config: reranker and agent runs
PROMOTION_MODULE = "trainers.promotion"


class Unavailable(Exception):
    """A feature whose implementation is not installed or not written yet."""


async def load_module(name: str, feature: str) -> ModuleType:
    """Import a trainer module in a worker thread; Unavailable when it does not exist."""
    try:
        return await asyncio.to_thread(importlib.import_module, name)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == name or name.startswith(exc.name + ".")):
            raise Unavailable(f"{feature} is not available yet ({name} is missing)") from None
        raise


class TrainingRegistry:
    """Cancel flags of the runs training in this process, by run id (plain state, no widgets)."""

    def __init__(self) -> None:
        self._cancels: dict[str, threading.Event] = {}
        self.active = 0

    def register(self, run_id: str, cancel: threading.Event) -> None:
        """Remember the cancel flag of a run started here."""
        self._cancels[run_id] = cancel

    def forget(self, run_id: str | None) -> None:
        """Drop a finished run's flag."""
        if run_id is not None:
            self._cancels.pop(run_id, None)

    def owns(self, run_id: str) -> bool:
        """Whether the run trains in this process."""
        return run_id in self._cancels

    def cancel(self, run_id: str) -> bool:
        """Ask an in-process run to stop; False when it is not ours."""
        event = self._cancels.get(run_id)
        if event is None:
            return False
        event.set()
        return True

    def cancel_all(self) -> None:
        """Ask every in-process run to stop (on quit)."""
        for event in self._cancels.values():
            event.set()


async def train(config: AppConfig, store: RunStore, registry: TrainingRegistry,
                resume_run_id: str | None = None) -> str:
    """Run the trainer of the config's kind in this process; returns the run id when it ends."""
    run = (await load_module(RUN_MODULE, "training")).run_for_config
    cancel = threading.Event()
    registry.active += 1
    try:
        with user_errors():  # a bad data file is the user's mistake: one line, not a crash
            outcome = await run(config, store, cancel, resume_run_id=resume_run_id,
                                on_run_created=lambda run_id: registry.register(run_id, cancel))
        return outcome.run_id
    finally:
        registry.active -= 1


def config_for_run(run: RunRecord, fallback: AppConfig) -> AppConfig:
    """The run's own stored config (to resume it), or the current config when it has none usable."""
    if not run.config:
        return fallback
    try:
        return parse_config(run.config, f"run {run.id}")
    except UserError:
        return fallback


def cancel_foreign(run: RunRecord) -> str:
    """Interrupt a run owned by another process on this host with SIGINT; returns what happened."""
    if run.owner_pid is None or run.owner_host != socket.gethostname():
        raise UserError(f"run {run.id} trains on {run.owner_host or 'an unknown host'}; cancel it there")
    if run.owner_pid == os.getpid():
        raise UserError(f"run {run.id} belongs to this process but has no cancel flag")
    try:
        os.kill(run.owner_pid, signal.SIGINT)
    except ProcessLookupError:
        raise UserError(f"process {run.owner_pid} of run {run.id} is gone") from None
    except PermissionError:
        raise UserError(f"not allowed to signal process {run.owner_pid} of run {run.id}") from None
    return f"sent SIGINT to process {run.owner_pid} (run {run.name})"


async def promote(store: RunStore, config: AppConfig, run_id: str, force: bool = False) -> tuple[str, bool]:
    """Promote a run through the trainers' promotion gate; returns the reasons and whether it was promoted.

    The gate's refusal (`PromotionRefused`) is an answer, not an error: it comes back as (reasons, False).
    """
    module = await load_module(PROMOTION_MODULE, "promotion")
    try:
        decision = await module.promote(store, config, run_id, force=force)
    except getattr(module, "PromotionRefused", Unavailable) as exc:
        refused = getattr(exc, "decision", None)
        return (describe(refused)[0] if hasattr(refused, "reasons") else str(exc)), False
    return describe(decision)


@dataclass(frozen=True)
class GateView:
    """What the promote dialog shows of a gate decision: the answer, the figures, the one to beat, why.

    Built duck-typed from the trainer's `GateDecision`, so the TUI does not depend on its class.
    """

    promote: bool
    reasons: list[str] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)
    reference: str | None = None
    metric: str | None = None
    forced: bool = False


def gate_view(decision: Any) -> GateView:
    """A GateView of any decision-like object (missing fields are empty)."""
    reasons = [str(r) for r in getattr(decision, "reasons", None) or []]
    figures = getattr(decision, "figures", None)
    return GateView(describe(decision)[1], reasons, dict(figures) if isinstance(figures, Mapping) else {},
                    getattr(decision, "reference", None), getattr(decision, "metric", None),
                    bool(getattr(decision, "forced", False)))


async def decide(store: RunStore, config: AppConfig, run_id: str, force: bool = False) -> GateView:
    """The promotion gate's answer for a run without promoting it (a dry run; it may evaluate the
    serving adapter, so it can take seconds)."""
    module = await load_module(PROMOTION_MODULE, "promotion")
    return gate_view(await module.decide(store, config, run_id, force=force))


async def rollback(store: RunStore, config: AppConfig, kind: str = "reranker") -> tuple[str, bool]:
    """Roll the active adapter back to the previous promotion (or the base); returns what is served now."""
    module = await load_module(PROMOTION_MODULE, "rollback")
    try:
        result = await module.rollback(store, config, kind)
    except getattr(module, "PromotionRefused", Unavailable) as exc:
        return str(exc), False
    if result is None or isinstance(result, str):
        return ("now serving the base model" if result is None else f"now serving run {result}"), True
    return describe(result)


def describe(result: Any) -> tuple[str, bool]:
    """A one-paragraph text for a promotion decision or rollback result, and whether it succeeded.

    Duck-typed on the usual fields (`promoted`/`accepted`/`ok`, `reasons`/`reason`) so the TUI does
    not depend on the trainer's exact class.
    """
    if result is None:
        return "done", True
    ok = True
    for attr in ("promote", "promoted", "accepted", "ok", "success"):
        if hasattr(result, attr):
            ok = bool(getattr(result, attr))
            break
    reasons = getattr(result, "reasons", None)
    if reasons is None:
        reason = getattr(result, "reason", None)
        reasons = [reason] if reason else []
    text = "; ".join(str(r) for r in reasons) if reasons else str(result)
    return text, ok
