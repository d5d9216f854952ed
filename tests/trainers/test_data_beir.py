"""BEIR folders: CISI import with BM25-mined negatives that never contain a judged positive, the
first stage's top-k as the dev candidate list (missed positives stay missed), the false-negative
guard, and malformed corpus/queries/qrels files whose errors name `file:line`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainers.data_beir import document_text, load_beir, read_corpus
from trainers.errors import DataError

CISI = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "cisi"


@pytest.fixture(scope="module")
def cisi():
    if not (CISI / "corpus.jsonl").is_file():
        pytest.skip(f"{CISI} not found")
    return load_beir(CISI, split="test", bm25_candidates=30, false_negative_margin=None)


def read_cisi_qrels() -> dict[str, set[str]]:
    judged: dict[str, set[str]] = {}
    for line in (CISI / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        qid, doc_id, score = line.split("\t")
        if float(score) > 0:
            judged.setdefault(qid, set()).add(doc_id)
    return judged


def test_cisi_counts_match_the_collection(cisi) -> None:
    r = cisi.report
    assert (r.format, r.n_queries, r.n_without_positives) == ("beir", 76, 112 - 76)
    assert r.n_positives == 3114
    assert all(len(ex.negatives) == 30 for ex in cisi.examples)
    assert r.n_negatives == 76 * 30


def test_cisi_mined_negatives_never_contain_a_judged_positive(cisi) -> None:
    judged = read_cisi_qrels()
    corpus = read_corpus(CISI / "corpus.jsonl")
    text_of = dict(zip(corpus.ids, corpus.texts))
    assert {ex.qid for ex in cisi.examples} == set(judged)
    for ex in cisi.examples:
        assert set(ex.positive_ids) == judged[ex.qid]
        assert not set(ex.negative_ids) & judged[ex.qid]
        assert not set(ex.negatives) & set(ex.positives)
        assert len(set(ex.negative_ids)) == len(ex.negative_ids)
        assert ex.positives == [text_of[d] for d in ex.positive_ids]
        assert ex.negatives == [text_of[d] for d in ex.negative_ids]


def test_cisi_negatives_are_the_top_bm25_hits_and_the_import_is_stable(cisi) -> None:
    import bm25s

    corpus = read_corpus(CISI / "corpus.jsonl")
    ex = cisi.examples[0]
    tokenizer = bm25s.tokenization.Tokenizer(stopwords="en")
    retriever = bm25s.BM25()
    retriever.index(tokenizer.tokenize(corpus.texts, show_progress=False, return_as="ids"), show_progress=False)
    query = tokenizer.tokenize([ex.query], show_progress=False, update_vocab=False, return_as="ids")
    hits, scores = retriever.retrieve(query, k=200, show_progress=False)
    ranked = [corpus.ids[i] for i in hits[0] if corpus.ids[i] not in set(ex.positive_ids)]
    assert ex.negative_ids == ranked[:30]
    # The dev candidates are BM25's own top 100, positives it missed not added.
    assert ex.first_stage.ids == [corpus.ids[i] for i in hits[0][:100]]
    assert ex.first_stage.scores == pytest.approx([float(v) for v in scores[0][:100]])
    assert load_beir(CISI, bm25_candidates=30, false_negative_margin=None).fingerprint == cisi.fingerprint


def test_cisi_dev_candidates_leave_missed_positives_out_and_keep_every_judgment(cisi) -> None:
    judged = read_cisi_qrels()
    missed = 0
    for ex in cisi.examples:
        cand = ex.candidates()
        assert cand.ids == ex.first_stage.ids and len(cand.ids) == 100
        assert cand.labels == [1.0 if d in judged[ex.qid] else 0.0 for d in cand.ids]
        assert len(cand.judged) == len(judged[ex.qid])  # the metrics' denominators: every judged positive
        missed += len(judged[ex.qid] - set(cand.ids))
    assert missed > 0  # CISI has many positives BM25 does not retrieve in its top 100


def test_false_negative_guard_skips_hits_scoring_like_a_positive(cisi) -> None:
    from trainers.data_beir import Bm25Index

    guarded = load_beir(CISI, bm25_candidates=30, false_negative_margin=0.95)
    assert guarded.report.n_false_negatives_dropped > 0
    assert "possible unjudged positives" in guarded.report.summary()
    assert guarded.fingerprint != cisi.fingerprint
    corpus = read_corpus(CISI / "corpus.jsonl")
    index_of = {d: i for i, d in enumerate(corpus.ids)}
    examples = guarded.examples[:5]
    for ex, scores in zip(examples, Bm25Index(corpus).scores([ex.query for ex in examples])):
        lowest = min(float(scores[index_of[d]]) for d in ex.positive_ids if scores[index_of[d]] > 0)
        assert all(scores[index_of[d]] <= 0.95 * lowest for d in ex.negative_ids)
        assert ex.first_stage == next(e.first_stage for e in cisi.examples if e.qid == ex.qid)  # dev lists unchanged


def test_cisi_max_queries_limits_before_mining() -> None:
    if not (CISI / "corpus.jsonl").is_file():
        pytest.skip(f"{CISI} not found")
    data = load_beir(CISI, bm25_candidates=5, max_queries=4)
    assert len(data) == 4 and data.report.n_beyond_max_queries == 72
    assert all(len(ex.negatives) == 5 for ex in data.examples)  # the guard mines deeper, not fewer


def test_document_text_joins_title_and_text() -> None:
    assert document_text("Dewey", "A history.") == "Dewey A history."
    assert document_text("", "A history.") == document_text(None, "A history.") == "A history."


def make_beir(root: Path, corpus: list[str] | None = None, queries: list[str] | None = None,
              qrels: list[str] | None = None) -> Path:
    (root / "qrels").mkdir(parents=True)
    docs = [{"_id": "d1", "title": "BM25", "text": "ranking function"}, {"_id": "d2", "text": "ranking of bread"},
            {"_id": "d3", "title": "BM25 ranking", "text": "bm25 ranking again"}]
    (root / "corpus.jsonl").write_text("\n".join(corpus or [json.dumps(d) for d in docs]) + "\n")
    (root / "queries.jsonl").write_text("\n".join(queries or ['{"_id": "q1", "text": "bm25 ranking"}',
                                                              '{"_id": 2, "text": "bread"}']) + "\n")
    (root / "qrels" / "test.tsv").write_text("\n".join(qrels or ["query-id\tcorpus-id\tscore", "q1\td1\t1",
                                                                 "q1\td3\t0", "2\td2\t2"]) + "\n")
    return root


def test_a_small_beir_folder_loads_with_unjudged_and_zero_score_queries(tmp_path: Path) -> None:
    folder = make_beir(tmp_path, queries=['{"_id": "q1", "text": "bm25 ranking"}', '{"_id": 2, "text": "bread"}',
                                          '{"_id": "q3", "text": "unjudged"}'])
    data = load_beir(folder, bm25_candidates=5, false_negative_margin=None)
    assert [ex.qid for ex in data.examples] == ["q1", "2"]
    q1 = data.examples[0]
    assert q1.positive_ids == ["d1"] and q1.positives == ["BM25 ranking function"]
    assert q1.negative_ids[0] == "d3"  # judged 0: not a positive, and the best BM25 hit
    assert "d1" not in data.examples[0].negative_ids
    assert data.report.n_without_positives == 1
    assert q1.grades == {"d1": 1.0, "d3": 0.0} and data.examples[1].grades == {"d2": 2.0}
    # d3 outscores the positive d1 for "bm25 ranking": the guard refuses to train it as a negative.
    guarded = load_beir(folder, bm25_candidates=5)
    assert "d3" not in guarded.examples[0].negative_ids and guarded.report.n_false_negatives_dropped >= 1


def test_first_stage_k_cuts_the_dev_candidates_and_grades_reach_the_labels(tmp_path: Path) -> None:
    folder = make_beir(tmp_path)
    data = load_beir(folder, first_stage_k=1)
    q1, q2 = data.examples
    assert q1.first_stage.ids == ["d3"]  # BM25's best for "bm25 ranking"; the positive d1 is missed
    cand = q1.candidates()
    assert (cand.ids, cand.labels, cand.judged) == (["d3"], [0.0], [1.0])
    assert q2.candidates().labels == [2.0]  # graded: qrels grade 2 is the gain


@pytest.mark.parametrize(("part", "lines", "where", "message"), [
    ("corpus", ['{"_id": "d1", "text": "x"}', '{"_id": "d1", "text": "y"}'], "corpus.jsonl:2",
     "duplicate document id 'd1' (first on line 1)"),
    ("corpus", ['{"_id": "d1", "text": "x"}', '{"text": "y"}'], "corpus.jsonl:2", "missing field '_id'"),
    ("corpus", ['{"_id": "d1", "text": 5}'], "corpus.jsonl:1", "field 'text' must be a string, got int"),
    ("corpus", ['{"_id": "d1", "title": 1, "text": "x"}'], "corpus.jsonl:1", "field 'title' must be a string"),
    ("corpus", ['{"_id": "d1", "text": "x"', ], "corpus.jsonl:1", "invalid JSON"),
    ("queries", ['{"_id": "q1", "text": "a"}', '{"_id": "q2"}'], "queries.jsonl:2", "missing field 'text'"),
    ("queries", ['{"_id": "q1", "text": ""}'], "queries.jsonl:1", "field 'text' is empty"),
    ("queries", ['{"_id": true, "text": "a"}'], "queries.jsonl:1", "field '_id' must be a string or an integer"),
    ("qrels", ["query-id\tcorpus-id\tscore", "q1\td1"], "test.tsv:2", "expected 3 tab-separated fields"),
    ("qrels", ["query-id\tcorpus-id\tscore", "q1\td1\tyes"], "test.tsv:2", "score must be a number, got 'yes'"),
    ("qrels", ["query-id\tcorpus-id\tscore", "q1\td1\t1", "q9\td1\t1"], "test.tsv:3",
     "query-id 'q9' is not in queries.jsonl"),
    ("qrels", ["query-id\tcorpus-id\tscore", "q1\td9\t1"], "test.tsv:2", "corpus-id 'd9' is not in corpus.jsonl"),
])
def test_malformed_beir_files_name_file_line_and_problem(tmp_path: Path, part: str, lines: list[str], where: str,
                                                         message: str) -> None:
    folder = make_beir(tmp_path, **{part: lines})
    with pytest.raises(DataError) as info:
        load_beir(folder)
    assert where in str(info.value) and message in str(info.value)


def test_missing_split_lists_the_available_ones(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="qrels file not found \\(available splits: test; set data.qrels_split\\)"):
        load_beir(make_beir(tmp_path), split="dev")


def test_no_judged_positive_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no query has a judged positive"):
        load_beir(make_beir(tmp_path, qrels=["query-id\tcorpus-id\tscore", "q1\td1\t0"]))
