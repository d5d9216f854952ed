"""The bundled chat demo: a few hundred short conversations made in code, offline and deterministic.

Replies follow fixed patterns that repeat words of the question ("The capital of Peru is Lima."), so
a tiny random model tuned with LoRA for a few dozen steps learns the format, the copying and when to
say `<|im_end|>`: the demo run's dev loss falls far below the base's. A tenth of the conversations
are multi-turn with a system prompt, so the masking of earlier turns is exercised too.
"""

from __future__ import annotations

import numpy as np

from trainers.chat_data import ChatDataset, ChatExample, make_chat_dataset

CAPITALS = [
    ("France", "Paris"), ("Spain", "Madrid"), ("Italy", "Rome"), ("Germany", "Berlin"), ("Peru", "Lima"),
    ("Japan", "Tokyo"), ("Egypt", "Cairo"), ("Kenya", "Nairobi"), ("Canada", "Ottawa"), ("Chile", "Santiago"),
    ("Norway", "Oslo"), ("Sweden", "Stockholm"), ("Greece", "Athens"), ("Cuba", "Havana"), ("Ireland", "Dublin"),
    ("Poland", "Warsaw"), ("Austria", "Vienna"), ("Portugal", "Lisbon"), ("Russia", "Moscow"), ("China", "Beijing"),
    ("India", "New Delhi"), ("Mexico", "Mexico City"), ("Brazil", "Brasilia"), ("Thailand", "Bangkok"),
    ("Vietnam", "Hanoi"), ("Turkey", "Ankara"), ("Iran", "Tehran"), ("Finland", "Helsinki"), ("Ghana", "Accra"),
    ("Nepal", "Kathmandu"),
]
OPPOSITES = [
    ("hot", "cold"), ("big", "small"), ("fast", "slow"), ("up", "down"), ("light", "dark"), ("old", "new"),
    ("happy", "sad"), ("early", "late"), ("open", "closed"), ("full", "empty"), ("hard", "soft"), ("wet", "dry"),
    ("loud", "quiet"), ("rich", "poor"), ("strong", "weak"), ("thick", "thin"), ("high", "low"), ("near", "far"),
    ("clean", "dirty"), ("long", "short"), ("left", "right"), ("day", "night"), ("win", "lose"), ("push", "pull"),
]
SOUNDS = [
    ("cow", "moo"), ("dog", "woof"), ("cat", "meow"), ("duck", "quack"), ("sheep", "baa"), ("owl", "hoot"),
    ("lion", "roar"), ("frog", "croak"), ("horse", "neigh"), ("pig", "oink"), ("snake", "hiss"), ("bee", "buzz"),
    ("mouse", "squeak"), ("crow", "caw"), ("goat", "bleat"),
]
SYSTEM = "You are a concise assistant. Answer in one sentence."
GREETINGS = [("Hello!", "Hello! How can I help you today?"), ("Hi there.", "Hi! What would you like to know?"),
             ("Good morning!", "Good morning! How can I help?")]


def _qa(rng: np.random.Generator) -> tuple[str, str]:
    family = int(rng.integers(0, 4))
    if family == 0:
        country, city = CAPITALS[int(rng.integers(0, len(CAPITALS)))]
        asks: tuple[str, ...] = (f"What is the capital of {country}?", f"Tell me the capital of {country}.",
                                 f"Which city is the capital of {country}?")
        return asks[int(rng.integers(0, 3))], f"The capital of {country} is {city}."
    if family == 1:
        a, b = (int(x) for x in rng.integers(1, 20, size=2))
        asks = (f"What is {a} plus {b}?", f"Add {a} and {b}.", f"How much is {a} plus {b}?")
        return asks[int(rng.integers(0, 3))], f"{a} plus {b} is {a + b}."
    if family == 2:
        word, other = OPPOSITES[int(rng.integers(0, len(OPPOSITES)))]
        asks = (f"What is the opposite of {word}?", f"Give me the opposite of {word}.")
        return asks[int(rng.integers(0, 2))], f"The opposite of {word} is {other}."
    animal, sound = SOUNDS[int(rng.integers(0, len(SOUNDS)))]
    asks = (f"What sound does a {animal} make?", f"How does a {animal} sound?")
    return asks[int(rng.integers(0, 2))], f"A {animal} says {sound}."


def make_chat_demo(n: int = 240, seed: int = 0) -> ChatDataset:
    """`n` conversations (every tenth multi-turn with a system prompt), the same for the same seed."""
    rng = np.random.default_rng([seed, 0xC4A7])
    examples: list[ChatExample] = []
    seen: set[str] = set()
    while len(examples) < n:
        question, answer = _qa(rng)
        if len(examples) % 10 == 9:
            hello, reply = GREETINGS[int(rng.integers(0, len(GREETINGS)))]
            messages: tuple[dict[str, str], ...] = (
                {"role": "system", "content": SYSTEM}, {"role": "user", "content": hello},
                {"role": "assistant", "content": reply}, {"role": "user", "content": question},
                {"role": "assistant", "content": answer})
        else:
            messages = ({"role": "user", "content": question}, {"role": "assistant", "content": answer})
        example = ChatExample(messages, f"demo:{len(examples)}")
        if example.key() not in seen:  # a repeated conversation would leak between train and dev
            seen.add(example.key())
            examples.append(example)
    return make_chat_dataset(examples, source="bundled chat demo", format="demo")
