"""Fast unit tests of the TUI's pure helpers: formatting, diffs, the form, REPL parsing, the lag probe."""

from __future__ import annotations

import asyncio
import math

import pytest

from trainers.settings import AppConfig
from ragweld_tui.errors import UserError
from ragweld_tui.format import (config_diff, dataset_lines, ema, figure_lines, figures_inline,
                                format_elapsed, format_value, metric_deltas, metric_goal, resolve_chart_keys,
                                sort_runs)
from ragweld_tui.forms import apply_form, form_values
from ragweld_tui.lag import LagProbe
from ragweld_tui.scoring import compare_rows, parse_backend, parse_line, ranks
from ragweld_tui.screens.inspector import latest_dataset
from ragweld_tui.widgets.event_log import describe_event
from ragweld_tui.widgets.trajectory import TrajectoryChart
from store import AlarmEvent, DatasetEvent, EvalEvent, EventRecord, LogEvent, PromotionEvent


def test_format_elapsed_and_values() -> None:
    assert [format_elapsed(s) for s in (None, 5, 65, 3725, 3 * 86400)] == ["—", "5s", "1m05s", "1h02m", "3d00h"]
    assert format_value(None) == "—" and format_value(math.nan) == "nan" and format_value(-math.inf) == "-inf"
    assert format_value(0.41) == "0.41" and format_value(2e-4) == "2.00e-04"


def test_metric_deltas_respect_the_goal() -> None:
    a = {"eval/mrr@10": 0.40, "eval/eval_loss": 1.0, "best/eval_loss": 0.9}
    b = {"eval/mrr@10": 0.45, "eval/eval_loss": 0.8, "best/eval_loss": 1.1}
    deltas = {d.key: d for d in metric_deltas(a, b, "mrr@10", "maximize")}
    assert deltas["eval/mrr@10"].better is True  # higher mrr is better
    assert deltas["eval/eval_loss"].better is True  # lower loss is better
    assert deltas["best/eval_loss"].better is False
    assert list(deltas)[0] == "eval/mrr@10"  # the primary metric comes first
    assert metric_goal("eval/eval_loss", "eval_loss", "minimize") == "minimize"
    # A primary metric named like a maximised one still follows the run's goal.
    assert metric_deltas({"eval/x": 1.0}, {"eval/x": 2.0}, "x", "minimize")[0].better is False


def test_config_diff_flattens_sections() -> None:
    diff = config_diff({"train": {"lr": 1, "steps": 5}, "x": 1}, {"train": {"lr": 2, "steps": 5}, "y": 2})
    assert diff == [("train.lr", 1, 2), ("x", 1, None), ("y", None, 2)]


def test_ema_and_chart_keys() -> None:
    assert ema([1.0, 1.0, math.nan, 1.0]) == pytest.approx([1.0, 1.0, 1.0, 1.0])
    keys = resolve_chart_keys(["train/loss", "train/lr", "eval/mrr@10", "eval/map", "train/tokens_per_s"], "mrr@10")
    assert keys == {"loss": "train/loss", "lr": "train/lr", "tokens": "train/tokens_per_s", "eval": "eval/mrr@10"}


def test_sort_by_best_honours_minimize() -> None:
    from store import RunRecord

    def run(rid: str, best: float | None, goal: str) -> RunRecord:
        return RunRecord(id=rid, kind="reranker", name=rid, status="completed", backend=None, base_model=None,
                         config={}, dataset_fingerprint=None, created_at=0.0, started_at=None, finished_at=None,
                         heartbeat_at=None, primary_metric="m", goal=goal, baseline=None, best=best, promoted=False,
                         error=None, owner_pid=None, owner_host=None)

    ordered = sort_runs([run("a", 0.2, "maximize"), run("b", None, "maximize"), run("c", 0.5, "maximize")], "best")
    assert [r.id for r in ordered] == ["c", "a", "b"]
    assert [r.id for r in sort_runs([run("a", 0.2, "minimize"), run("c", 0.5, "minimize")], "best")] == ["a", "c"]


def test_form_goes_through_the_config_models() -> None:
    config = AppConfig()
    values = form_values(config)
    assert values["train.max_steps"] == "200" and values["train.auto_promote"] == "true" and values["data.path"] == ""
    changed = apply_form(config, values | {"train.max_steps": "12", "model.backend": "torch", "data.path": "d.jsonl"})
    assert changed.train.max_steps == 12 and changed.model.backend == "torch" and str(changed.data.path) == "d.jsonl"
    with pytest.raises(UserError, match=r"\[train\]\.max_steps"):
        apply_form(config, values | {"train.max_steps": "0"})
    with pytest.raises(UserError, match=r"\[model\]\.backend: must be one of"):
        apply_form(config, values | {"model.backend": "cuda"})


