"""Train/dev split by query and the deterministic, resumable stream of training items.

- `split_dataset` puts each query wholly in train or in dev. Membership comes from a hash of
  (seed, qid), so it does not depend on file order, and the baseline and the tuned model are always
  evaluated on the same dev queries.
- `pointwise_pairs` and `listwise_groups` turn training queries into items with negatives drawn
  from a numpy Generator seeded by the caller: the same (examples, seed) gives the same items.
- `TrainStream.batch(step)` is a pure function of (examples, settings, seed, step): epoch e uses
  seed (seed, e), so resuming at step k replays exactly the batches an uninterrupted run would see,
  with the step number as the whole data position.

A query without negatives (possible in triplet data) borrows documents of the other queries it is
sampled with, never one of its own positives.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from trainers.settings import DataConfig, TrainConfig
from trainers.data_model import QueryExample
from trainers.errors import DataError

Seed = int | Sequence[int]


@dataclass(frozen=True)
class Split:
    """Training and dev queries, each list in the dataset's order."""

    train: list[QueryExample]
    dev: list[QueryExample]


@dataclass(frozen=True)
class Pair:
    """One pointwise item: a (query, document) pair with label 1.0 (relevant) or 0.0."""

    qid: str
    query: str
    doc: str
    label: float


@dataclass(frozen=True)
class Group:
    """One listwise item: `docs[0]` is a positive, the rest are negatives of the same query."""

    qid: str
    query: str
    docs: tuple[str, ...]


def _split_rank(seed: int, qid: str) -> bytes:
    return hashlib.sha256(f"{seed}\x00{qid}".encode("utf-8")).digest()


def split_dataset(examples: Sequence[QueryExample], dev_fraction: float = 0.2, seed: int = 0) -> Split:
    """Hold out round(n * dev_fraction) queries (at least 1, leaving at least 1 to train) for dev."""
    n = len(examples)
    if n < 2:
        raise DataError(f"need at least 2 queries with positives to split into train and dev (got {n})")
    if not 0.0 < dev_fraction < 1.0:
        raise ValueError(f"dev_fraction must be between 0 and 1 (got {dev_fraction})")
    qids = [ex.qid for ex in examples]
    if len(set(qids)) != n:
        duplicate = next(q for q in qids if qids.count(q) > 1)
        raise DataError(f"query id {duplicate!r} appears more than once; ids must be unique to split by query")
    n_dev = min(n - 1, max(1, round(n * dev_fraction)))
    dev_ids = set(sorted(qids, key=lambda q: _split_rank(seed, q))[:n_dev])
    return Split(train=[ex for ex in examples if ex.qid not in dev_ids],
                 dev=[ex for ex in examples if ex.qid in dev_ids])


def split_for_config(examples: Sequence[QueryExample], data: DataConfig) -> Split:
    """The split a config asks for: `data.dev_fraction` with `data.seed` (a property of the data)."""
    return split_dataset(examples, data.dev_fraction, data.seed)


def make_rng(seed: Seed) -> np.random.Generator:
    """A PCG64 Generator from an int or a sequence of ints (negative ints are folded to non-negative)."""
    parts = [seed] if isinstance(seed, int) else list(seed)
    return np.random.default_rng([p % (1 << 63) for p in parts])


def _sample(pool: Sequence[str], k: int, rng: np.random.Generator) -> list[str]:
    """k items: without replacement when the pool is big enough, else all of it plus draws with replacement."""
    if len(pool) >= k:
        return [pool[i] for i in rng.choice(len(pool), size=k, replace=False)]
    extra = rng.integers(0, len(pool), size=k - len(pool))
    return [pool[i] for i in rng.permutation(len(pool))] + [pool[i] for i in extra]


class _Negatives:
    """Draws negatives for a query, falling back to other queries' documents when it has none."""

    def __init__(self, examples: Sequence[QueryExample]) -> None:
        self.examples = examples
        self._borrowed: list[str] | None = None  # built only if some query lacks negatives

    def draw(self, ex: QueryExample, k: int, rng: np.random.Generator) -> list[str]:
        if ex.negatives:
            return _sample(ex.negatives, k, rng)
        if self._borrowed is None:
            self._borrowed = [d for other in self.examples for d in (*other.positives, *other.negatives)]
        own = set(ex.positives)
        out: list[str] = []
        for _ in range(100 * k):  # rejection sampling; a query's own positives are rarely most of the pool
            if len(out) == k:
                return out
            doc = self._borrowed[int(rng.integers(0, len(self._borrowed)))]
            if doc not in own:
                out.append(doc)
        if len(out) == k:
            return out
        raise DataError(f"query {ex.qid!r} has no negatives and no other query's documents to borrow")


