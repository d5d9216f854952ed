"""Ranking metrics against values computed by hand, pessimistic ties included."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trainers.metrics import (
    METRIC_GOALS,
    METRIC_NAMES,
    average_precision,
    evaluate_rankings,
    improvement,
    ndcg,
    query_metrics,
    ranked_labels,
    recall,
    reciprocal_rank,
)

D = [1 / math.log2(i + 1) for i in range(1, 12)]  # DCG discount at rank i (D[0] is rank 1 = 1.0)


def test_keys_and_goals() -> None:
    assert list(evaluate_rankings([([1.0, 0.0], [1, 0])])) == ["mrr@10", "ndcg@10", "recall@10", "map"]
    assert METRIC_NAMES == ("mrr@10", "ndcg@10", "recall@10", "map")
    assert METRIC_GOALS == {"mrr@10": "maximize", "ndcg@10": "maximize", "recall@10": "maximize",
                            "map": "maximize", "eval_loss": "minimize"}


def test_a_ranking_by_hand() -> None:
    # Ranked labels: 0 1 0 1 0 with 2 relevant, both in the top 10.
    m = query_metrics([0.9, 0.8, 0.7, 0.6, 0.5], [0, 1, 0, 1, 0])
    assert m["mrr@10"] == pytest.approx(1 / 2)
    assert m["ndcg@10"] == pytest.approx((D[1] + D[3]) / (D[0] + D[1]))  # (0.6309 + 0.4307) / 1.6309
    assert m["ndcg@10"] == pytest.approx(0.650921, abs=1e-6)
    assert m["recall@10"] == 1.0
    assert m["map"] == pytest.approx((1 / 2 + 2 / 4) / 2)


def test_the_cutoff_at_ten() -> None:
    # The only relevant document at rank 11: nothing within 10, but MAP sees the whole list.
    scores = list(range(11, 0, -1))
    labels = [0] * 10 + [1]
    m = query_metrics(scores, labels)
    assert (m["mrr@10"], m["ndcg@10"], m["recall@10"]) == (0.0, 0.0, 0.0)
    assert m["map"] == pytest.approx(1 / 11)
    # Two relevant, one at rank 3 and one at rank 12.
    m = query_metrics(list(range(12, 0, -1)), [0, 0, 1] + [0] * 8 + [1])
    assert m["mrr@10"] == pytest.approx(1 / 3)
    assert m["recall@10"] == pytest.approx(0.5)
    assert m["ndcg@10"] == pytest.approx(D[2] / (D[0] + D[1]))
    assert m["map"] == pytest.approx((1 / 3 + 2 / 12) / 2)


def test_ties_rank_relevant_documents_last() -> None:
    # All scores equal: the relevant one is ranked after the three non-relevant ones.
    m = query_metrics([0.5, 0.5, 0.5, 0.5], [1, 0, 0, 0])
    assert m["mrr@10"] == pytest.approx(1 / 4)
    assert m["ndcg@10"] == pytest.approx(D[3])
    assert m["map"] == pytest.approx(1 / 4)
    # A tie only between ranks 2 and 3: relevant goes to rank 3; the untied top stays first.
    m = query_metrics([0.9, 0.4, 0.4, 0.1], [0, 1, 0, 1])
    assert list(ranked_labels([0.9, 0.4, 0.4, 0.1], [0, 1, 0, 1])) == [0, 0, 1, 1]
    assert m["mrr@10"] == pytest.approx(1 / 3)
    assert m["map"] == pytest.approx((1 / 3 + 2 / 4) / 2)


def test_graded_gains_are_linear_and_lower_grades_win_ties() -> None:
    # Grades 1 and 2 ranked 2 then 1: DCG = 1 + 2·D[1]; ideal = 2 + 1·D[1].
    assert query_metrics([2.0, 1.0], [1, 2])["ndcg@10"] == pytest.approx((1 + 2 * D[1]) / (2 + D[1]))
    # Tied: the lower grade goes first (pessimistic), so the same value as above.
    assert query_metrics([1.0, 1.0], [2, 1])["ndcg@10"] == pytest.approx((1 + 2 * D[1]) / (2 + D[1]))
    assert query_metrics([1.0, 1.0], [2, 1])["mrr@10"] == 1.0


def test_nan_scores_rank_last_and_no_relevant_scores_zero() -> None:
    assert query_metrics([float("nan"), 0.1], [1, 0])["mrr@10"] == pytest.approx(1 / 2)
    assert query_metrics([0.3, 0.1], [0, 0]) == {"mrr@10": 0.0, "ndcg@10": 0.0, "recall@10": 0.0, "map": 0.0}


def test_helpers_on_ranked_labels() -> None:
    ranked = np.array([0.0, 1.0, 1.0])
    assert reciprocal_rank(ranked) == 0.5
    assert reciprocal_rank(ranked, k=1) == 0.0
    assert recall(ranked, k=2) == 0.5
    assert ndcg(ranked, k=1) == 0.0
    assert average_precision(ranked) == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_evaluate_rankings_averages_per_query() -> None:
    out = evaluate_rankings([([0.9, 0.1], [1, 0]), (np.array([0.9, 0.1]), np.array([0, 1]))])
    assert out["mrr@10"] == pytest.approx((1 + 1 / 2) / 2)
    assert out["recall@10"] == 1.0
    assert out["map"] == pytest.approx(0.75)
    assert out["ndcg@10"] == pytest.approx((1 + D[1]) / 2)


@pytest.mark.parametrize(("queries", "message"), [
    ([], "no queries"),
    ([([0.1, 0.2], [1])], "2 scores but 1 labels"),
    ([([0.1], [-1])], "non-negative"),
])
def test_bad_inputs_are_refused(queries, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate_rankings(queries)


def test_improvement_follows_the_goal() -> None:
    assert improvement("mrr@10", 0.40, 0.55) == pytest.approx(0.15)
    assert improvement("eval_loss", 0.9, 0.7) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="unknown metric"):
        improvement("bleu", 0.0, 1.0)


def test_a_relevant_document_outside_the_candidates_is_a_miss() -> None:
    # Two relevant documents judged; the first stage retrieved only one of them (ranked 2nd).
    m = query_metrics([0.9, 0.8, 0.1], [0, 1, 0], judged=[1, 1])
    assert m["mrr@10"] == pytest.approx(1 / 2)  # the retrieved one still counts where it is
    assert m["recall@10"] == pytest.approx(1 / 2)  # the missed one counts against recall...
    assert m["map"] == pytest.approx((1 / 2) / 2)  # ...and against MAP (it adds 0 precision)
    assert m["ndcg@10"] == pytest.approx(D[1] / (D[0] + D[1]))  # and the ideal ranks both at the top
    # Without `judged` the candidate list is the whole truth: the same ranking looks perfect on recall.
    assert query_metrics([0.9, 0.8, 0.1], [0, 1, 0])["recall@10"] == 1.0


def test_graded_judgments_of_missed_documents_raise_the_ideal() -> None:
    # A grade-2 document was missed; the retrieved grade-1 one at rank 1.
    assert query_metrics([0.9, 0.1], [1, 0], judged=[1, 2])["ndcg@10"] == pytest.approx(1 / (2 + D[1]))
    # No relevant document retrieved at all: every metric is 0.
    assert query_metrics([0.9, 0.1], [0, 0], judged=[3]) == {"mrr@10": 0.0, "ndcg@10": 0.0,
                                                             "recall@10": 0.0, "map": 0.0}
    with pytest.raises(ValueError, match="include every relevant candidate"):
        query_metrics([0.9, 0.1], [1, 1], judged=[1])
