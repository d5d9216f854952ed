"""The bundled demo dataset: small topical English queries whose relevance a tiny model can learn.

Why generated: the README's main job trains a LoRA on the embedded tiny Qwen3 (random weights) and
must show dev MRR@10 rising, on any machine, with no download and no big file in the repository.

How it is built (all from `random.Random(seed)`, whose streams Python keeps stable, so a given set
of knobs always gives the same dataset and the same fingerprint):
- 16 topics of 10 nouns each; every noun is a single token in the embedded tokenizer (the Qwen BPE
  cut to 16k ranks), so a tiny model sees one distinct id per word.
- A query picks a topic and 3 of its words (its keywords) and fills a question template.
- A positive passage is 3 template sentences whose 6 content slots hold the 3 keywords and 3 other
  words of the query's topic.
- A negative passage has the same shape and lengths; each of its 6 slots holds, with probability
  `overlap`, a non-keyword word of the query's topic and otherwise a word of another topic.
- A share `junk` of the negatives are spam passages instead ("Buy the {x} today and get a free
  {y}!", with words of another topic): never relevant, whatever the query.

Why junk: relating a query's topic to a document's is an interaction the embedded tiny model
(random weights) does not learn in 200 LoRA steps (tried with `junk=0`: the listwise loss stayed
near ln 4 and dev MRR@10 only moved by noise, at learning rates 2e-4 to 1e-2), while "spam is never
relevant" is learnt at once, as real rerankers learn to demote spam. With `junk=0.5` (4 of 8
negatives) learning that alone lifts expected MRR@10 from 0.43 (2 relevant among 10, random order)
to 0.58 (2 among 6). Measured with the shipped config.toml (CPU, about a minute): dev MRR@10
0.267 -> 0.622 (+0.355) at its best eval.

Knobs, easiest to hardest:
- `junk` 1.0: every negative is spam (trivial). 0.0: the purely topical task.
- `overlap` 0.0: negatives are wholly off-topic, so topic agreement alone ranks perfectly.
  `overlap` 1.0: negatives are on-topic and differ only by lacking the keywords (lexical match).
- `n_topics` (2..16): fewer topics means fewer word-to-topic associations to learn.
- `n_queries`, `n_positives`, `n_negatives`: size; the candidate list of a query is
  n_positives + n_negatives (2 + 8 by default, so random ranking gives MRR@10 near 0.43).
Positives and topical negatives share their templates and filler words, so length and style carry no
signal between them; only spam passages have their own templates.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from trainers.data_model import QueryExample, RerankDataset, make_dataset

TOPICS: dict[str, tuple[str, ...]] = {
    "astronomy": ("star", "planet", "sun", "sky", "space", "solar", "universe", "earth", "light", "stars"),
    "cooking": ("bread", "sugar", "butter", "recipe", "kitchen", "salt", "food", "cook", "meal", "meat"),
    "sailing": ("boat", "deck", "ship", "coast", "island", "sea", "wave", "port", "river", "crew"),
    "gardening": ("garden", "seed", "leaf", "root", "grass", "plant", "tree", "forest", "wood", "nature"),
    "music": ("song", "band", "music", "sound", "album", "voice", "artist", "dance", "radio", "studio"),
    "finance": ("bank", "money", "loan", "credit", "stock", "tax", "budget", "cash", "debt", "price"),
    "medicine": ("doctor", "patient", "disease", "blood", "hospital", "health", "drug", "pain", "treatment",
                 "surgery"),
    "football": ("ball", "goal", "team", "player", "coach", "league", "game", "match", "season", "club"),
    "computing": ("computer", "software", "code", "server", "memory", "program", "keyboard", "data", "network",
                  "database"),
    "weather": ("storm", "snow", "cloud", "rain", "winter", "wind", "weather", "climate", "summer", "ice"),
    "travel": ("hotel", "flight", "ticket", "travel", "trip", "city", "tour", "map", "beach", "station"),
    "law": ("court", "judge", "lawyer", "crime", "police", "law", "trial", "justice", "prison", "evidence"),
    "history": ("king", "army", "war", "battle", "history", "ancient", "century", "military", "soldiers",
                "revolution"),
    "materials": ("acid", "metal", "carbon", "gas", "lab", "chemical", "iron", "gold", "steel", "nuclear"),
    "school": ("school", "student", "teacher", "class", "education", "exam", "university", "college", "course",
               "library"),
    "family": ("family", "child", "parent", "mother", "father", "baby", "kids", "wedding", "marriage", "home"),
}

QUERY_TEMPLATES = (
    "how are {0} and {1} related to {2}?",
    "what should I know about {0}, {1} and {2}?",
    "best advice on {0} and {1} for {2}",
    "why does the {0} change the {1} and the {2}?",
    "questions about {0} with {1} and {2}",
    "where can I learn about {0}, {1} and {2}?",
)

SENTENCE_TEMPLATES = (
    "The {0} is closely tied to the {1}.",
    "Many people ask how the {0} affects the {1}.",
    "This guide explains the {0} and the {1} in simple terms.",
    "Experts say the {0} matters more than the {1}.",
    "A short note on the {0} and the {1} follows.",
    "Here we compare the {0} with the {1}.",
    "Good results depend on the {0} as much as on the {1}.",
    "Readers often confuse the {0} and the {1}.",
)

SPAM_TEMPLATES = (
    "Buy the {0} today and get a free {1}!",
    "Click here for a cheap {0} and a bonus {1}.",
    "Best deals on every {0} and {1}, order online now.",
    "Get a discount on the {0} and the {1} here.",
    "Win a new {0} with a free {1} this week!",
    "Huge sale on the {0} and the {1}, only today!",
    "Subscribe for deals on the {0} and the {1}.",
    "Limited offer: a {0} and a {1} for almost nothing!",
)

N_KEYWORDS = 3
N_SENTENCES = 3
SLOTS = 2 * N_SENTENCES
MAX_TRIES = 100


def _passage(rng: random.Random, words: list[str], templates: tuple[str, ...] = SENTENCE_TEMPLATES) -> str:
    """Fill N_SENTENCES distinct sentence templates with the content words, in a shuffled order."""
    words = list(words)
    rng.shuffle(words)
    chosen = rng.sample(templates, N_SENTENCES)
    return " ".join(t.format(words[2 * i], words[2 * i + 1]) for i, t in enumerate(chosen))


def _negative_words(rng: random.Random, topic_rest: list[str], other_topic: tuple[str, ...],
                    overlap: float) -> list[str]:
    """SLOTS content words: each from the query's topic (minus keywords) with probability `overlap`."""
    n_on = sum(rng.random() < overlap for _ in range(SLOTS))
    return rng.sample(topic_rest, n_on) + rng.sample(other_topic, SLOTS - n_on)


