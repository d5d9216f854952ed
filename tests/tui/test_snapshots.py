"""Snapshot tests: every screen at 80×24 and 160×48 on the fixed store, compared as plain text.

Set RAGWELD_UPDATE_SNAPSHOTS=1 to rewrite the stored screens after an intended change (and review
the diff). The fixture has fixed ids and times and the app a frozen clock, so nothing live leaks in.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.tui.conftest import fixed_app, screen_text, settle

SNAPSHOTS = Path(__file__).parent / "snapshots"
SIZES = [(80, 24), (160, 48)]
# Keys from the runs list (cursor on the newest run) to each screen; run A is the last row.
FLOWS: dict[str, list[str]] = {
    "runs": [],
    "runs-alarm": ["down"],
    "help": ["question_mark"],
    "new-run": ["n"],
    "inspector": ["down", "down", "down", "enter"],
    "inspector-dataset": ["down", "down", "down", "enter", "right_square_bracket"],
    "inspector-events": ["down", "down", "down", "enter", "left_square_bracket"],
    "inspector-promotion": ["down", "down", "down", "enter", "left_square_bracket", "left_square_bracket"],
    "diff": ["down", "down", "down", "space", "up", "c"],
    "metrics": ["down", "down", "down", "2"],
    "metrics-alarm": ["down", "2"],
    "scatter": ["down", "down", "down", "3"],
    "prompt": ["down", "down", "down", "4"],
}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", list(FLOWS))
async def test_screen_snapshot(name: str, size: tuple[int, int], fixture_db: Path, app_config, monkeypatch) -> None:
    monkeypatch.chdir(fixture_db.parent)  # paths on screen are shown relative to the working directory
    app = fixed_app(fixture_db, app_config)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        for key in FLOWS[name]:
            await pilot.press(key)
            await settle(pilot)
        text = screen_text(app) + "\n"
    path = SNAPSHOTS / f"{name}-{size[0]}x{size[1]}.txt"
    if os.environ.get("RAGWELD_UPDATE_SNAPSHOTS") == "1" or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        if os.environ.get("RAGWELD_UPDATE_SNAPSHOTS") != "1":
            pytest.fail(f"new snapshot written to {path}; review it and run again")
    assert text == path.read_text(encoding="utf-8"), f"{name} at {size} differs from {path}"
