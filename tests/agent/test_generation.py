"""Streaming generation on both backends: incremental pieces, stop at <|im_end|>, limits, early stop."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from backends.chat_base import ChatInputError, SamplingParams
from backends.generator import ChatGenerator, GeneratorSettings
from tests.agent.helpers import TAUGHT

GREEDY = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=64)


@pytest.fixture(scope="module", params=["torch", "mlx"])
def generator(request, chat_model_dir: Path, taught_adapter: Path):
    """A generator per backend serving the taught adapter (written in PEFT form: it moves to MLX too)."""
    gen = ChatGenerator.load(GeneratorSettings(str(chat_model_dir), backend=request.param))
    gen.use_adapter(taught_adapter)
    yield gen
    gen.close()


def generating_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "torch-generate"]


def test_stream_is_incremental_and_stops_at_im_end(generator: ChatGenerator) -> None:
    reply = TAUGHT[1]["content"]
    pieces = list(generator.stream(TAUGHT[:1], GREEDY))
    assert "".join(pieces) == reply  # nothing after the reply: generation ended at <|im_end|>, far below 64 tokens
    assert len(pieces) >= 3 and all(pieces)
    stream = generator.stream(TAUGHT[:1], GREEDY)
    first = next(stream)  # the first piece arrives while the rest is still to come
    assert reply.startswith(first) and first != reply
    stream.close()  # leaving early stops generation and joins its thread
    assert not generating_threads()


def test_max_tokens_and_seeded_sampling(generator: ChatGenerator) -> None:
    question = [{"role": "user", "content": "Tell me a story about a fox."}]
    short = generator.reply(question, SamplingParams(0.0, 1.0, 4))
    assert len(generator.tokenizer.encode(short, add_special_tokens=False)) <= 4
    hot = SamplingParams(temperature=1.5, top_p=0.95, max_tokens=12, seed=5)
    assert generator.reply(question, hot) == generator.reply(question, hot)


def test_images_and_bad_requests_are_refused(generator: ChatGenerator) -> None:
    with pytest.raises(ChatInputError, match="images are not supported"):
        generator.stream([{"role": "user", "content": [{"type": "image", "image": "cat.png"}]}])
    with pytest.raises(ChatInputError, match="last message must be from the user"):
        generator.stream(TAUGHT)
    with pytest.raises(ChatInputError, match="top_p"):
        SamplingParams(top_p=0.0)
