"""`ragweld-tui runs`: list, show and export through the real CLI entry point."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ragweld_tui.cli import main
from store import EvalEvent, LogEvent, MetricsEvent, RunStore

NAME = 'it\'s "quoted"; DROP TABLE runs;--\x1b[2J'


def _seed(db: Path) -> tuple[str, str]:
    """A completed promoted reranker with metrics (NaN/Inf included) and a queued agent."""

    async def build() -> tuple[str, str]:
        async with await RunStore.open(db) as store:
            done = await store.create_run("reranker", NAME, backend="mlx", primary_metric="ndcg@10")
            await store.set_status(done, "running")
            await store.append_events(
                done,
                [(MetricsEvent(values={"loss": float(10 - i), "grad": float("nan")}), i) for i in range(10)]
                + [
                    (EvalEvent(metrics={"ndcg@10": float("inf")}), 10),
                    (LogEvent(message="line,with,commas\nand newline"), 10),
                ],
            )
            await store.set_best(done, float("nan"))
            await store.set_status(done, "completed")
            await store.record_promotion(done, None, "better")
            queued = await store.create_run("agent", "chat")
            return done, queued

    return asyncio.run(build())


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_show_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "cli.sqlite"
    done, queued = _seed(db)
    code, out, _ = _cli(capsys, "--db", str(db), "runs")
    assert code == 0 and done in out and queued in out and "DROP TABLE runs" in out
    assert "\x1b" not in out  # a hostile name cannot drive the terminal
    code, out, _ = _cli(capsys, "--db", str(db), "runs", "--json")
    listed = json.loads(out)
    assert [r["id"] for r in listed] == [queued, done]
    assert listed[1]["name"] == NAME and listed[1]["best"] == "NaN" and listed[1]["promoted"] is True

    code, out, _ = _cli(capsys, "--db", str(db), "runs", "show", done)
    assert code == 0 and "completed" in out and "loss" in out and "eval/ndcg@10" in out and "inf" in out
    assert "\x1b" not in out and "\\x1b[2J" in out
    code, out, _ = _cli(capsys, "--db", str(db), "runs", "show", done, "--json")
    shown = json.loads(out)
    assert shown["latest_metrics"] == {"eval/ndcg@10": "Infinity", "grad": "NaN", "loss": 1.0}
    assert shown["run"]["id"] == done and shown["last_seq"] == 14

    code, out, _ = _cli(capsys, "--db", str(db), "runs", "export", done, "--jsonl")
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["seq"] for line in lines] == list(range(1, 15))
    assert lines[1]["payload"] == {"type": "metrics", "values": {"loss": 10.0, "grad": "NaN"}} and lines[1]["step"] == 0
    target = tmp_path / "events.csv"
    code, out, _ = _cli(capsys, "--db", str(db), "runs", "export", done, "--csv", "--output", str(target))
    assert code == 0 and out == ""
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [int(r["seq"]) for r in rows] == list(range(1, 15))
    assert json.loads(rows[12]["payload"])["message"] == "line,with,commas\nand newline"


def test_user_mistakes_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "cli.sqlite"
    code, out, _ = _cli(capsys, "--db", str(db), "runs")
    assert code == 0 and "no runs" in out and not db.exists()  # listing never creates a store
    assert _cli(capsys, "--db", str(db), "runs", "--json")[1].strip() == "[]"
    _seed(db)
    for argv, message in (
        (("runs", "show", "r20000101-000000-00000000"), "no run r20000101-000000-00000000"),
        (("runs", "show", "../../etc/passwd"), "invalid run id"),
        (("runs", "export", "'; DROP TABLE runs;--", "--csv"), "invalid run id"),
    ):
        code, out, err = _cli(capsys, "--db", str(db), *argv)
        assert code == 2 and out == "" and err.startswith("error: ") and message in err and err.count("\n") == 1
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO store_migrations (name, applied_at) VALUES ('0042_future', 0)")
    conn.close()
    code, _, err = _cli(capsys, "--db", str(db), "runs")
    assert code == 2 and "newer ragweld-tui" in err and err.count("\n") == 1


def test_store_path_comes_from_the_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "configured.sqlite"
    done, _ = _seed(db)
    config = tmp_path / "config.toml"
    config.write_text('[store]\npath = "configured.sqlite"\n')
    code, out, _ = _cli(capsys, "--config", str(config), "runs", "--json")
    assert code == 0 and done in out


def test_cli_subprocess(tmp_path: Path) -> None:
    db = tmp_path / "sub.sqlite"
    done, _ = _seed(db)
    ok = subprocess.run(
        [sys.executable, "-m", "ragweld_tui.cli", "--db", str(db), "runs", "show", done, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0 and json.loads(ok.stdout)["run"]["status"] == "completed"
    bad = subprocess.run(
        [sys.executable, "-m", "ragweld_tui.cli", "--db", str(db), "runs", "show", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: invalid run id") and "Traceback" not in bad.stderr


def test_servers_are_listed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "cli.sqlite"
    assert _cli(capsys, "--db", str(db), "runs", "servers")[1] == "no servers\n" and not db.exists()
    done, _ = _seed(db)

    async def serve() -> tuple[str, str]:
        async with await RunStore.open(db) as store:
            live = await store.register_server("127.0.0.1:8787\x1b[2J", "Qwen/Qwen3-Reranker-0.6B", "torch")
            await store.update_server(live.id, adapter_run_id=done, adapter_fingerprint=None, requests=5, errors=0,
                                      p50_ms=3.0, p95_ms=40.0)
            stopped = await store.register_server("127.0.0.1:8788")
            await store.stop_server(stopped.id)
            return live.id, stopped.id

    live, stopped = asyncio.run(serve())
    code, out, _ = _cli(capsys, "--db", str(db), "runs")
    assert code == 0 and f"● serving http://127.0.0.1:8787\\x1b[2J · adapter {done} · 5 req" in out
    assert "\x1b" not in out and "8788" not in out
    code, out, _ = _cli(capsys, "--db", str(db), "runs", "servers", "--all", "--json")
    listed = json.loads(out)
    assert [(s["id"], s["state"]) for s in listed] == [(stopped, "stopped"), (live, "serving")]
    assert listed[1]["adapter_run_id"] == done and listed[1]["p95_ms"] == 40.0
    assert [r["id"] for r in json.loads(_cli(capsys, "--db", str(db), "runs", "--json")[1])][-1] == done
