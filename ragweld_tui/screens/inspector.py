"""The inspector (pushed on enter): one run's config, dataset, artifacts, manifest, promotion, events.

Every tab reads typed records: the run row, its artifacts, the adapter's manifest file, and the
run's `DatasetEvent` and `PromotionEvent`s; nothing is parsed out of log text. The Config tab is
valid TOML (the facts about the run as comments), so it can be copied into a config file.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Static, TabbedContent, TabPane

from backends.adapters import MANIFEST
from ragweld_tui.format import (ALARM_MARK, backend_cell, cycle, dataset_lines, figure_lines, format_value, human_bytes,
                                run_compute, verdict_head)
from ragweld_tui.messages import EventsArrived, InspectorData, InspectorLoaded, StoreFailed
from ragweld_tui.screens.base import AppScreen
from ragweld_tui.screens.export import ExportScreen
from ragweld_tui.screens.navigation import pick_run, show_diff
from ragweld_tui.toml_text import to_toml
from ragweld_tui.widgets.event_log import LEVELS, EventLog
from ragweld_tui.widgets.key_bar import KeyBar
from ragweld_tui.widgets.nav import NavTable
from ragweld_tui.widgets.status_line import StatusLine
from store import DatasetEvent, EventRecord, PromotionEvent, RunStore, StoreError
from trainers.promotion import ADAPTER_SUBDIR
from trainers.run_loop import CHECKPOINTS

TABS = ("config", "dataset", "artifacts", "manifest", "promotion", "events")
TAIL_BACKLOG = 2000  # events shown when the inspector opens on a long run
TAIL_PAGES = 5  # pages of 1000 events read per poll, so a burst never stalls one tick
# The trainers write the DatasetEvent right after the run starts, so it is among a run's first
# events: a long run's is found without reading the backlog the tail skips.
DATASET_HEAD = 20
MAX_FILE_BYTES = 256 * 1024
MANIFEST_PATH = f"{ADAPTER_SUBDIR}/{MANIFEST}"  # registered by the trainers with the adapter's files


def render_mapping(data: Mapping[str, Any]) -> str:
    """A nested config as TOML (None values left out: TOML has no null)."""
    return to_toml(data) or "(empty)"


def effective_config(config: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """The sections of a stored config that apply to a run of `kind` (`[chat]` is the agent's only)."""
    return {k: v for k, v in config.items() if not (k == "chat" and kind != "agent")}


def comment(text: str) -> str:
    """Lines as TOML comments."""
    return "\n".join(f"# {line}" for line in text.splitlines())


def display_path(path: str) -> str:
    """A path as short as it can be read: relative to the working directory when under it, `~` for home."""
    if not path:
        return "—"
    full = Path(path)
    for base, prefix in ((Path.cwd(), "."), (Path.home(), "~")):
        try:
            return f"{prefix}/{full.relative_to(base)}"
        except ValueError:
            continue
    return path


def checkpoints_on_disk(run_dir: Path) -> tuple[tuple[str, int], ...]:
    """(path relative to the run folder, bytes) of each whole checkpoint kept (older ones are pruned)."""
    root = run_dir / CHECKPOINTS
    try:
        folders = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-"))
    except OSError:
        return ()
    found = []
    for folder in folders:
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        found.append((f"{CHECKPOINTS}/{folder.name}", size))
    return tuple(found)


def utc(ts: float) -> str:
    """An epoch time as `YYYY-MM-DD HH:MM:SSZ`."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def read_json_file(path: Path) -> str | None:
    """A small JSON file pretty-printed (or its text when not JSON); None when unreadable."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return f"({path.name} is larger than {human_bytes(MAX_FILE_BYTES)}; not shown)"
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    try:
        return json.dumps(json.loads(text), indent=2)
    except ValueError:
        return text


def latest_dataset(records: list[EventRecord]) -> DatasetEvent | None:
    """The newest DatasetEvent among `records` (a resumed run writes one per start)."""
    latest = None
    for record in records:
        if isinstance(record.event, DatasetEvent):
            latest = record.event
    return latest


async def read_inspector(store: RunStore, run_id: str) -> InspectorData:
    """Everything the inspector shows except the event log; the manifest file is read in a thread."""
    run = await store.get_run(run_id)
    artifacts = await store.artifacts(run_id)
    promotions = [p for p in await store.promotions(run.kind) if run_id in (p.run_id, p.replaced_run_id)]
    metrics = await store.latest_metrics(run_id)
    manifest = None
    if any(a.path == MANIFEST_PATH for a in artifacts):
        manifest = await asyncio.to_thread(read_json_file, store.artifact_path(run_id, MANIFEST_PATH))
    dataset = latest_dataset(await store.events_since(run_id, 0, limit=DATASET_HEAD))
    run_dir = store.artifact_path(run_id, CHECKPOINTS).parent
    checkpoints = await asyncio.to_thread(checkpoints_on_disk, run_dir)
    return InspectorData(run, artifacts, promotions, manifest, dataset, metrics, str(run_dir), checkpoints)


class InspectorScreen(AppScreen[None]):
    """Tabs about one run; the event log tails the store while the screen is visible."""

    HELP = ("[ and ] switch tabs; l sets the event log's minimum level (metrics and telemetry are debug level); "
            "e exports a completed run's adapter (PEFT, mlx-lm or merged).")

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("l", "level", "Log level"),
        Binding("right_square_bracket", "tab(1)", "Next tab"),
        Binding("left_square_bracket", "tab(-1)", "Prev tab"),
        Binding("c", "compare", "Diff"),
        Binding("e", "export", "Export"),
    ]

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id
        self.data: InspectorData | None = None
        self._seq: int | None = None  # last event seq read (worker-owned cursor)
        self.dataset: DatasetEvent | None = None  # the newest DatasetEvent in the tailed events
        self.verdict: EventRecord | None = None  # the latest PromotionEvent (the gate's typed verdict)
        self.attempts = 0  # promotion verdicts seen in the tailed events
        self.failed = False

    def compose(self) -> ComposeResult:
        yield StatusLine(f"Run {self.run_id}", id="inspector-title", classes="view-title")
        with TabbedContent(initial="config", id="tabs"):
            with TabPane("Config", id="config"):
                yield VerticalScroll(Static("loading…", id="config-text", markup=False))
            with TabPane("Dataset", id="dataset"):
                yield VerticalScroll(Static("loading…", id="dataset-text", markup=False))
            with TabPane("Artifacts", id="artifacts"):
                yield NavTable[str](id="artifacts-table", cursor_type="row")
            with TabPane("Manifest", id="manifest"):
                yield VerticalScroll(Static("loading…", id="manifest-text", markup=False))
            with TabPane("Promotion", id="promotion"):
                yield VerticalScroll(Static("loading…", id="promotion-text", markup=False))
            with TabPane("Events", id="events"):
                yield StatusLine("", id="events-filter")
                yield EventLog(id="event-log")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one("#artifacts-table", DataTable).add_columns("Kind", "Path", "Size", "SHA-256")
        self._show_filter()
        self.set_interval(self.ragweld_app.poll_interval_s, self.request_refresh)
        self.request_refresh()

    def request_refresh(self) -> None:
        """Re-read the run and tail its events (only while this screen is shown)."""
        if not self.failed and (self.is_current or self.data is None):
            self._load()

    @work(exclusive=True, group="inspector-poll")
    async def _load(self) -> None:
        """Worker: read the run, then the events after the last seq seen; post both."""
        try:
            store = await self.ragweld_app.get_store()
            self.post_message(InspectorLoaded(await read_inspector(store, self.run_id)))
            skipped = 0
            if self._seq is None:
                last = await store.last_seq(self.run_id)
                skipped = max(0, last - TAIL_BACKLOG)
                self._seq = skipped
            for _ in range(TAIL_PAGES):
                records = await store.events_since(self.run_id, self._seq, limit=1000)
                if not records:
                    break
                self._seq = records[-1].seq
                self.post_message(EventsArrived(self.run_id, records, skipped))
                skipped = 0
                if len(records) < 1000:
                    break
        except StoreError as exc:
            self.post_message(StoreFailed(f"Cannot read run {self.run_id}: {exc}"))

    @on(StoreFailed)
    def _failed(self, message: StoreFailed) -> None:
        if not self.failed:
            self.failed = True
            self.notify(message.error, severity="error")

    @on(EventsArrived)
    def _events(self, message: EventsArrived) -> None:
        log = self.query_one(EventLog)
        if log.origin is None and self.data is not None:
            log.origin = self.data.run.created_at
        log.add_records(message.records, message.skipped)
        found = False
        for record in message.records:
            event = record.event
            if isinstance(event, DatasetEvent):
                self.dataset, found = event, True
            elif isinstance(event, PromotionEvent):
                self.verdict, found = record, True
                self.attempts += 1
        if found and self.data is not None:
            self._show_dataset_and_promotion(self.data)

    @on(InspectorLoaded)
    def _loaded(self, message: InspectorLoaded) -> None:
        if message.data == self.data:
            return
        self.data = data = message.data
        run = data.run
        log = self.query_one(EventLog)
        log.origin = run.created_at
        self.query_one("#inspector-title", StatusLine).show(
            f"{run.name} · {run.id} · {run.kind} · {run.status}" + (" · ★ promoted" if run.promoted else "")
            + (f" · {ALARM_MARK} alarm" if run.alarm else ""))
        times = [f"created {utc(run.created_at)}"] + ([f"started {utc(run.started_at)}"] if run.started_at else []) + (
            [f"finished {utc(run.finished_at)}"] if run.finished_at else [])
        header = (f"backend {backend_cell(run)} · precision {run_compute(run)} · base {run.base_model or '—'}\n"
                  f"{' · '.join(times)}")
        header += f"\nrun folder: {display_path(data.run_dir)}"
        if run.error:
            header += f"\nerror: {run.error}"
        if run.alarm:
            header += f"\n{ALARM_MARK} alarm: {run.alarm}"
        config = render_mapping(effective_config(run.config, run.kind))
        self.query_one("#config-text", Static).update(f"{comment(header)}\n\n{config}")
        table = self.query_one("#artifacts-table", DataTable)
        table.clear()
        for a in data.artifacts:
            table.add_row(a.kind, a.path, human_bytes(a.bytes), a.sha256[:16] + "…", key=a.path)
        for path, size in data.checkpoints:
            table.add_row("checkpoint", path, human_bytes(size), "—", key=path)
        manifest = data.manifest or f"(no {MANIFEST_PATH} among the run's artifacts)"
        self.query_one("#manifest-text", Static).update(manifest)
        self._show_dataset_and_promotion(data)

    def _show_dataset_and_promotion(self, data: InspectorData) -> None:
        """The Dataset and Promotion tabs, from the run's typed events and its stored config."""
        self.query_one("#dataset-text", Static).update(self._dataset_text(data))
        self.query_one("#promotion-text", Static).update(self._promotion_text(data))

    def _dataset_text(self, data: InspectorData) -> str:
        """The run's DatasetEvent (the newest: a resumed run records one per start), then its `[data]`."""
        run = data.run
        event = self.dataset or data.dataset
        if event is not None:
            lines = dataset_lines(event, "conversations" if run.kind == "agent" else "queries")
        else:
            lines = [f"fingerprint {run.dataset_fingerprint or '—'}", "(the run recorded no dataset event)"]
        section = run.config.get("data")
        return "\n".join(lines) + "\n\n" + render_mapping({"data": section if isinstance(section, dict) else {}})

    def _promotion_text(self, data: InspectorData) -> str:
        run = data.run
        lines = [f"{run.primary_metric or 'metric'} ({run.goal}): baseline {format_value(run.baseline)} → "
                 f"best {format_value(run.best)}", f"promoted: {'yes (active)' if run.promoted else 'no'}"]
        for p in data.promotions:
            verb = "promoted" if p.run_id == run.id else f"replaced by {p.run_id}"
            lines.append(f"{utc(p.promoted_at)} {verb}: {p.reason}")
        lines.append("")
        lines.extend(self._verdict_lines(data))
        return "\n".join(lines)

    def _verdict_lines(self, data: InspectorData) -> list[str]:
        """The latest PromotionEvent: verdict, every figure compared (the reference marked), the reasons."""
        if self.verdict is None or not isinstance(event := self.verdict.event, PromotionEvent):
            return ["(no promotion verdict recorded)"]
        earlier = f" (latest of {self.attempts} verdicts)" if self.attempts > 1 else ""
        lines = [f"gate verdict {utc(self.verdict.ts)}: {verdict_head(event.promoted, event.forced)}{earlier}"]
        if event.figures:
            metric = event.metric or data.run.primary_metric or "metric"
            lines += ["", f"{metric} ({data.run.goal}) on the run's dev candidates:"]
            lines += figure_lines(event.figures, event.reference)
        if event.reasons:
            lines += ["", "reasons:"] + [f"  - {reason}" for reason in event.reasons]
        return lines + [""]

    def _show_filter(self) -> None:
        level = self.query_one(EventLog).min_level
        self.query_one("#events-filter", StatusLine).show(f"level ≥ {level}  (l cycles: {' · '.join(LEVELS)})")

    def action_level(self) -> None:
        """Cycle the event log's minimum level and show the Events tab."""
        log = self.query_one(EventLog)
        log.set_level(cycle(LEVELS, log.min_level))
        self._show_filter()
        self.query_one(TabbedContent).active = "events"

    def action_tab(self, step: int) -> None:
        """Move to the next/previous tab."""
        tabs = self.query_one(TabbedContent)
        tabs.active = TABS[(TABS.index(tabs.active) + step) % len(TABS)]

    async def action_compare(self) -> None:
        """Pick another run and diff it against this one."""
        try:
            runs = await (await self.ragweld_app.get_store()).list_runs()
        except StoreError as exc:
            self.notify(str(exc), severity="error")
            return
        pick_run(self, runs, "Diff with…", lambda other: show_diff(self, self.run_id, other), exclude=self.run_id)

    def action_export(self) -> None:
        """Open the export dialog for a completed run's adapter."""
        run = self.data.run if self.data is not None else None
        if run is None or run.status != "completed":
            state = run.status if run is not None else "not loaded yet"
            self.notify(f"Run {self.run_id} is {state}; only completed runs can be exported.", severity="warning")
            return
        self.app.push_screen(ExportScreen(run))
