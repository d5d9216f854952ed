"""The runs table: one row per run, rebuilt from store reads while keeping the cursor on its run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.text import Text

from ragweld_tui.format import (ALARM_MARK, SERVING_MARK, backend_cell, eta_cell, format_value, max_steps_of, metric_cell,
                                progress_cell, short_model, status_cell)
from ragweld_tui.widgets.nav import NavTable
from store import RunRecord
from store.reads import RunProgress

STATUS_STYLE = {"running": "bold green", "completed": "", "failed": "red", "cancelled": "yellow",
                "interrupted": "magenta", "queued": "dim"}
# Narrow (80 columns): the kind, base and baseline → best are in the detail line under the table.
NARROW_COLUMNS = ("★", "Name", "ID", "Status", "Step", "ETA", "Latest")
WIDE_COLUMNS = ("★", "Name", "ID", "Kind", "Backend", "Base model", "Status", "Step", "ETA", "Latest",
                "Primary metric")


def run_cells(run: RunRecord, now: float, marked: bool, wide: bool, served: bool = False,
              progress: RunProgress | None = None) -> tuple[Text | str, ...]:
    """The cells of one run: progress (step/total, %), ETA while running and the latest primary metric;
    `wide` adds kind, backend, full id, base model and baseline → best; an alarmed run's status gets
    ⚠, the adapter a live HTTP server serves gets ●."""
    mark = Text("★", style="bold yellow") if run.promoted else Text("•", style="bold cyan") if marked else ""
    if marked and run.promoted:
        mark = Text("★", style="bold cyan")
    status = Text(status_cell(run, now), style=STATUS_STYLE.get(run.status, ""))
    if run.alarm:  # training looked wrong (collapse, below baseline, divergence): mark it beside the status
        status = Text.assemble((ALARM_MARK + " ", "bold yellow"), status)
    if served:
        status = Text.assemble((SERVING_MARK + " ", "bold green"), status)
    step, latest, times = progress if progress is not None else (None, None, ())
    total = max_steps_of(run.config)
    done = (progress_cell(step, total), eta_cell(run, step, total, times), format_value(latest, 3))
    if wide:
        return (mark, run.name[:24], run.id, run.kind, backend_cell(run), short_model(run.base_model, 22), status,
                *done, metric_cell(run))
    return (mark, run.name[:16], run.id[-8:], status, *done)


class RunsTable(NavTable[Text | str]):
    """A row-cursor DataTable of runs keyed by run id."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.wide: bool | None = None
        self._shown: list[tuple[str, tuple[str, ...]]] = []

    @property
    def selected_id(self) -> str | None:
        """The run id under the cursor."""
        if self.row_count == 0:
            return None
        try:
            return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)
        except Exception:  # cursor out of range while rows change
            return None

    def show(self, runs: Sequence[RunRecord], now: float, marked: set[str], wide: bool,
             served: frozenset[str] = frozenset(), progress: Mapping[str, RunProgress] | None = None) -> None:
        """Replace the rows (skipped when nothing visible changed), keeping the cursor's run; `served`
        are the runs whose adapter a live server serves, `progress` each run's step and latest metric."""
        progress = progress or {}
        rows = [(r.id, run_cells(r, now, r.id in marked, wide, r.id in served, progress.get(r.id))) for r in runs]
        plain = [(rid, tuple(str(c) for c in cells)) for rid, cells in rows]
        if wide == self.wide and plain == self._shown:
            return
        keep = self.selected_id
        if wide != self.wide:
            self.clear(columns=True)
            self.add_columns(*(WIDE_COLUMNS if wide else NARROW_COLUMNS))
            self.wide = wide
        else:
            self.clear()
        for rid, cells in rows:
            self.add_row(*cells, key=rid)
        self._shown = plain
        if keep is not None:
            for index, (rid, _) in enumerate(rows):
                if rid == keep:
                    self.move_cursor(row=index, animate=False)
                    break
