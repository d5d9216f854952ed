"""The reranker's data in memory: queries with their candidate documents, a report and a fingerprint.

Every loader (triplet JSONL, BEIR folder, bundled demo) ends in `make_dataset`, so merging, the
`max_queries` limit, the counts shown to the user and the fingerprint recorded with a run are computed
one way for all of them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

FINGERPRINT_CHARS = 16


@dataclass(frozen=True)
class QueryExample:
    """One query and its candidates: `positives` are relevant, `negatives` are not.

    Together they are the query's full candidate list, which is what a dev query is ranked over.
    `positive_ids`/`negative_ids` are corpus ids when the data has them (BEIR), else empty.
    """

    qid: str
    query: str
    positives: list[str]
    negatives: list[str]
    positive_ids: list[str] = field(default_factory=list)
    negative_ids: list[str] = field(default_factory=list)

    def candidates(self) -> tuple[list[str], list[int]]:
        """The documents to rank for this query and their binary labels (1 = relevant)."""
        docs = [*self.positives, *self.negatives]
        return docs, [1] * len(self.positives) + [0] * len(self.negatives)


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

    def summary(self) -> str:
        """One line for logs and the TUI."""
        text = (f"{self.format} data ({self.variant}) from {self.source}: {self.n_queries} queries, "
                f"{self.n_positives} positives, {self.n_negatives} negatives")
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
        row = [ex.qid, ex.query, ex.positives, ex.negatives]
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
                 n_without_positives: int, max_queries: int | None = None, n_beyond_max_queries: int = 0) -> RerankDataset:
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
    )
    return RerankDataset(examples=kept, report=report, fingerprint=fingerprint_examples(kept))
