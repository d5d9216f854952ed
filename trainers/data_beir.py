"""BEIR folders: corpus, queries and graded judgments, with negatives mined by BM25.

Layout (as published by BEIR):

    corpus.jsonl       {"_id", "title", "text"}      document text = title + " " + text
    queries.jsonl      {"_id", "text"}
    qrels/<split>.tsv  header `query-id corpus-id score`, then one tab-separated judgment a line

Positives are the judged documents with score > 0; grades are kept for graded nDCG. Each query's
dev candidate list is what the first stage retrieved: the BM25 top `first_stage_k` (the `bm25s`
library, English stopwords), and nothing else — a relevant document BM25 missed is a miss, as it
would be in a real two-stage pipeline; metrics still count it through the full qrels.

Training negatives are the best BM25 hits with every judged positive of the query removed, by id
and by identical text (a judged-relevant document must never be trained as irrelevant), and with
the false-negative guard: hits scoring above `false_negative_margin` × the lowest judged positive's
BM25 score are likely relevant-but-unjudged and are skipped (counted in the report). Hits with a
BM25 score of 0 share no word with the query and are never candidates, so a query may get fewer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainers.data_model import FirstStage, QueryExample, RerankDataset, make_dataset
from trainers.errors import DataError
from trainers.jsonl import id_field, iter_jsonl, iter_text_lines, string_field

HEADER_FIRST_FIELDS = {"query-id", "query_id", "qid"}


@dataclass(frozen=True)
class Corpus:
    """Document ids in file order and their texts (title + text)."""

    ids: list[str]
    texts: list[str]


def document_text(title: str | None, text: str) -> str:
    """What the reranker reads for a BEIR document: the title, a space, then the text."""
    title = (title or "").strip()
    text = text.strip()
    return f"{title} {text}" if title else text


def read_corpus(path: Path) -> Corpus:
    """Read corpus.jsonl; ids must be unique, `text` a string, `title` (optional) a string or null."""
    ids: list[str] = []
    texts: list[str] = []
    first_line: dict[str, int] = {}
    for line, obj in iter_jsonl(path):
        doc_id = id_field(obj, "_id", path, line)
        text = string_field(obj, "text", path, line, allow_empty=True)
        title = obj.get("title")
        if title is not None and not isinstance(title, str):
            raise DataError(f"field 'title' must be a string, got {type(title).__name__}", path, line)
        if doc_id in first_line:
            raise DataError(f"duplicate document id {doc_id!r} (first on line {first_line[doc_id]})", path, line)
        first_line[doc_id] = line
        ids.append(doc_id)
        texts.append(document_text(title, text))
    if not ids:
        raise DataError("no documents: the file is empty", path)
    return Corpus(ids=ids, texts=texts)


def read_queries(path: Path) -> dict[str, str]:
    """Read queries.jsonl into {id: text} in file order; ids unique, text non-blank."""
    queries: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for line, obj in iter_jsonl(path):
        qid = id_field(obj, "_id", path, line)
        text = string_field(obj, "text", path, line)
        if qid in first_line:
            raise DataError(f"duplicate query id {qid!r} (first on line {first_line[qid]})", path, line)
        first_line[qid] = line
        queries[qid] = text.strip()
    if not queries:
        raise DataError("no queries: the file is empty", path)
    return queries


def read_qrels(path: Path, queries: dict[str, str], doc_ids: set[str]) -> dict[str, dict[str, float]]:
    """Read a qrels TSV into {query id: {doc id: score}}; unknown ids and bad scores name their line."""
    if not path.is_file():
        folder = path.parent
        splits = sorted(p.stem for p in folder.glob("*.tsv")) if folder.is_dir() else []
        hint = f"available splits: {', '.join(splits)}" if splits else f"no .tsv files in {folder}"
        raise DataError(f"qrels file not found ({hint}; set data.qrels_split)", path)
    qrels: dict[str, dict[str, float]] = {}
    for line_no, line in iter_text_lines(path):
        fields = [f.strip() for f in (line.split("\t") if "\t" in line else line.split())]
        if line_no == 1 and fields[0].lower() in HEADER_FIRST_FIELDS:
            continue
        if len(fields) != 3:
            raise DataError(f"expected 3 tab-separated fields (query-id, corpus-id, score), got {len(fields)}",
                            path, line_no)
        qid, doc_id, score_text = fields
        try:
            score = float(score_text)
        except ValueError:
            raise DataError(f"score must be a number, got {score_text!r}", path, line_no) from None
        if not np.isfinite(score):
            raise DataError(f"score must be finite, got {score_text!r}", path, line_no)
        if qid not in queries:
            raise DataError(f"query-id {qid!r} is not in queries.jsonl", path, line_no)
        if doc_id not in doc_ids:
            raise DataError(f"corpus-id {doc_id!r} is not in corpus.jsonl", path, line_no)
        qrels.setdefault(qid, {})[doc_id] = score
    return qrels


class Bm25Index:
    """BM25 over a corpus (the `bm25s` library, English stopwords), scoring every document per query."""

    def __init__(self, corpus: Corpus) -> None:
        import bm25s  # a few hundred ms to import: only when a BEIR folder is loaded

        self._tokenizer = bm25s.tokenization.Tokenizer(stopwords="en")
        tokens = self._tokenizer.tokenize(corpus.texts, show_progress=False, update_vocab=True, return_as="ids")
        self._retriever = bm25s.BM25()
        self._retriever.index(tokens, show_progress=False)
        self.size = len(corpus.ids)

    def scores(self, queries: list[str]) -> list[np.ndarray]:
        """One float32 score per corpus document for each query (0 = no shared word)."""
        # update_vocab=False maps words the corpus never saw to the empty token, which scores 0.
        tokens = self._tokenizer.tokenize(queries, show_progress=False, update_vocab=False, return_as="ids")
        return [self._retriever.get_scores([int(t) for t in row]) if row else np.zeros(self.size, np.float32)
                for row in tokens]


def top_hits(scores: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[int]:
    """Indices of the k best documents with a score above 0 (and `allowed`), best first, ties in
    corpus order. Linear in the corpus size: only the k winners are sorted."""
    mask = scores > 0 if allowed is None else (scores > 0) & allowed
    idx = np.flatnonzero(mask)
    if idx.size > k:
        values = scores[idx]
        kth = np.partition(values, idx.size - k)[idx.size - k]  # the k-th largest score
        above, tied = idx[values > kth], idx[values == kth]
        idx = np.concatenate([above, tied[: k - above.size]])  # ties at the cut: corpus order
    order = np.lexsort((idx, -scores[idx]))
    return [int(i) for i in idx[order]]


def guard_limit(scores: np.ndarray, positive_idx: list[int], margin: float | None) -> float | None:
    """The highest BM25 score a mined negative may have (None: no limit).

    A hit that scores above `margin` × the lowest positive's BM25 score looks as relevant as a judged
    positive to the first stage, so it is more likely an unjudged positive than a true negative; it
    is not trained as one. Positives BM25 gives 0 (no shared word) set no bound; `margin=None` turns
    the guard off.
    """
    positive_scores = [float(scores[i]) for i in positive_idx if scores[i] > 0]
    if margin is None or not positive_scores:
        return None
    return margin * min(positive_scores)


def load_beir(folder: Path | str, split: str = "test", bm25_candidates: int = 30, max_queries: int | None = None,
              first_stage_k: int = 100, false_negative_margin: float | None = 0.95) -> RerankDataset:
    """Load a BEIR folder: graded judgments, each query's BM25 top `first_stage_k` (the dev candidate
    list) and up to `bm25_candidates` safe mined negatives for training (see the module docstring)."""
    folder = Path(folder)
    corpus = read_corpus(folder / "corpus.jsonl")
    queries = read_queries(folder / "queries.jsonl")
    qrels = read_qrels(folder / "qrels" / f"{split}.tsv", queries, set(corpus.ids))
    text_of = dict(zip(corpus.ids, corpus.texts))
    index_of = {doc_id: i for i, doc_id in enumerate(corpus.ids)}
    judged: list[tuple[str, list[str]]] = []
    n_without_positives = 0
    for qid in queries:
        grades = qrels.get(qid, {})
        # Best grade first, ties in qrels order; empty documents cannot be read, so they cannot be positives.
        positive_ids = [d for d, s in sorted(grades.items(), key=lambda item: -item[1]) if s > 0 and text_of[d]]
        if positive_ids:
            judged.append((qid, positive_ids))
        else:
            n_without_positives += 1
    if not judged:
        raise DataError(f"no query has a judged positive in qrels/{split}.tsv", folder)
    n_beyond = 0
    if max_queries is not None and len(judged) > max_queries:
        n_beyond, judged = len(judged) - max_queries, judged[:max_queries]
    index = Bm25Index(corpus)
    same_text: dict[str, list[int]] = {}
    for i, text in enumerate(corpus.texts):
        same_text.setdefault(text, []).append(i)
    examples, n_dropped = [], 0
    for (qid, positive_ids), scores in zip(judged, index.scores([queries[qid] for qid, _ in judged])):
        positive_idx = [index_of[d] for d in positive_ids]
        allowed = np.ones(index.size, dtype=bool)  # never a judged positive, by id or by identical text
        allowed[[i for d in positive_ids for i in same_text[text_of[d]]]] = False
        limit = guard_limit(scores, positive_idx, false_negative_margin)
        unguarded = top_hits(scores, bm25_candidates, allowed)
        kept = unguarded if limit is None else top_hits(scores, bm25_candidates, allowed & (scores <= limit))
        n_dropped += sum(1 for i in unguarded if limit is not None and scores[i] > limit)
        negative_ids = [corpus.ids[i] for i in kept]
        top = top_hits(scores, first_stage_k)
        examples.append(QueryExample(
            qid=qid, query=queries[qid],
            positives=[text_of[d] for d in positive_ids], negatives=[text_of[d] for d in negative_ids],
            positive_ids=positive_ids, negative_ids=negative_ids,
            first_stage=FirstStage("bm25", [corpus.ids[i] for i in top], [corpus.texts[i] for i in top],
                                   [float(scores[i]) for i in top]),
            grades=dict(qrels[qid])))
    return make_dataset(examples, source=str(folder), format="beir",
                        variant=f"qrels/{split}, bm25 negatives top {bm25_candidates}",
                        n_without_positives=n_without_positives, n_beyond_max_queries=n_beyond,
                        first_stage=f"bm25 top {first_stage_k}", n_false_negatives_dropped=n_dropped)