def test_repl_parsing_and_rank_changes() -> None:
    assert parse_line("/backend torch").name == "backend" and parse_line("/backend torch").arg == "torch"
    cmd = parse_line(" q | a |  | b ")
    assert (cmd.name, cmd.query, cmd.docs) == ("query", "q", ("a", "b"))
    assert ranks([0.1, 0.9, 0.5]) == [3, 1, 2]
    rows = compare_rows(["a", "b", "c"], [0.9, 0.5, 0.1], [0.1, 0.5, 0.9])
    assert [(r["doc"], r["tuned_rank"], r["change"]) for r in rows] == [("c", 1, 2), ("b", 2, 0), ("a", 3, -2)]
    assert compare_rows(["a"], [0.3], None)[0]["change"] is None


def test_backend_names_are_parsed_to_the_config_choices() -> None:
    assert [parse_backend(text) for text in ("auto", "mlx", "torch", "cuda", "")] == ["auto", "mlx", "torch", None,
                                                                                        None]


async def test_lag_probe_measures_a_blocked_loop() -> None:
    probe = LagProbe(interval_s=0.01)
    probe.start()
    await asyncio.sleep(0.05)
    import time

    time.sleep(0.12)  # block the loop on purpose
    await asyncio.sleep(0.05)
    probe.stop()
    assert probe.summary()["samples"] >= 3
    assert probe.percentile(100) >= 0.1


def test_trajectory_buffer_is_bounded_and_keeps_best() -> None:
    chart = TrajectoryChart(max_points=100)
    chart.replot = lambda: None  # type: ignore[method-assign]  (no app: only the buffer is under test)
    chart.add_points((float(i), float(-i), 10.0 - i / 100) for i in range(1000))
    chart.add_points([(0.0, 0.0, math.nan)])
    assert len(chart.points) <= 100 and chart.total == 1000
    assert chart.start == (0.0, 0.0, 10.0) and chart.best == chart.current == (999.0, -999.0, 10.0 - 9.99)


def test_figures_mark_the_reference() -> None:
    figures = {"tuned": 0.47, "baseline": 0.41, "first stage": 0.5}
    assert figure_lines(figures, "first stage") == ["  tuned           0.47", "  baseline        0.41",
                                                    "  first stage      0.5  ◂ to beat"]
    assert figure_lines({}, "baseline") == ["  reference: baseline (no figure)"] and figure_lines({}, None) == []
    assert figures_inline(figures, "baseline") == "tuned 0.47 · baseline 0.41 (to beat) · first stage 0.5"


def test_dataset_lines_show_the_typed_dataset_event() -> None:
    event = DatasetEvent(source="cisi", format="beir", fingerprint="fp1",
                         summary="beir data (test) from cisi: 76 queries",
                         counts={"n_queries": 76, "n_false_negatives_dropped": 1234}, train=60, dev=16,
                         dev_candidates="bm25 top 100")
    lines = dataset_lines(event)
    assert lines[0] == "beir data (test) from cisi: 76 queries"
    assert "split           60 train / 16 dev queries" in lines and "dev candidates  bm25 top 100" in lines
    assert lines[-2:] == ["  queries                        76", "  false negatives dropped     1,234"]
    bare = dataset_lines(DatasetEvent(source="chat.jsonl", format="chat", fingerprint="fp2", summary="s"),
                         "conversations")
    assert "split           0 train / 0 dev conversations" in bare and "counts" not in bare
    assert "dev candidates  the data's own lists (no first stage)" in bare


def test_the_newest_dataset_event_wins() -> None:
    def record(seq: int, event: object) -> EventRecord:
        return EventRecord(run_id="r", seq=seq, ts=0.0, step=None, event=event)

    first = DatasetEvent(source="a", format="triplets", fingerprint="f1", summary="first start")
    again = DatasetEvent(source="a", format="triplets", fingerprint="f1", summary="resumed")
    assert latest_dataset([record(1, LogEvent(message="x"))]) is None
    assert latest_dataset([record(1, first), record(2, LogEvent(message="x")), record(3, again)]) == again
    assert describe_event(record(1, first)) == ("info", "first start (0 train / 0 dev)")


def test_event_log_lines_for_alarms_verdicts_and_timing() -> None:
    def line(event: object) -> tuple[str, str]:
        return describe_event(EventRecord(run_id="r", seq=1, ts=0.0, step=None, event=event))

    alarm = AlarmEvent(kind="score_collapse", message="every dev score is alike", value=1e-6, threshold=1e-3)
    assert line(alarm) == ("warning", "⚠ every dev score is alike (score collapse: 1.00e-06, limit 0.001)")
    verdict = PromotionEvent(promoted=False, metric="mrr@10", figures={"tuned": 0.4, "baseline": 0.41},
                             reference="baseline", reasons=["below epsilon"])
    assert line(verdict) == ("warning",
                             "not promoted on mrr@10 — tuned 0.4 · baseline 0.41 (to beat) — below epsilon")
    forced = PromotionEvent(promoted=True, forced=True)
    assert line(forced) == ("info", "promoted (forced)")
    served = EvalEvent(metrics={"mrr@10": 0.5}, split="serving", adapter_run_id="r-1",
                       timing={"latency_p50_ms": 12.0, "latency_p95_ms": 20.5, "pairs_per_s": 850.0})
    assert line(served) == ("info", "serving r-1: mrr@10=0.5 · p50 12ms p95 20.5ms 850 pairs/s")
