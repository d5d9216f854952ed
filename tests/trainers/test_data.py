"""Triplet JSONL loading and `load_dataset` dispatch: both spellings, merging, fingerprints, and a
table of malformed files whose errors must name `file:line` and what is wrong."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from trainers.settings import DataConfig
from trainers.data_triplets import load_triplets, text_qid
from trainers.datasets import load_dataset
from trainers.errors import DataError


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def standard(query: str, pos: list, neg: list, **extra) -> str:
    return json.dumps({"query": query, "positives": pos, "negatives": neg, **extra})


def flag(query: str, pos: list, neg: list, **extra) -> str:
    return json.dumps({"query": query, "pos": pos, "neg": neg, **extra})


GOOD = standard("what is bm25", ["bm25 is a ranking function"], ["bread recipes", "football scores"])


@pytest.mark.parametrize(("bad_line", "message"), [
    ('{"query": "q", "positives": ["a"], "negatives": [', "invalid JSON"),
    ('["query", "a", "b"]', "expected a JSON object, got list"),
    ('{"positives": ["a"], "negatives": ["b"]}', "missing field 'query'"),
    ('{"query": "   ", "positives": ["a"], "negatives": ["b"]}', "field 'query' is empty"),
    ('{"query": 7, "positives": ["a"], "negatives": ["b"]}', "field 'query' must be a string, got int"),
    ('{"query": "q", "negatives": ["b"]}', "missing field 'positives' (or 'pos')"),
    ('{"query": "q", "positives": ["a"]}', "missing field 'negatives' (or 'neg')"),
    ('{"query": "q", "positives": "a", "negatives": ["b"]}', "field 'positives' must be a list of strings, got str"),
    ('{"query": "q", "pos": ["a"], "neg": {"b": 1}}', "field 'neg' must be a list of strings, got dict"),
    ('{"query": "q", "positives": ["a", 3], "negatives": ["b"]}', "positives[1] must be a string, got int"),
    ('{"query": "q", "pos": ["a"], "neg": [null]}', "neg[0] must be a string, got NoneType"),
    ('{"query": "q", "positives": [""], "negatives": ["b"]}', "positives[0] is an empty document"),
    ('{"query": "q", "positives": ["a"], "pos": ["a"], "negatives": []}', "both 'positives' and 'pos' given"),
    ('{"query": "q", "qid": [1], "positives": ["a"], "negatives": []}', "field 'qid' must be a non-empty string"),
])
def test_each_malformed_line_is_named_with_file_line_and_problem(tmp_path: Path, bad_line: str, message: str) -> None:
    path = write_lines(tmp_path / "train.jsonl", [GOOD, "", bad_line])
    with pytest.raises(DataError) as info:
        load_triplets(path)
    assert str(info.value).startswith(f"{path}:3: ")
    assert message in str(info.value)
    assert info.value.line == 3 and info.value.path == str(path)
    assert isinstance(info.value, ValueError)  # the CLI turns it into one line, exit 2 (user_errors)


def test_bad_utf8_is_blamed_on_its_own_line(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_bytes((GOOD + "\n").encode() * 3 + b'{"query": "caf\xe9"}\n')
    with pytest.raises(DataError, match=rf"^{path}:4: not UTF-8 text"):
        load_triplets(path)


@pytest.mark.parametrize(("lines", "message"), [
    ([], "no examples: the file is empty"),
    (["", "  "], "no examples: the file is empty"),
    ([standard("q", [], ["b"])], "none of the 1 queries has a positive document"),
])
def test_files_without_usable_examples_are_refused(tmp_path: Path, lines: list[str], message: str) -> None:
    path = write_lines(tmp_path / "train.jsonl", lines)
    with pytest.raises(DataError, match=message):
        load_triplets(path)


def test_conflicting_ids_name_both_lines(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "t.jsonl", [standard("q1", ["a"], [], qid="x"), standard("q2", ["b"], [], qid="x")])
    with pytest.raises(DataError, match=rf"{path}:2: id 'x' was already used for a different query on line 1"):
        load_triplets(path)


def test_standard_and_flagembedding_forms_give_the_same_examples_and_fingerprint(tmp_path: Path) -> None:
    rows = [("what is bm25", ["bm25 ranks documents"], ["bread", "cake"]), ("who wrote dewey", ["melvil dewey"], [])]
    a = load_triplets(write_lines(tmp_path / "a.jsonl", [standard(*r) for r in rows]))
    b = load_triplets(write_lines(tmp_path / "b.jsonl", [flag(*r, pos_scores=[1.0], prompt="x") for r in rows]))
    assert a.examples == b.examples
    assert a.fingerprint == b.fingerprint and len(a.fingerprint) == 16
    assert a.report.format == "triplets" and a.report.variant == "standard"
    assert b.report.variant == "flagembedding"
    ex = a.examples[0]
    assert (ex.qid, ex.query, ex.positives, ex.negatives) == (text_qid("what is bm25"), "what is bm25",
                                                             ["bm25 ranks documents"], ["bread", "cake"])
    cand = ex.candidates()
    assert (cand.docs, cand.labels, cand.judged, cand.first_stage_scores) == (
        ["bm25 ranks documents", "bread", "cake"], [1.0, 0.0, 0.0], None, None)
    assert a.report.n_without_negatives == 1


def test_queries_without_positives_are_counted_and_left_out(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "t.jsonl", [GOOD, standard("lonely", [], ["x"]), flag("q3", ["p"], ["n"], qid=3)])
    data = load_triplets(path)
    assert [ex.query for ex in data.examples] == ["what is bm25", "q3"]
    assert data.examples[1].qid == "3"
    r = data.report
    assert (r.n_queries, r.n_without_positives, r.n_positives, r.n_negatives) == (2, 1, 2, 3)
    assert "1 queries without positives skipped" in r.summary()


def test_repeated_queries_merge_without_duplicates_or_contradictions(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "t.jsonl", [
        standard("q", ["p1"], ["n1", "p2"]),
        flag("q", ["p2", "p1"], ["n1", "n2"]),
    ])
    data = load_triplets(path)
    assert len(data.examples) == 1
    assert data.examples[0].positives == ["p1", "p2"]
    assert data.examples[0].negatives == ["n1", "n2"]  # p2 is a positive, so never a negative
    assert data.report.variant == "flagembedding+standard"


def test_fingerprint_is_stable_and_tracks_content(tmp_path: Path) -> None:
    a = load_triplets(write_lines(tmp_path / "a.jsonl", [GOOD]))
    again = load_triplets(write_lines(tmp_path / "sub.jsonl", ["", GOOD, ""]))
    canonical = json.dumps([text_qid("what is bm25"), "what is bm25", ["bm25 is a ranking function"],
                            ["bread recipes", "football scores"]], separators=(",", ":")) + "\n"
    assert a.fingerprint == hashlib.sha256(canonical.encode()).hexdigest()[:16] == "c3719ad4d2fd17fc"
    assert again.fingerprint == a.fingerprint
    changed = load_triplets(write_lines(tmp_path / "c.jsonl", [GOOD.replace("bread", "Bread")]))
    assert changed.fingerprint != a.fingerprint


def test_max_queries_keeps_the_first_queries(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "t.jsonl", [standard(f"q{i}", ["p"], ["n"]) for i in range(5)])
    data = load_dataset(DataConfig(path=path, max_queries=3))
    assert [ex.query for ex in data.examples] == ["q0", "q1", "q2"]
    assert data.report.n_beyond_max_queries == 2


def test_load_dataset_dispatches_on_the_path(tmp_path: Path) -> None:
    triplets = write_lines(tmp_path / "t.jsonl", [GOOD])
    assert load_dataset(DataConfig(path=triplets)).report.format == "triplets"
    demo = load_dataset(DataConfig())
    assert demo.report.format == "demo" and len(demo) == 200
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    write_lines(beir / "corpus.jsonl", ['{"_id": "d1", "title": "", "text": "bm25 ranking"}',
                                        '{"_id": "d2", "text": "ranking bread"}'])
    write_lines(beir / "queries.jsonl", ['{"_id": "q1", "text": "bm25 ranking"}'])
    write_lines(beir / "qrels" / "test.tsv", ["query-id\tcorpus-id\tscore", "q1\td1\t1"])
    data = load_dataset(DataConfig(path=beir))
    assert data.report.format == "beir"
    assert data.examples[0].positive_ids == ["d1"] and data.examples[0].negative_ids == ["d2"]


@pytest.mark.parametrize(("make", "config", "message"), [
    (lambda p: p / "missing.jsonl", {}, "data path not found"),
    (lambda p: p, {}, "folder has no corpus.jsonl"),
    (lambda p: write_lines(p / "x.csv", ["a"]), {}, "cannot tell the data format"),
    (lambda p: write_lines(p / "t.jsonl", [GOOD]), {"format": "beir"}, "needs a folder"),
    (lambda p: p, {"format": "triplets"}, "needs a JSONL file"),
    (lambda p: write_lines(p / "t.jsonl", [GOOD]), {"format": "chat"}, "training data for the agent"),
])
def test_load_dataset_refuses_paths_it_cannot_read(tmp_path: Path, make, config: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        load_dataset(DataConfig(path=make(tmp_path), **config))


def test_no_path_with_an_explicit_format_is_refused() -> None:
    with pytest.raises(DataError, match="needs data.path"):
        load_dataset(DataConfig(format="beir"))
