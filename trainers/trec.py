"""Dev rankings and judgments as TREC files, so any IR library can recompute a run's numbers.

Run files have one line per ranked candidate, `qid Q0 docid rank score tag`, in rank order; qrels
files `qid 0 docid grade`. `trec_eval`, `pytrec_eval`, `ranx` and `ir_measures` read both.

Those tools re-sort each query by score and break ties their own way (trec_eval by document id),
while our metrics break ties pessimistically (a relevant document after an irrelevant one). So
the score column makes the evaluated order explicit. Some tools hold scores as float32 (pytrec_eval
does), so scores are written at float32 precision, and a score equal to (or above) the one before
it at that precision is written one float32 step (ulp) below it: ~1e-7 relative, and every tool,
float32 or float64, then reads exactly the ranking we measured. Each score is written with `repr`
of its float32 value, which reads back exactly in either precision.
Ids are written as they are, with any whitespace replaced by `_` (a TREC field cannot hold it).

Every file is written to a temp file, fsynced, then renamed: a reader sees the old file or the new
one, never half of one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from trainers.durable import write_durably
from trainers.evaluation import Ranking

RANKINGS_DIR = "rankings"
QRELS_FILE = "qrels.txt"
_WHITESPACE = re.compile(r"\s+")
_LOWEST = np.float32(-1e38)  # stands for NaN: a broken score ranks last and the file stays plain numbers


def trec_id(value: str) -> str:
    """An id usable as one whitespace-separated TREC field."""
    return _WHITESPACE.sub("_", value.strip()) or "_"


def run_file_name(system: str) -> str:
    """`first_stage` -> `first_stage.run`: the file of one system's rankings."""
    return f"{system}.run"


def strictly_decreasing(scores: list[float]) -> list[float]:
    """The scores in rank order at float32 precision, each tie or inversion pushed one float32 step
    below its predecessor."""
    out: list[np.float32] = []
    for score in scores:
        value = _LOWEST if math.isnan(score) else max(np.float32(score), _LOWEST)
        if out and value >= out[-1]:
            value = np.nextafter(out[-1], np.float32(-np.inf))
        out.append(value)
    return [float(v) for v in out]


def format_run(rankings: Mapping[str, Ranking], tag: str) -> str:
    """The text of a TREC run file; queries in the given order, candidates in rank order."""
    lines = []
    tag = trec_id(tag)
    for qid, ranking in rankings.items():
        scores = strictly_decreasing([score for _, score in ranking])
        for rank, ((doc_id, _), score) in enumerate(zip(ranking, scores), start=1):
            lines.append(f"{trec_id(qid)} Q0 {trec_id(doc_id)} {rank} {score!r} {tag}\n")
    return "".join(lines)


def _grade(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def format_qrels(qrels: Mapping[str, Mapping[str, float]]) -> str:
    """The text of a TREC qrels file (documents of a query sorted by id, so the file is stable)."""
    return "".join(f"{trec_id(qid)} 0 {trec_id(doc_id)} {_grade(grade)}\n"
                   for qid, docs in qrels.items() for doc_id, grade in sorted(docs.items()))


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` whole or not at all (`trainers.durable.write_durably`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_durably(path, lambda tmp: tmp.write_text(text, encoding="utf-8", newline="\n"))


def write_run(folder: Path, system: str, rankings: Mapping[str, Ranking]) -> Path:
    """Write `<folder>/<system>.run` with `system` as the tag; returns its path."""
    path = folder / run_file_name(system)
    write_text_atomic(path, format_run(rankings, system))
    return path


def write_qrels(folder: Path, qrels: Mapping[str, Mapping[str, float]]) -> Path:
    """Write `<folder>/qrels.txt`; returns its path."""
    path = folder / QRELS_FILE
    write_text_atomic(path, format_qrels(qrels))
    return path
