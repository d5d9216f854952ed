"""Honest verdicts end to end: first stage → base → tuned on the same candidates, TREC files any IR
library can recompute, and a gate that refuses a run which beats its base but not the first stage
or the adapter serving now — through `--run` with auto_promote and through `promote`."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from store import EvalEvent, PromotionEvent
from tests.trainers.run_helpers import run_cli, store_runs
from tests.trainers.verdict_helpers import read_store, write_demo_beir, write_run_config

pytrec_eval = pytest.importorskip("pytrec_eval")
MEASURES = {"map", "ndcg_cut_10", "recall_10"}


@pytest.fixture(scope="module")
def beir_run(tmp_path_factory):
    """One short run on demo data laid out as BEIR (BM25 nearly perfect there), auto_promote on."""
    folder = tmp_path_factory.mktemp("beir_run")
    data = write_demo_beir(folder / "demo_beir")
    config = write_run_config(folder, "run", data, eval_section="first_stage_k = 20", max_steps=20, eval_every=10,
                              checkpoint_every=10)
    result = run_cli("--run", str(config))
    assert result.returncode == 0, result.stderr + result.stdout
    (run,) = store_runs(folder / "db.sqlite")
    return folder, config, result, run


def test_the_table_has_first_stage_base_and_tuned_with_latency(beir_run) -> None:
    _, _, result, run = beir_run
    out = result.stdout
    assert "dev candidates: bm25 top 20" in out
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("system"))
    assert all(col in header for col in ("mrr@10*", "ndcg@10", "recall@10", "map", "p50 ms", "p95 ms", "pairs/s"))
    rows = [line.split()[0] for line in lines[lines.index(header) + 1:] if line.split()
            and line.split()[0] in ("first", "base", "tuned")]
    assert rows == ["first", "base", "tuned"]
    _, events, _ = read_store(beir_run[0] / "db.sqlite", run.id)
    evals = [e for e in events if isinstance(e, EvalEvent)]
    assert [e.split for e in evals[:2]] == ["first_stage", "baseline"]
    assert set(evals[1].timing) == {"latency_p50_ms", "latency_p95_ms", "pairs_per_s"}
    assert evals[1].timing["latency_p95_ms"] >= evals[1].timing["latency_p50_ms"] > 0


def test_a_run_that_beats_its_base_but_not_the_first_stage_is_refused(beir_run) -> None:
    folder, config, result, run = beir_run
    assert run.best - run.baseline >= 0.01, "precondition: the run beats its base by epsilon"
    assert run.first_stage is not None and run.first_stage > run.best
    assert "promotion: not promoted" in result.stdout
    assert "must beat the first stage" in result.stdout
    for figure in (f"tuned {run.best:.4f}", f"baseline {run.baseline:.4f}", f"first stage {run.first_stage:.4f}"):
        assert figure in result.stdout
    assert not run.promoted and not (folder / "active" / "reranker").exists()
    # The same refusal through `promote`, with the same figures, and nothing changed.
    refused = run_cli("--config", str(config), "promote", run.id)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "must beat the first stage" in refused.stderr and f"first stage {run.first_stage:.4f}" in refused.stderr
    assert not (folder / "active" / "reranker").exists()
    _, events, _ = read_store(folder / "db.sqlite", run.id)
    verdicts = [e for e in events if isinstance(e, PromotionEvent)]
    assert len(verdicts) == 2 and not any(v.promoted for v in verdicts)
    assert verdicts[-1].reference == "first stage" and set(verdicts[-1].figures) == {"tuned", "baseline", "first stage"}


def _means(qrels_path: Path, run_path: Path) -> dict[str, float]:
    """The four reported metrics recomputed by trec_eval (pytrec_eval) from the TREC files alone."""
    with qrels_path.open() as handle:
        qrels = pytrec_eval.parse_qrel(handle)
    with run_path.open() as handle:
        ranking = pytrec_eval.parse_run(handle)
    per_query = pytrec_eval.RelevanceEvaluator(qrels, MEASURES).evaluate(ranking)
    # MRR@10 is trec_eval's recip_rank over the top 10 of each ranking.
    top10 = {q: dict(sorted(docs.items(), key=lambda kv: -kv[1])[:10]) for q, docs in ranking.items()}
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    n = len(per_query)
    assert n == len(qrels), "every dev query is in the run file"
    return {"mrr@10": sum(v["recip_rank"] for v in rr.values()) / n,
            "ndcg@10": sum(v["ndcg_cut_10"] for v in per_query.values()) / n,
            "recall@10": sum(v["recall_10"] for v in per_query.values()) / n,
            "map": sum(v["map"] for v in per_query.values()) / n}


def test_reported_metrics_are_recomputed_from_the_trec_files(beir_run) -> None:
    folder, _, _, run = beir_run
    _, events, artifacts = read_store(folder / "db.sqlite", run.id)
    evals = [e for e in events if isinstance(e, EvalEvent)]
    reported = {"first_stage": next(e for e in evals if e.split == "first_stage").metrics,
                "base": next(e for e in evals if e.split == "baseline").metrics,
                "tuned": [e for e in evals if e.split == "dev" and e.is_best][-1].metrics}
    rankings = folder / "runs" / run.id / "rankings"
    assert {a.path for a in artifacts if a.kind == "ranking"} == {
        "rankings/qrels.txt", "rankings/first_stage.run", "rankings/base.run", "rankings/tuned.run"}
    for system, metrics in reported.items():
        recomputed = _means(rankings / "qrels.txt", rankings / f"{system}.run")
        for name, value in recomputed.items():
            assert math.isclose(value, metrics[name], abs_tol=1e-6), (system, name, value, metrics[name])


def test_a_run_that_beats_its_base_but_not_the_serving_adapter_is_refused(tmp_path: Path) -> None:
    short = dict(max_steps=10, eval_every=10, checkpoint_every=10)
    # B ends before anything serves; A is promoted after it; so `promote B` must measure A on B's dev set.
    b = write_run_config(tmp_path, "b", auto_promote=False, **short)
    assert run_cli("--run", str(b)).returncode == 0
    (run_b,) = store_runs(tmp_path / "db.sqlite")
    a = write_run_config(tmp_path, "a", max_steps=30, eval_every=10, checkpoint_every=10)
    promoted = run_cli("--run", str(a))
    assert "promotion: PROMOTED" in promoted.stdout, promoted.stdout
    run_a = next(r for r in store_runs(tmp_path / "db.sqlite") if r.id != run_b.id)
    assert run_b.best - run_b.baseline >= 0.01 and run_a.best > run_b.best + 0.01, "preconditions"
    active = (tmp_path / "active" / "reranker").resolve()

    refused = run_cli("--config", str(b), "promote", run_b.id)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert f"must beat the serving adapter (run {run_a.id})" in refused.stderr
    assert f"serving run {run_a.id} {run_a.best:.4f}" in refused.stderr  # measured on B's dev set: same split here
    assert f"baseline {run_b.baseline:.4f}" in refused.stderr and f"tuned {run_b.best:.4f}" in refused.stderr
    assert (tmp_path / "active" / "reranker").resolve() == active

    # Through --run with auto_promote: the serving adapter is measured at the end of the run.
    c = write_run_config(tmp_path, "c", **short)
    result = run_cli("--run", str(c))
    assert result.returncode == 0, result.stderr
    assert "promotion: not promoted" in result.stdout and f"must beat the serving adapter (run {run_a.id})" in result.stdout
    assert "serving adapter" in result.stdout and f"(serving adapter: run {run_a.id}" in result.stdout
    assert (tmp_path / "active" / "reranker").resolve() == active
    run_c = next(r for r in store_runs(tmp_path / "db.sqlite") if r.id not in (run_a.id, run_b.id))
    assert (run_c.serving_run_id, run_c.serving) == (run_a.id, pytest.approx(run_a.best, abs=1e-9))
    # --force waives the metric (never compatibility): the worse run can still be put in service on purpose.
    forced = run_cli("--config", str(c), "promote", run_c.id, "--force")
    assert forced.returncode == 0 and "forced" in forced.stdout


@pytest.mark.parametrize(("section", "text", "message"), [
    ("eval", "first_stage_k = 0", "[eval].first_stage_k"),
    ("eval", 'first_stage = "dense"', "[eval].first_stage: must be one of 'bm25'"),
    ("qrels", "q1\tdoc00001\thigh", "test.tsv:2: score must be a number, got 'high'"),
])
def test_bad_verdict_settings_change_nothing(tmp_path: Path, section: str, text: str, message: str) -> None:
    data = write_demo_beir(tmp_path / "data", n_queries=10)
    eval_section = text if section == "eval" else ""
    if section == "qrels":
        qrels = data / "qrels" / "test.tsv"
        lines = qrels.read_text().splitlines()
        qrels.write_text("\n".join([lines[0], text.replace("q1", lines[1].split("\t")[0])] + lines[2:]) + "\n")
    result = run_cli("--run", str(write_run_config(tmp_path, "bad", data, eval_section=eval_section)))
    assert result.returncode == 2, result.stderr + result.stdout
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "db.sqlite").exists() and not (tmp_path / "runs").exists()
