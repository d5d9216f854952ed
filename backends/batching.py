"""Length-sorted, token-budget batching: rows of similar length together, padding kept small."""

from __future__ import annotations

from collections.abc import Sequence


def token_budget_batches(lengths: Sequence[int], token_budget: int, max_batch_size: int,
                         max_padding: float = 0.2) -> list[list[int]]:
    """Group row indices so each batch's padded size (rows x longest row) stays within the budget.

    Rows go longest first, so the largest allocation happens at once instead of surprising the
    caller at the end; a single row longer than the budget still gets a batch of its own. A row
    shorter than (1 - max_padding) x its batch's longest row starts a new batch: padding is
    computed like real tokens, so on a CPU a few more, tighter batches are cheaper than one wide one.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for index in order:
        length = lengths[index]
        grown = max(longest, length) * (len(current) + 1)
        too_short = length < (1.0 - max_padding) * longest
        if current and (grown > token_budget or len(current) >= max_batch_size or too_short):
            batches.append(current)
            current, longest = [], 0
        current.append(index)
        longest = max(longest, length)
    if current:
        batches.append(current)
    return batches


def padding_efficiency(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Real tokens divided by padded tokens over all batches (1.0 means no padding at all)."""
    real = sum(lengths)
    padded = sum(max(lengths[i] for i in batch) * len(batch) for batch in batches if batch)
    return real / padded if padded else 1.0
