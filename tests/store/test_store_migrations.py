"""Migrations: an old store upgrades in place with its data; a newer store is refused."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pytest

from store import LogEvent, MetricsEvent, NotAStoreError, RunStore, SchemaTooNewError
from store.schema import MIGRATIONS

FIXTURE = Path(__file__).with_name("fixtures") / "store_v1.sql"
RUN = "r20240101-000000-0000beef"


def _load_fixture(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.executescript(FIXTURE.read_text())
    conn.close()


async def test_v1_store_upgrades_with_its_data(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite"
    _load_fixture(db)
    async with await RunStore.open(db) as store:
        run = await store.get_run(RUN)
        assert (run.name, run.status, run.best, run.promoted, run.owner_pid) == (
            "v1 run",
            "completed",
            0.625,
            True,
            None,
        )
        latest = await store.latest_metrics(RUN)
        assert latest["loss"] == 0.5 and math.isinf(latest["lr"]) and latest["eval/ndcg@10"] == 0.625
        assert latest["eval/loss"] == -math.inf
        points = await store.series(RUN, "loss", 500)
        assert [p.seq for p in points] == [2, 3, 4, 6]
        assert math.isnan(points[1].value)
        assert [p.mean for p in points] == [2.0, None, 1.0, 0.5]  # running sums skip the NaN
        events = await store.events_since(RUN, 6)
        assert isinstance(events[0].event, LogEvent) and "DROP TABLE" in events[0].event.message
        assert [p.run_id for p in await store.promotions()] == [RUN]
        assert (await store.artifacts(RUN))[0].bytes == 1234
        # New events continue the old sequence and the old running sums.
        assert await store.append_events(RUN, [(MetricsEvent(values={"loss": 1.5}), 4)]) == 9
        points = await store.series(RUN, "loss", 500)
        assert (points[-1].seq, points[-1].mean, points[-1].count) == (9, 1.5, 1)
    with sqlite3.connect(db) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM store_migrations ORDER BY id")]
        assert names == [m.name for m in MIGRATIONS]
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()


async def test_upgrade_is_not_repeated(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite"
    _load_fixture(db)
    for _ in range(2):
        async with await RunStore.open(db):
            pass
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM metric_points").fetchone() == (9,)
    conn.close()


async def test_newer_store_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "new.sqlite"
    async with await RunStore.open(db):
        pass
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO store_migrations (name, applied_at) VALUES ('0099_from_the_future', 0)")
    conn.close()
    with pytest.raises(SchemaTooNewError, match="newer ragweld-tui") as info:
        await RunStore.open(db)
    assert "0099_from_the_future" in str(info.value) and "\n" not in str(info.value)


async def test_foreign_sqlite_file_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "other.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    conn.close()
    with pytest.raises(NotAStoreError, match="not a ragweld-tui store"):
        await RunStore.open(db)
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(NotAStoreError, match="not a SQLite database"):
        await RunStore.open(garbage)
