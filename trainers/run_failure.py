"""Recording that a run failed, even when the store cannot take the events still buffered (a full disk).

A run must never stay `running` because its failure could not be written: first the normal way
(buffered events, then the state); if that fails, the buffered events are dropped and the failure
alone is recorded; if even that fails, one clear StoreError says so (the run's owner is then gone,
so the next reader marks it interrupted and it can be resumed once there is space).
"""

from __future__ import annotations

from store import LogEvent, StoreError
from store.writer import EventWriter


async def record_failure(writer: EventWriter, error: str) -> None:
    """Mark the writer's run failed with `error`; StoreError if the store cannot record it at all."""
    writer.emit(LogEvent(level="error", message=error))
    try:
        await writer.set_status("failed", error=error)
        return
    except Exception as exc:  # the buffered events did not fit: keep the verdict, drop the detail
        first = exc
    dropped = writer.discard_pending()
    try:
        await writer.store.set_status(writer.run_id, "failed",
                                      error=f"{error} (and {dropped} events could not be recorded: {first})")
    except Exception as exc:
        raise StoreError(f"run {writer.run_id} failed ({error}) and the store could not record it ({exc}); "
                         "once there is space it shows as interrupted and can be resumed") from None
