"""Length-sorted token-budget batching (pure helper)."""

from __future__ import annotations

from backends.batching import padding_efficiency, token_budget_batches


def test_every_row_once_longest_first_within_budget() -> None:
    lengths = [5, 100, 7, 98, 50, 52, 3, 99]
    batches = token_budget_batches(lengths, token_budget=300, max_batch_size=8)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert batches[0][0] == 1  # the longest row comes first
    for batch in batches:
        assert max(lengths[i] for i in batch) * len(batch) <= 300 or len(batch) == 1


def test_similar_lengths_share_a_batch_and_padding_stays_small() -> None:
    lengths = [100, 99, 98, 60, 58, 10, 9]
    batches = token_budget_batches(lengths, token_budget=10_000, max_batch_size=64)
    assert [sorted(b) for b in batches] == [[0, 1, 2], [3, 4], [5, 6]]
    assert padding_efficiency(lengths, batches) > 0.95
    wide = token_budget_batches(lengths, token_budget=10_000, max_batch_size=64, max_padding=1.0)
    assert len(wide) == 1 and padding_efficiency(lengths, wide) < 0.65


def test_row_over_budget_and_batch_size_cap() -> None:
    assert token_budget_batches([500, 10], token_budget=100, max_batch_size=4) == [[0], [1]]
    assert [len(b) for b in token_budget_batches([10] * 10, token_budget=10_000, max_batch_size=4)] == [4, 4, 2]
    assert token_budget_batches([], 100, 4) == []
