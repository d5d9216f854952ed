"""The small protocol every chat generation engine implements, and its sampling settings."""

from __future__ import annotations

import threading
from collections.abc import Generator
from dataclasses import dataclass
from typing import Protocol

from backends.adapters import LoraWeights


class ChatInputError(ValueError):
    """A chat request that cannot be served (images, a bad message list, bad sampling values)."""


@dataclass(frozen=True)
class SamplingParams:
    """How to sample a reply: temperature 0 is greedy; top-p keeps the smallest set of tokens whose
    probability reaches `top_p`; at most `max_tokens` tokens; `seed` makes sampling repeatable."""

    temperature: float = 0.7
    top_p: float = 0.9
    max_tokens: int = 256
    seed: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.temperature <= 5.0:
            raise ChatInputError(f"temperature must be between 0 and 5 (got {self.temperature})")
        if not 0.0 < self.top_p <= 1.0:
            raise ChatInputError(f"top_p must be in (0, 1] (got {self.top_p})")
        if self.max_tokens < 1:
            raise ChatInputError(f"max_tokens must be at least 1 (got {self.max_tokens})")


class ChatEngine(Protocol):
    """A loaded causal LM that streams the text of a reply to a prompt, stopping at the stop ids."""

    backend: str
    device: str

    def stream(self, prompt_ids: list[int], params: SamplingParams,
               stop: threading.Event) -> Generator[str, None, None]:
        """Yield text pieces as tokens are generated; end at a stop id, max_tokens or when `stop` is set.

        A generator, so a caller that leaves early can `close()` it (which ends the generation job)."""
        ...

    def apply_lora(self, lora: LoraWeights | None) -> None:
        """Serve the base plus `lora` (None: the plain base); replaces any previous adapter."""
        ...

    def close(self) -> None:
        ...
