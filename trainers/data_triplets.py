"""Triplet JSONL: one query per line with its positive and negative documents.

Two spellings are accepted, one per line (never both on one line):

    {"query": "...", "positives": ["..."], "negatives": ["..."]}    # standard
    {"query": "...", "pos": ["..."], "neg": ["..."]}                # FlagEmbedding

An optional `qid` (or `query_id`, `id`) names the query; without one the id is a short hash of the
query text, so it does not move when lines are added. Other keys (FlagEmbedding's `pos_scores`,
`prompt`, ...) are ignored; lines with `"source": "feedback"` (written by `ragweld-tui serve`'s
`/v1/feedback`) are counted in the report. Lines with the same query are merged into one example, so a query can
never sit in both the train and the dev split. Every problem is a `DataError` naming `file:line`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainers.data_model import QueryExample, RerankDataset, make_dataset, unique
from trainers.errors import DataError
from trainers.jsonl import iter_jsonl, string_field

POSITIVE_KEYS = ("positives", "pos")
NEGATIVE_KEYS = ("negatives", "neg")
ID_KEYS = ("qid", "query_id", "id")


@dataclass
class _Row:
    """A query being merged from one or more lines."""

    qid: str
    query: str
    line: int
    positives: list[str] = field(default_factory=list)
    negatives: list[str] = field(default_factory=list)


def text_qid(query: str) -> str:
    """A stable id for a query that came without one."""
    return "q-" + hashlib.sha256(query.encode("utf-8")).hexdigest()[:12]


def _doc_list(obj: dict[str, Any], keys: tuple[str, str], path: Path, line: int) -> list[str]:
    """The list under one of `keys`, each item a non-blank string."""
    present = [key for key in keys if key in obj]
    if not present:
        raise DataError(f"missing field {keys[0]!r} (or {keys[1]!r})", path, line)
    if len(present) > 1:
        raise DataError(f"both {keys[0]!r} and {keys[1]!r} given; use one", path, line)
    key = present[0]
    value = obj[key]
    if not isinstance(value, list):
        raise DataError(f"field {key!r} must be a list of strings, got {type(value).__name__}", path, line)
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise DataError(f"{key}[{index}] must be a string, got {type(item).__name__}", path, line)
        if not item.strip():
            raise DataError(f"{key}[{index}] is an empty document", path, line)
    return value


def _qid(obj: dict[str, Any], query: str, path: Path, line: int) -> str:
    for key in ID_KEYS:
        if key in obj:
            value = obj[key]
            if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
                raise DataError(f"field {key!r} must be a non-empty string or an integer", path, line)
            return str(value).strip()
    return text_qid(query)


def parse_triplet_line(obj: dict[str, Any], path: Path, line: int) -> tuple[str, str, list[str], list[str]]:
    """Validate one decoded line and return (qid, query, positives, negatives)."""
    query = string_field(obj, "query", path, line)
    positives = _doc_list(obj, POSITIVE_KEYS, path, line)
    negatives = _doc_list(obj, NEGATIVE_KEYS, path, line)
    return _qid(obj, query, path, line), query, positives, negatives


def load_triplets(path: Path | str, max_queries: int | None = None) -> RerankDataset:
    """Load a triplet JSONL file (either spelling) into a dataset; queries without positives are counted."""
    path = Path(path)
    rows: dict[str, _Row] = {}
    query_of_qid: dict[str, _Row] = {}
    forms: set[str] = set()
    n_feedback = 0
    for line, obj in iter_jsonl(path):
        qid, query, positives, negatives = parse_triplet_line(obj, path, line)
        forms.add("flagembedding" if "pos" in obj else "standard")
        n_feedback += obj.get("source") == "feedback"
        row = rows.get(query)
        if row is None:
            other = query_of_qid.get(qid)
            if other is not None:
                raise DataError(f"id {qid!r} was already used for a different query on line {other.line}", path, line)
            row = rows[query] = query_of_qid[qid] = _Row(qid=qid, query=query, line=line)
        elif row.qid != qid:
            raise DataError(f"query repeats line {row.line} but with id {qid!r} instead of {row.qid!r}", path, line)
        row.positives.extend(positives)
        row.negatives.extend(negatives)
    if not rows:
        raise DataError("no examples: the file is empty", path)
    examples = []
    n_without_positives = 0
    for row in rows.values():
        positives = unique(row.positives)
        if not positives:
            n_without_positives += 1
            continue
        examples.append(QueryExample(qid=row.qid, query=row.query, positives=positives,
                                     negatives=unique(row.negatives, exclude=positives)))
    if not examples:
        raise DataError(f"none of the {len(rows)} queries has a positive document", path)
    return make_dataset(examples, source=str(path), format="triplets", variant="+".join(sorted(forms)),
                        n_without_positives=n_without_positives, max_queries=max_queries, n_feedback_rows=n_feedback)