def pointwise_pairs(examples: Sequence[QueryExample], negative_ratio: int, seed: Seed) -> list[Pair]:
    """For every positive: the positive pair and `negative_ratio` negative pairs; all shuffled."""
    rng = make_rng(seed)
    negatives = _Negatives(examples)
    pairs: list[Pair] = []
    for ex in examples:
        for pos in ex.positives:
            pairs.append(Pair(ex.qid, ex.query, pos, 1.0))
            pairs.extend(Pair(ex.qid, ex.query, neg, 0.0) for neg in negatives.draw(ex, negative_ratio, rng))
    return [pairs[i] for i in rng.permutation(len(pairs))]


def listwise_groups(examples: Sequence[QueryExample], group_size: int, seed: Seed) -> list[Group]:
    """For every positive: a group of it and `group_size - 1` negatives of its query; groups shuffled."""
    if group_size < 2:
        raise ValueError(f"group_size must be at least 2 (got {group_size})")
    rng = make_rng(seed)
    negatives = _Negatives(examples)
    groups = [Group(ex.qid, ex.query, (pos, *negatives.draw(ex, group_size - 1, rng)))
              for ex in examples for pos in ex.positives]
    return [groups[i] for i in rng.permutation(len(groups))]


class TrainStream:
    """Endless, deterministic batches of training items; `batch(step)` depends only on `step`.

    Items of epoch e are `listwise_groups` / `pointwise_pairs` with seed (seed, e); the stream is the
    concatenation of epochs, and batch k is items [k * batch_size, (k + 1) * batch_size). A batch may
    straddle two epochs. The last epoch built is cached, so sequential reads cost one build per epoch.
    """

    def __init__(self, examples: Sequence[QueryExample], *, loss: Literal["listwise", "pointwise"] = "listwise",
                 batch_size: int = 8, group_size: int = 4, negative_ratio: int = 5, seed: int = 0) -> None:
        if not examples:
            raise DataError("no training queries")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1 (got {batch_size})")
        if loss not in ("listwise", "pointwise"):
            raise ValueError(f"loss must be 'listwise' or 'pointwise' (got {loss!r})")
        self.examples = list(examples)
        self.loss = loss
        self.batch_size = batch_size
        self.group_size = group_size
        self.negative_ratio = negative_ratio
        self.seed = seed
        n_positives = sum(len(ex.positives) for ex in self.examples)
        self.items_per_epoch = n_positives if loss == "listwise" else n_positives * (1 + negative_ratio)
        self._cache: tuple[int, list[Group] | list[Pair]] | None = None

    @classmethod
    def from_config(cls, examples: Sequence[QueryExample], train: TrainConfig, data: DataConfig) -> TrainStream:
        """The stream a config asks for: loss, batch and group sizes, negative ratio and `train.seed`."""
        return cls(examples, loss=train.loss, batch_size=train.batch_size, group_size=train.group_size,
                   negative_ratio=data.negative_ratio, seed=train.seed)

    def epoch_items(self, epoch: int) -> list[Group] | list[Pair]:
        """All items of one epoch, in order."""
        if self._cache is None or self._cache[0] != epoch:
            seed = (self.seed, epoch)
            items = (listwise_groups(self.examples, self.group_size, seed) if self.loss == "listwise"
                     else pointwise_pairs(self.examples, self.negative_ratio, seed))
            self._cache = (epoch, items)
        return self._cache[1]

    def position(self, step: int) -> tuple[int, int]:
        """(epoch, offset within the epoch) of the first item of batch `step`."""
        return divmod(step * self.batch_size, self.items_per_epoch)

    def batch(self, step: int) -> list[Group] | list[Pair]:
        """The items of batch `step` (0-based)."""
        if step < 0:
            raise ValueError(f"step must be non-negative (got {step})")
        epoch, offset = self.position(step)
        out: list[Any] = []  # all Groups or all Pairs, as `self.loss` says
        while len(out) < self.batch_size:
            items = self.epoch_items(epoch)
            take = items[offset: offset + self.batch_size - len(out)]
            out.extend(take)
            epoch, offset = epoch + 1, 0
        return out

    def epoch_of(self, step: int) -> float:
        """Fractional epoch reached after `step` batches (for logs and the HUD)."""
        return step * self.batch_size / self.items_per_epoch
