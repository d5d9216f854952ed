"""Query splits and training items: deterministic per seed, disjoint, and exactly resumable by step."""

from __future__ import annotations

from collections import Counter

import pytest

from trainers.settings import DataConfig, TrainConfig
from trainers.data_model import QueryExample
from trainers.errors import DataError
from trainers.splits import (
    Group,
    Pair,
    TrainStream,
    listwise_groups,
    pointwise_pairs,
    split_dataset,
    split_for_config,
)


def examples(n: int = 50, n_pos: int = 2, n_neg: int = 6) -> list[QueryExample]:
    return [QueryExample(qid=f"q{i}", query=f"query {i}", positives=[f"p{i}.{j}" for j in range(n_pos)],
                         negatives=[f"n{i}.{j}" for j in range(n_neg)]) for i in range(n)]


def test_split_is_deterministic_disjoint_and_complete() -> None:
    data = examples(50)
    a, b = split_dataset(data, 0.2, seed=0), split_dataset(data, 0.2, seed=0)
    assert a == b
    train_ids, dev_ids = {ex.qid for ex in a.train}, {ex.qid for ex in a.dev}
    assert len(dev_ids) == 10 and not train_ids & dev_ids and train_ids | dev_ids == {ex.qid for ex in data}
    assert [ex.qid for ex in a.train] == [ex.qid for ex in data if ex.qid in train_ids]  # dataset order kept
    assert {ex.qid for ex in split_dataset(data, 0.2, seed=1).dev} != dev_ids


def test_split_does_not_depend_on_order_and_follows_the_config() -> None:
    data = examples(40)
    shuffled = data[::-1]
    assert {ex.qid for ex in split_dataset(shuffled, 0.25, 3).dev} == {ex.qid for ex in split_dataset(data, 0.25, 3).dev}
    assert split_for_config(data, DataConfig(dev_fraction=0.25, seed=3)) == split_dataset(data, 0.25, 3)


@pytest.mark.parametrize(("n", "fraction", "n_dev"), [(2, 0.2, 1), (3, 0.9, 2), (10, 0.25, 2), (200, 0.2, 40)])
def test_split_sizes_keep_at_least_one_query_on_each_side(n: int, fraction: float, n_dev: int) -> None:
    split = split_dataset(examples(n), fraction)
    assert (len(split.dev), len(split.train)) == (n_dev, n - n_dev)


def test_split_refuses_too_few_or_duplicate_queries() -> None:
    with pytest.raises(DataError, match="at least 2 queries"):
        split_dataset(examples(1))
    with pytest.raises(DataError, match="'q0' appears more than once"):
        split_dataset(examples(2) + examples(1))


def test_pointwise_pairs_have_the_ratio_and_are_seeded() -> None:
    data = examples(5, n_pos=2, n_neg=6)
    pairs = pointwise_pairs(data, negative_ratio=3, seed=7)
    assert len(pairs) == 5 * 2 * (1 + 3)
    assert Counter(p.label for p in pairs) == {1.0: 10, 0.0: 30}
    for p in pairs:
        assert p.doc.startswith(("p" if p.label else "n") + p.qid[1:] + ".")
    assert pointwise_pairs(data, 3, seed=7) == pairs
    assert pointwise_pairs(data, 3, seed=8) != pairs


def test_listwise_groups_put_one_positive_first_then_negatives() -> None:
    data = examples(6, n_pos=2, n_neg=6)
    groups = listwise_groups(data, group_size=4, seed=0)
    assert len(groups) == 12 and all(isinstance(g, Group) and len(g.docs) == 4 for g in groups)
    for g in groups:
        i = g.qid[1:]
        assert g.docs[0].startswith(f"p{i}.") and all(d.startswith(f"n{i}.") for d in g.docs[1:])
        assert len(set(g.docs[1:])) == 3  # enough negatives: drawn without replacement
    assert sorted((g.qid, g.docs[0]) for g in groups) == sorted((ex.qid, p) for ex in data for p in ex.positives)
    assert listwise_groups(data, 4, seed=0) == groups
    assert listwise_groups(data, 4, seed=1) != groups


def test_too_few_negatives_are_reused_and_missing_ones_borrowed() -> None:
    few = [QueryExample("a", "qa", ["pa"], ["na1", "na2"]), QueryExample("b", "qb", ["pb"], [])]
    groups = {g.qid: g for g in listwise_groups(few, group_size=6, seed=0)}
    assert {"na1", "na2"} <= set(groups["a"].docs[1:]) <= {"na1", "na2"}
    assert len(groups["a"].docs) == 6
    assert set(groups["b"].docs[1:]) <= {"pa", "na1", "na2"}  # borrowed, never its own positive
    with pytest.raises(DataError, match="no negatives"):
        listwise_groups([QueryExample("c", "qc", ["pc"], [])], group_size=2, seed=0)


def stream(**kwargs) -> TrainStream:
    return TrainStream(examples(7, n_pos=1, n_neg=4), **{"batch_size": 3, "group_size": 3, "seed": 5, **kwargs})


def test_stream_batches_are_a_pure_function_of_the_step() -> None:
    s = stream()
    sequence = [s.batch(k) for k in range(10)]
    assert all(len(b) == 3 for b in sequence)
    assert [stream().batch(k) for k in (9, 4, 0)] == [sequence[9], sequence[4], sequence[0]]  # resume anywhere
    assert [stream(seed=6).batch(k) for k in range(10)] != sequence
    flat = [item for b in sequence for item in b]
    assert flat[:7] == s.epoch_items(0) and flat[7:14] == s.epoch_items(1)  # batch 2 straddles epochs
    assert s.epoch_items(0) != s.epoch_items(1)  # a new shuffle and new negatives each epoch
    assert s.position(2) == (0, 6) and s.position(3) == (1, 2)
    assert s.epoch_of(7) == pytest.approx(3.0)


def test_stream_pointwise_and_from_config() -> None:
    data = examples(4, n_pos=1, n_neg=4)
    s = TrainStream.from_config(data, TrainConfig(loss="pointwise", batch_size=4, seed=2), DataConfig(negative_ratio=2))
    assert s.items_per_epoch == 4 * 3
    batch = s.batch(0)
    assert all(isinstance(p, Pair) for p in batch) and len(batch) == 4
    assert TrainStream.from_config(data, TrainConfig(loss="pointwise", batch_size=4, seed=2),
                                   DataConfig(negative_ratio=2)).batch(5) == s.batch(5)
    with pytest.raises(ValueError, match="step must be non-negative"):
        s.batch(-1)
