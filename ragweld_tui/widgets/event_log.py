"""The run event log: a scrollable, level-filtered view of a run's events with a bounded buffer.

Long messages wrap (a line cut at the pane's edge could only be read by focusing the log and
scrolling sideways), and a filter that hides everything says so instead of showing a blank pane.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable

from rich.table import Table
from rich.text import Text

from ragweld_tui.format import ALARM_MARK, figures_inline, format_elapsed, format_value, verdict_head
from ragweld_tui.widgets.nav import NavLog
from store import (
    AlarmEvent,
    CheckpointEvent,
    DatasetEvent,
    EvalEvent,
    EventRecord,
    LogEvent,
    MetricsEvent,
    PromotionEvent,
    StateEvent,
    TelemetryEvent,
)

LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error")
LEVEL_STYLE = {"debug": "dim", "info": "", "warning": "yellow", "error": "bold red"}
# EvalEvent.timing keys, with how the log labels them (rerank speed, not ranking quality).
TIMING = (("latency_p50_ms", "p50", "ms"), ("latency_p95_ms", "p95", "ms"), ("pairs_per_s", "", " pairs/s"))


def describe_event(record: EventRecord) -> tuple[str, str]:
    """The level and one-line text of an event (metrics and telemetry are debug-level chatter)."""
    event = record.event
    if isinstance(event, LogEvent):
        return event.level, event.message
    if isinstance(event, MetricsEvent):
        return "debug", " ".join(f"{k}={format_value(v)}" for k, v in event.values.items())
    if isinstance(event, TelemetryEvent):
        return "debug", f"proj=({event.proj_x:.3g}, {event.proj_y:.3g}) loss={format_value(event.loss)}"
    if isinstance(event, EvalEvent):
        return "info", describe_eval(event)
    if isinstance(event, AlarmEvent):
        return "warning", (f"{ALARM_MARK} {event.message} ({event.kind.replace('_', ' ')}: "
                           f"{format_value(event.value)}, limit {format_value(event.threshold)})")
    if isinstance(event, PromotionEvent):
        parts = [verdict_head(event.promoted, event.forced) + (f" on {event.metric}" if event.metric else "")]
        if event.figures:
            parts.append(figures_inline(event.figures, event.reference))
        parts.extend(event.reasons)
        return ("info" if event.promoted else "warning"), " — ".join(parts)
    if isinstance(event, StateEvent):
        level = {"failed": "error", "cancelled": "warning", "interrupted": "warning"}.get(event.status, "info")
        return level, f"→ {event.status}" + (f": {event.reason}" if event.reason else "")
    if isinstance(event, CheckpointEvent):
        return "info", f"checkpoint {event.path} at step {event.step}"
    if isinstance(event, DatasetEvent):
        return "info", f"{event.summary} ({event.train} train / {event.dev} dev)"
    return "info", str(event)  # pragma: no cover


def describe_eval(event: EvalEvent) -> str:
    """`dev: mrr@10=0.47 (best) · p50 12ms p95 20ms 850 pairs/s`; the serving split names its run."""
    split = f"{event.split} {event.adapter_run_id}" if event.adapter_run_id else event.split
    text = f"{split}: " + " ".join(f"{k}={format_value(v)}" for k, v in event.metrics.items())
    text += " (best)" if event.is_best else ""
    timing = event.timing
    speed = [f"{label} {format_value(timing[key], 3)}{unit}".strip() for key, label, unit in TIMING if key in timing]
    return text + (" · " + " ".join(speed) if speed else "")


class EventLog(NavLog):
    """Keeps the last `max_records` events of one run and shows those at or above `min_level`."""

    def __init__(self, *, max_records: int = 5000, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(max_lines=max_records, wrap=True, markup=False, auto_scroll=True, id=id, classes=classes)
        self.records: collections.deque[EventRecord] = collections.deque(maxlen=max_records)
        self.min_level = "info"
        self.origin: float | None = None
        self.skipped = 0
        self.shown = 0  # events passing the filter now on screen
        self.empty_note = False  # the "nothing at this level" line is on screen

    def _line(self, record: EventRecord) -> Table | None:
        """One event: its columns, then the message, wrapped under itself (a hanging indent)."""
        level, text = describe_event(record)
        if LEVELS.index(level) < LEVELS.index(self.min_level):
            return None
        offset = "" if self.origin is None else f"+{format_elapsed(record.ts - self.origin)}"
        step = "" if record.step is None else str(record.step)
        head = Text(f"{record.seq:>6} {offset:>8} {step:>6} {record.event.type:<10}", style="dim")
        line = Table.grid(padding=(0, 1))
        line.add_column(no_wrap=True)
        line.add_column(overflow="fold")
        line.add_row(head, Text(text, style=LEVEL_STYLE[level]))
        return line

    def add_records(self, records: Iterable[EventRecord], skipped: int = 0) -> None:
        """Append new events (in seq order) and show the ones passing the filter."""
        if skipped and not self.records:
            self.skipped = skipped
        new = list(records)
        self.records.extend(new)
        if self.empty_note or not self.shown:  # the placeholder goes once something passes the filter
            self.set_level(self.min_level)
            return
        for record in new:
            line = self._line(record)
            if line is not None:
                self.write(line, expand=True)
                self.shown += 1

    def set_level(self, level: str) -> None:
        """Show only events at or above `level`; re-renders the buffer."""
        self.min_level = level
        self.clear()
        self.shown, self.empty_note = 0, False
        if self.skipped:
            self.write(Text(f"… {self.skipped} earlier events not shown", style="dim italic"))
        for record in self.records:
            line = self._line(record)
            if line is not None:
                self.write(line, expand=True)
                self.shown += 1
        if not self.shown:
            self.empty_note = True
            what = f"no events at level {level} or above" if self.records else "no events yet"
            self.write(Text(f"({what}; l changes the level)" if self.records else f"({what})", style="dim italic"))
