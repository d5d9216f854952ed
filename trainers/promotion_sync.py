"""Keeping the active link and the store's lineage in agreement across processes and crashes.

Promotion is two steps in two places: swap the active symlink, then commit the lineage row. One
cross-process lock (flock on the folder of the active path) serialises promote and rollback, an
intent file is written before the swap and removed after the commit, and every promote or rollback
first reconciles: the link is what is being served, so it is the truth, and the lineage is repaired
to match it (logged on the run). Temp folders and links of killed promotions are removed then too.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

from store import LogEvent, RunStore, StoreError
from store.ids import validate_run_id
from trainers.active_adapter import VERSIONS
from trainers.durable import write_durably


def _intent_file(active: Path) -> Path:
    return active.parent / f".{active.name}.intent.json"


@contextlib.asynccontextmanager
async def promotion_lock(active: Path) -> AsyncIterator[None]:
    """Hold the active path's promotion lock (waits for another promote or rollback to finish).

    The lock is an flock on the folder holding the active link, so taking it creates no file.
    """
    active.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(active.parent, os.O_RDONLY)
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock (also when the process dies)


def write_intent(active: Path, run_id: str | None, replaced: str | None, reason: str) -> None:
    """Before the swap: what the lineage will say once the swap is committed."""
    text = json.dumps({"run_id": run_id, "replaced_run_id": replaced, "reason": reason})
    write_durably(_intent_file(active), lambda tmp: tmp.write_text(text))


def clear_intent(active: Path) -> None:
    """After the commit: the promotion is complete."""
    _intent_file(active).unlink(missing_ok=True)


def served_run(active: Path) -> tuple[bool, str | None]:
    """(known, run id) the active link serves: (True, None) when there is no link (the plain base),
    (False, None) when the path is something reconcile cannot read (a folder placed by hand)."""
    if not active.is_symlink():
        return (not active.exists()), None
    name = Path(os.readlink(active)).name
    try:
        return True, validate_run_id(name)
    except (StoreError, ValueError):
        return False, None


def cut_short(active: Path) -> bool:
    """Whether a promotion or rollback on this active path was cut short: its intent is still
    recorded, or it left a temp link or a temp version folder behind. Reads only; creates nothing."""
    if _intent_file(active).exists() or any(active.parent.glob(f".{active.name}.link-*")):
        return True
    versions = active.parent / VERSIONS / active.name
    return versions.is_dir() and any(versions.glob(".*"))


def clean_leftovers(active: Path) -> list[str]:
    """Remove temp version folders and temp links killed promotions left (call under the lock)."""
    removed = []
    for link in active.parent.glob(f".{active.name}.link-*"):
        link.unlink(missing_ok=True)
        removed.append(link.name)
    versions = active.parent / VERSIONS / active.name
    if versions.is_dir():
        for tmp in versions.glob(".*"):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp.name)
    tmp = active.parent / f".{_intent_file(active).name}.tmp"
    tmp.unlink(missing_ok=True)
    return removed


async def reconcile(store: RunStore, active: Path, kind: str) -> str | None:
    """Make the lineage agree with the active link (call under the lock); returns what was repaired."""
    await asyncio.to_thread(clean_leftovers, active)
    intent_path = _intent_file(active)
    intent = {}
    if intent_path.is_file():
        with contextlib.suppress(OSError, ValueError):
            intent = json.loads(intent_path.read_text())
    known, served = served_run(active)
    recorded = await store.active_run(kind)
    note = None
    if known and served != recorded:
        reason = intent.get("reason") if intent.get("run_id") == served else None
        note = (f"reconciled the {kind} lineage with the active link: it serves "
                f"{served or 'the base model'}, the store said {recorded or 'the base model'} "
                "(a promotion or rollback was cut short)")
        if served is None:
            await store.clear_promotion(kind, recorded, note)
        else:
            try:
                await store.record_promotion(served, intent.get("replaced_run_id", recorded) if reason else recorded,
                                             f"{reason}; {note}" if reason else note)
            except StoreError as exc:  # the served run is gone from the store or not completed
                note = f"the active link serves run {served}, which the store cannot make active: {exc}"
        with contextlib.suppress(StoreError):
            for run_id in sorted({r for r in (served, recorded) if r is not None}):
                await store.append_events(run_id, [LogEvent(level="warning", message=note)])
    intent_path.unlink(missing_ok=True)
    return note
