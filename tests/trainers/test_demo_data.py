"""The bundled demo dataset: deterministic, well-formed, with a relevance signal whose difficulty the
knobs control (measured here with simple word-overlap scorers instead of a model)."""

from __future__ import annotations

import random
import re
from collections import Counter

import numpy as np
import pytest

from trainers.demo_data import SENTENCE_TEMPLATES, SPAM_TEMPLATES, TOPICS, demo_examples, make_demo_dataset
from trainers.metrics import evaluate_rankings
from trainers.splits import split_dataset

FINGERPRINT = "a1c3555d72e821ca"  # the default demo; change only on purpose
WORD_TOPIC = {w: name for name, words in TOPICS.items() for w in words}


def words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z]+", text.lower()) if w in WORD_TOPIC]


def mrr(examples, score) -> float:
    runs = []
    for ex in examples:
        cand = ex.candidates()
        runs.append(([score(ex.query, d) for d in cand.docs], cand.labels))
    return evaluate_rankings(runs)["mrr@10"]


def keyword_overlap(query: str, doc: str) -> float:
    return float(len(set(words(query)) & set(words(doc))))


def is_spam(doc: str) -> bool:
    return any(doc.startswith(t.split("{")[0]) for t in SPAM_TEMPLATES)


def not_spam(query: str, doc: str) -> float:
    return 0.0 if is_spam(doc) else 1.0


def topic_agreement(query: str, doc: str) -> float:
    topic = WORD_TOPIC[words(query)[0]]
    return float(sum(WORD_TOPIC[w] == topic for w in words(doc)))


def test_the_default_demo_is_stable_and_well_formed() -> None:
    data = make_demo_dataset()
    assert data.fingerprint == make_demo_dataset().fingerprint == FINGERPRINT
    r = data.report
    assert (r.format, r.n_queries, r.n_positives, r.n_negatives, r.n_without_positives) == ("demo", 200, 400, 1600, 0)
    assert len({ex.query for ex in data.examples}) == 200 and len({ex.qid for ex in data.examples}) == 200
    for ex in data.examples:
        docs = ex.positives + ex.negatives
        assert len(set(docs)) == len(docs) == 10
        assert all(len(words(d)) == 6 for d in docs)  # same shape for positives and negatives: no length cue
        assert set(words(ex.query)) <= set(words(ex.positives[0]))
        assert sum(map(is_spam, ex.negatives)) == 4 and not any(map(is_spam, ex.positives))
    topics = Counter(WORD_TOPIC[words(ex.query)[0]] for ex in data.examples)
    assert max(topics.values()) - min(topics.values()) <= 1  # topics take turns


def test_topic_vocabularies_are_disjoint_and_absent_from_templates() -> None:
    all_words = [w for ws in TOPICS.values() for w in ws]
    assert len(all_words) == len(set(all_words)) == 160
    for template in SENTENCE_TEMPLATES + SPAM_TEMPLATES:
        assert words(template) == []


def test_knobs_change_the_data_and_seeds_differ() -> None:
    base = make_demo_dataset(50)
    assert make_demo_dataset(50, seed=1).fingerprint != base.fingerprint
    assert make_demo_dataset(50, overlap=0.9).fingerprint != base.fingerprint
    assert make_demo_dataset(50, junk=0.0).fingerprint != base.fingerprint
    assert not any(is_spam(d) for ex in make_demo_dataset(20, junk=0.0).examples for d in ex.negatives)
    assert all(is_spam(d) for ex in make_demo_dataset(20, junk=1.0).examples for d in ex.negatives)
    small = make_demo_dataset(30, n_topics=3, n_positives=1, n_negatives=4, max_queries=20)
    assert len(small) == 20 and all(len(ex.negatives) == 4 for ex in small.examples)
    assert len({WORD_TOPIC[words(ex.query)[0]] for ex in small.examples}) == 3
    assert "n_topics=3" in small.report.variant


@pytest.mark.parametrize("bad", [{"n_queries": 1}, {"overlap": 1.5}, {"junk": -0.1}, {"n_topics": 1}, {"n_negatives": 0}])
def test_bad_knobs_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        demo_examples(**{"n_queries": 10, **bad})


def test_signal_is_learnable_and_overlap_controls_difficulty() -> None:
    dev = split_dataset(make_demo_dataset().examples, 0.2, seed=0).dev
    rng = random.Random(0)
    random_mrr = np.mean([mrr(dev, lambda q, d: rng.random()) for _ in range(20)])
    assert 0.35 < random_mrr < 0.55  # 2 relevant among 10
    assert mrr(dev, keyword_overlap) == 1.0
    # Demoting spam alone, query-blind, lifts MRR@10 to that of 2 relevant among 6 (0.58 expected).
    assert 0.5 < mrr(dev, lambda q, d: not_spam(q, d) + rng.random()) < 0.7
    easy = make_demo_dataset(overlap=0.0, junk=0.0).examples
    hard = make_demo_dataset(overlap=1.0, junk=0.0).examples
    assert mrr(easy, topic_agreement) == 1.0  # off-topic negatives: topic alone suffices
    assert mrr(hard, topic_agreement) < mrr(easy, topic_agreement) - 0.1  # on-topic negatives need keywords
    assert mrr(hard, keyword_overlap) == 1.0


def test_every_topic_word_is_one_token_of_the_embedded_tokenizer() -> None:
    pytest.importorskip("tokenizers")
    from tokenizers import Tokenizer

    from backends.embedded import build_tokenizer_json

    tokenizer = Tokenizer.from_str(build_tokenizer_json()[0])
    multi = [w for w in WORD_TOPIC if len(tokenizer.encode(" " + w).ids) != 1]
    assert multi == []
