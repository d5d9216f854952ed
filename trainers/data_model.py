"""The reranker's data in memory: queries with their candidate documents, a report and a fingerprint.

Every loader (triplet JSONL, BEIR folder, bundled demo) ends in `make_dataset`, so merging, the
`max_queries` limit, the counts shown to the user and the fingerprint recorded with a run are computed
one way for all of them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from store import DatasetEvent

FINGERPRINT_CHARS = 16


@dataclass(frozen=True)
class FirstStage:
    """What a first-stage retriever returned for a query: its top-k ids, texts and scores, best first."""

    name: str
    ids: list[str]
    texts: list[str]
    scores: list[float]


@dataclass(frozen=True)
class Candidates:
    """What a dev query is ranked over, and the judgments its metrics use.

    `labels` are the grades of the candidates (0 = not relevant). `judged` holds the grades of every
    relevant document of the query, retrieved or not (None when the list is the whole truth, as in
    triplet data). `first_stage_scores` are the retriever's scores, when there is a first stage.
    """

    ids: list[str]
    docs: list[str]
    labels: list[float]
    judged: list[float] | None = None
    first_stage_scores: list[float] | None = None


@dataclass(frozen=True)
class QueryExample:
    """One query: training `positives` and `negatives`, and for data with a corpus what a first stage
    retrieved for it (`first_stage`) and its graded judgments (`grades`, corpus id -> grade).

    Without a first stage, positives + negatives are the query's candidate list for evaluation.
    `positive_ids`/`negative_ids` are corpus ids when the data has them (BEIR), else empty.
    """

    qid: str
    query: str
    positives: list[str]
    negatives: list[str]
    positive_ids: list[str] = field(default_factory=list)
    negative_ids: list[str] = field(default_factory=list)
    first_stage: FirstStage | None = None
    grades: dict[str, float] = field(default_factory=dict)

    def candidates(self) -> Candidates:
        """The dev candidate list: the first stage's top-k only (a relevant document it missed is a
        miss, counted through `judged`), else positives then negatives with binary labels."""
        if self.first_stage is not None:
            stage = self.first_stage
            return Candidates(list(stage.ids), list(stage.texts), [self.grades.get(d, 0.0) for d in stage.ids],
                              judged=[g for g in self.grades.values() if g > 0],
                              first_stage_scores=list(stage.scores))
        ids = (self.positive_ids + self.negative_ids if len(self.positive_ids) == len(self.positives)
               and len(self.negative_ids) == len(self.negatives)
               else [f"p{i}" for i in range(len(self.positives))] + [f"n{i}" for i in range(len(self.negatives))])
        labels = [1.0] * len(self.positives) + [0.0] * len(self.negatives)
        return Candidates(ids, [*self.positives, *self.negatives], labels)


@dataclass(frozen=True)
class DataReport:
    """What a loader found, for the log and the run's record.

    `n_queries` counts the queries kept (each has at least one positive); queries without a positive
    are counted in `n_without_positives` and not used. `n_beyond_max_queries` counts usable queries
    dropped by `DataConfig.max_queries`. `format` is "triplets", "beir" or "demo"; `variant` says more
    (the triplet spelling, the qrels split and BM25 depth, the demo's knobs).
    """

    source: str
    format: str
    variant: str
    n_queries: int
    n_without_positives: int
    n_positives: int
    n_negatives: int
    n_without_negatives: int = 0
    n_beyond_max_queries: int = 0
    first_stage: str = ""
    n_false_negatives_dropped: int = 0
    n_feedback_rows: int = 0

    def summary(self) -> str:
        """One line for logs and the TUI."""
        text = (f"{self.format} data ({self.variant}) from {self.source}: {self.n_queries} queries, "
                f"{self.n_positives} positives, {self.n_negatives} negatives")
        if self.n_feedback_rows:
            text += f"; {self.n_feedback_rows} rows of serving feedback"
        text += (f"; dev candidates: {self.first_stage}" if self.first_stage
                 else "; dev candidates: the data's own lists (no first stage)")
        if self.n_false_negatives_dropped:
            text += (f"; {self.n_false_negatives_dropped} mined negatives dropped as possible unjudged positives "
                     "(false-negative guard)")
        if self.n_without_positives:
            text += f"; {self.n_without_positives} queries without positives skipped"
        if self.n_without_negatives:
            text += f"; {self.n_without_negatives} queries without negatives"
        if self.n_beyond_max_queries:
            text += f"; {self.n_beyond_max_queries} queries beyond max_queries left out"
        return text


@dataclass(frozen=True)
class RerankDataset:
    """The examples of a reranker dataset, what the loader reported and a content fingerprint."""

    examples: list[QueryExample]
    report: DataReport
    fingerprint: str

    def __len__(self) -> int:
        return len(self.examples)


def fingerprint_examples(examples: Iterable[QueryExample]) -> str:
    """Short sha256 hex of the canonical content (qid, query, positives, negatives, in order).

    Only content counts: the same data in the standard or the FlagEmbedding triplet form, or moved
    to another folder, has the same fingerprint, so a run's record says exactly what it trained on.
    """
    digest = hashlib.sha256()
    for ex in examples:
        row: list[object] = [ex.qid, ex.query, ex.positives, ex.negatives]
        if ex.first_stage is not None:  # what dev queries are ranked over is part of the data
            row += [ex.first_stage.name, ex.first_stage.ids, sorted(ex.grades.items())]
        digest.update(json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()[:FINGERPRINT_CHARS]


def unique(items: Iterable[str], exclude: Iterable[str] = ()) -> list[str]:
    """Items in first-seen order without duplicates or excluded values (a document is never both
    a positive and a negative of one query: that would be a contradictory label)."""
    seen = set(exclude)
    out = []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def make_dataset(examples: Sequence[QueryExample], *, source: str, format: str, variant: str,
                 n_without_positives: int, max_queries: int | None = None, n_beyond_max_queries: int = 0,
                 first_stage: str = "", n_false_negatives_dropped: int = 0, n_feedback_rows: int = 0) -> RerankDataset:
    """Apply `max_queries` (the first N in source order), count, fingerprint and wrap the examples.

    `n_beyond_max_queries` adds usable queries a loader already left out before building examples
    (the BEIR loader does, to avoid mining negatives for queries it will not use).
    """
    kept = list(examples)
    if max_queries is not None and len(kept) > max_queries:
        n_beyond_max_queries += len(kept) - max_queries
        kept = kept[:max_queries]
    report = DataReport(
        source=source,
        format=format,
        variant=variant,
        n_queries=len(kept),
        n_without_positives=n_without_positives,
        n_positives=sum(len(ex.positives) for ex in kept),
        n_negatives=sum(len(ex.negatives) for ex in kept),
        n_without_negatives=sum(1 for ex in kept if not ex.negatives),
        n_beyond_max_queries=n_beyond_max_queries,
        first_stage=first_stage,
        n_false_negatives_dropped=n_false_negatives_dropped,
        n_feedback_rows=n_feedback_rows,
    )
    return RerankDataset(examples=kept, report=report, fingerprint=fingerprint_examples(kept))


def dataset_event(report: Any, fingerprint: str, train: int, dev: int, dev_candidates: str = "",
                  **extra_counts: int) -> DatasetEvent:
    """The typed dataset summary of a run from a loader's report dataclass (its int fields become
    `counts`, with `extra_counts` added: what the plan itself left out)."""
    counts = {k: v for k, v in asdict(report).items() if isinstance(v, int) and not isinstance(v, bool)}
    return DatasetEvent(source=report.source, format=report.format, fingerprint=fingerprint, summary=report.summary(),
                        counts=counts | extra_counts, train=train, dev=dev, dev_candidates=dev_candidates)