def _new_query(rng: random.Random, words: tuple[str, ...], taken: set[str]) -> tuple[str, list[str]]:
    """A query text not in `taken` (queries must be distinct: one query, one split) and its keywords."""
    for _ in range(MAX_TRIES):
        keywords = rng.sample(words, N_KEYWORDS)
        query = rng.choice(QUERY_TEMPLATES).format(*keywords)
        if query not in taken:
            taken.add(query)
            return query, keywords
    raise ValueError("demo generator ran out of distinct queries; lower n_queries or raise n_topics")


def _distinct(make: Callable[[], str], count: int, taken: set[str]) -> list[str]:
    """`count` strings from `make()` that are new to `taken` (which they are added to)."""
    out: list[str] = []
    for _ in range(count * MAX_TRIES):
        if len(out) == count:
            break
        text = make()
        if text not in taken:
            taken.add(text)
            out.append(text)
    if len(out) < count:
        raise ValueError("demo generator ran out of distinct texts; lower n_positives/n_negatives")
    return out


def demo_examples(n_queries: int = 200, *, seed: int = 0, overlap: float = 0.2, junk: float = 0.5,
                  n_topics: int = len(TOPICS), n_positives: int = 2, n_negatives: int = 8) -> list[QueryExample]:
    """Generate the demo queries with their positives and negatives (see the module docstring)."""
    if n_queries < 2:
        raise ValueError(f"n_queries must be at least 2 (got {n_queries})")
    if not 0.0 <= overlap <= 1.0:
        raise ValueError(f"overlap must be in [0, 1] (got {overlap})")
    if not 0.0 <= junk <= 1.0:
        raise ValueError(f"junk must be in [0, 1] (got {junk})")
    if not 2 <= n_topics <= len(TOPICS):
        raise ValueError(f"n_topics must be in [2, {len(TOPICS)}] (got {n_topics})")
    if n_positives < 1 or n_negatives < 1:
        raise ValueError("n_positives and n_negatives must be at least 1")
    rng = random.Random(seed)
    names = list(TOPICS)[:n_topics]
    order = rng.sample(names, len(names))  # topics take turns, so every topic gets its share of queries
    queries_seen: set[str] = set()
    n_junk = round(junk * n_negatives)
    examples = []
    for i in range(n_queries):
        topic = order[i % len(order)]
        words = TOPICS[topic]

        query, keywords = _new_query(rng, words, queries_seen)
        rest = [w for w in words if w not in keywords]
        others = [TOPICS[name] for name in names if name != topic]
        docs_seen: set[str] = set()
        positives = _distinct(lambda: _passage(rng, keywords + rng.sample(rest, SLOTS - N_KEYWORDS)),
                              n_positives, docs_seen)
        negatives = _distinct(lambda: _passage(rng, _negative_words(rng, rest, rng.choice(others), overlap)),
                              n_negatives - n_junk, docs_seen)
        negatives += _distinct(lambda: _passage(rng, rng.sample(rng.choice(others), SLOTS), SPAM_TEMPLATES),
                               n_junk, docs_seen)
        rng.shuffle(negatives)
        examples.append(QueryExample(qid=f"demo-{i:04d}", query=query, positives=positives, negatives=negatives))
    return examples


def make_demo_dataset(n_queries: int = 200, *, seed: int = 0, overlap: float = 0.2, junk: float = 0.5,
                      n_topics: int = len(TOPICS), n_positives: int = 2, n_negatives: int = 8,
                      max_queries: int | None = None) -> RerankDataset:
    """The demo as a `RerankDataset`; its report's variant records the knobs."""
    examples = demo_examples(n_queries, seed=seed, overlap=overlap, junk=junk, n_topics=n_topics,
                             n_positives=n_positives, n_negatives=n_negatives)
    variant = (f"n_queries={n_queries}, seed={seed}, overlap={overlap}, junk={junk}, n_topics={n_topics}, "
               f"n_positives={n_positives}, n_negatives={n_negatives}")
    return make_dataset(examples, source="bundled demo", format="demo", variant=variant,
                        n_without_positives=0, max_queries=max_queries)
