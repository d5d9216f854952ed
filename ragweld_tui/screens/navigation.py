"""Screens that other screens open: choosing a run and diffing two runs.

Kept apart from `screens.base` (which every screen, these two included, derives from), so no
screen module imports a screen that imports it back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.screen import Screen

from ragweld_tui.screens.diff import DiffScreen
from ragweld_tui.screens.run_picker import RunPickerScreen
from store import RunRecord


def pick_run(screen: Screen[Any], runs: list[RunRecord], prompt: str, then: Callable[[str], None],
             exclude: str | None = None) -> None:
    """Let the user choose one of `runs` (but `exclude`); `then(run_id)` runs unless cancelled."""

    def chosen(run_id: str | None) -> None:
        if run_id:
            then(run_id)

    screen.app.push_screen(RunPickerScreen(runs, prompt, exclude=exclude), chosen)


def show_diff(screen: Screen[Any], a: str, b: str) -> None:
    """Push the diff of run `a` against run `b`."""
    screen.app.push_screen(DiffScreen(a, b))
