"""Bridges from the TUI to the trainers: cancel, promote and roll back runs (training itself runs in
its own process, started by `ragweld_tui.launch`).

The trainers' public, typed functions are called directly. `trainers.promotion` imports no ML
framework at module level (torch or mlx load inside its threads), so importing it here keeps the UI
free of torch, mlx and transformers.
The lower layers' input errors (a bad data file, a missing model) become `UserError`s: one line.
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

from ragweld_tui.commands.common import user_errors
from ragweld_tui.config import AppConfig, parse_config
from ragweld_tui.errors import UserError
from store import RunRecord, RunStore
from store.events import RunKind
from trainers import promotion
from trainers.promotion import GateDecision, PromotionRefused


def config_for_run(run: RunRecord, fallback: AppConfig) -> AppConfig:
    """The run's own stored config (to resume it), or the current config when it has none usable."""
    if not run.config:
        return fallback
    try:
        return parse_config(run.config, f"run {run.id}")
    except UserError:
        return fallback


def cancel_foreign(run: RunRecord) -> str:
    """Pause a run: SIGINT to its process on this host, which stops after the current step, keeping a
    checkpoint of it (as Ctrl-C does headless); returns what happened."""
    if run.owner_pid is None or run.owner_host != socket.gethostname():
        raise UserError(f"run {run.id} trains on {run.owner_host or 'an unknown host'}; cancel it there")
    if run.owner_pid == os.getpid():
        raise UserError(f"run {run.id} belongs to this process; it cannot be signalled")
    try:
        os.kill(run.owner_pid, signal.SIGINT)
    except ProcessLookupError:
        raise UserError(f"process {run.owner_pid} of run {run.id} is gone") from None
    except PermissionError:
        raise UserError(f"not allowed to signal process {run.owner_pid} of run {run.id}") from None
    return f"sent SIGINT to process {run.owner_pid} (run {run.name})"


async def decide(store: RunStore, config: AppConfig, run_id: str, force: bool = False) -> GateDecision:
    """The promotion gate's answer for a run without promoting it (a dry run; it may evaluate the
    serving adapter, in threads, so it can take seconds)."""
    with user_errors():
        return await promotion.decide(store, config, run_id, force=force)


async def promote(store: RunStore, config: AppConfig, run_id: str, force: bool = False) -> GateDecision:
    """Promote a run through the trainers' gate; the decision says whether it was promoted and why.

    The gate's refusal (`PromotionRefused`) is an answer, not an error: its decision is returned.
    The trainers hash the adapter files and swap the active folder in threads.
    """
    with user_errors():
        try:
            return await promotion.promote(store, config, run_id, force=force)
        except PromotionRefused as exc:
            return exc.decision


async def rollback(store: RunStore, config: AppConfig, kind: RunKind = "reranker") -> tuple[str, bool]:
    """Roll the active adapter back to the previous promotion (or the base); returns what is served
    now, or why nothing changed, and whether it rolled back."""
    try:
        active = await promotion.rollback(store, config, kind)
    except PromotionRefused as exc:
        return str(exc), False
    return ("now serving the base model" if active is None else f"now serving run {active}"), True


async def reconcile_active(store: RunStore, config: AppConfig) -> list[str]:
    """Repair the lineage where a promotion or rollback was cut short (the active link is the truth)."""
    return await promotion.reconcile_active(store, config)


def export_adapter(adapter: Path, config: AppConfig, fmt: str, out: Path, force: bool = False) -> str:
    """Export a run's adapter (blocking: call it in a thread); returns the parity line, or raises
    UserError with one line (a refusal, or a failed parity check: nothing is written then)."""
    from backends.export import FORMATS, ParityError
    from backends.export import export_adapter as run_export
    from backends.settings import scorer_settings

    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}")
    settings = scorer_settings(config.model, config.prompt, config.scoring, config.rerank_model())
    with user_errors():
        try:
            result = run_export(adapter, fmt, out, settings, force=force)
        except ParityError as exc:
            raise UserError(str(exc), exit_code=1) from None
        except ValueError as exc:  # ExportError, an unavailable backend
            raise UserError(str(exc)) from None
    return f"exported {fmt} to {result.out}: {result.parity.summary()}"
