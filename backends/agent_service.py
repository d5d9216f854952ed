"""The async chat service for the learning agent: streaming replies from the active promoted adapter.

`AgentService.stream(messages, temperature, top_p, max_tokens)` is an async generator of text pieces
for the TUI's agent mode (and anything else on an event loop). The lifecycle is the reranker
service's (`backends.hosting.AdapterHost`): the model loads lazily in a thread, the active agent
adapter is hot-swapped when a promotion (or rollback) changes it, and the model unloads when idle.
A reply holds the model's lock from its first token to its last, so a swap never lands mid-reply;
the next request picks up the new adapter. Every token crosses to the event loop through
`asyncio.to_thread`, so the loop never waits on the model.

Use it as `async with contextlib.aclosing(service.stream(...)) as pieces: async for piece in pieces`
so that leaving early stops generation at once.
"""

from __future__ import annotations

import asyncio
import enum
import threading
import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from pathlib import Path

from backends.chat_base import SamplingParams
from backends.generator import ChatGenerator, GeneratorSettings
from backends.hosting import AdapterHost


class _End(enum.Enum):
    """The end-of-reply mark `next` returns (an enum member, so `is` narrows the piece to str)."""

    END = enum.auto()


_END = _End.END


class AgentService(AdapterHost[ChatGenerator]):
    """Serves streaming chat from a lazily loaded ChatGenerator that follows the active agent adapter."""

    def __init__(self, settings: GeneratorSettings, active_adapter: Path | None = None,
                 reload_check_s: float = 2.0, idle_unload_s: float = 600.0,
                 clock: Callable[[], float] = time.monotonic, defaults: SamplingParams | None = None) -> None:
        super().__init__(active_adapter, reload_check_s, idle_unload_s, clock)
        self.settings = settings
        self.defaults = defaults or SamplingParams()
        self.backend_reason: str | None = None

    def _load(self) -> ChatGenerator:
        generator = ChatGenerator.load(self.settings)
        self.backend_reason = f"{generator.engine.backend} on {generator.engine.device} ({generator.backend_reason})"
        return generator

    def _apply_adapter(self, model: ChatGenerator, folder: Path | None) -> None:
        model.use_adapter(folder)

    def _close_model(self, model: ChatGenerator) -> None:
        model.close()

    async def stream(self, messages: Sequence[Mapping[str, str]], temperature: float | None = None,
                     top_p: float | None = None, max_tokens: int | None = None,
                     seed: int | None = None) -> AsyncGenerator[str, None]:
        """Yield the reply to `messages` (ending with a user turn) piece by piece, as it is generated.

        Unset sampling values come from `defaults`. Raises ChatInputError for a bad request (images,
        no user message last, out-of-range values) before any model work.
        """
        d = self.defaults
        params = SamplingParams(d.temperature if temperature is None else temperature,
                                d.top_p if top_p is None else top_p,
                                d.max_tokens if max_tokens is None else max_tokens,
                                d.seed if seed is None else seed)
        async with self._using() as generator:
            ids = await asyncio.to_thread(generator.prompt_ids, messages)
            stop = threading.Event()
            pieces = generator.engine.stream(ids, params, stop)
            try:
                while True:
                    piece = await asyncio.to_thread(next, pieces, _END)
                    if piece is _END:
                        break
                    yield piece
            finally:
                stop.set()
                await asyncio.to_thread(pieces.close)  # joins the generation thread / MLX job

    async def reply(self, messages: Sequence[Mapping[str, str]], temperature: float | None = None,
                    top_p: float | None = None, max_tokens: int | None = None, seed: int | None = None) -> str:
        """The whole reply at once."""
        return "".join([piece async for piece in self.stream(messages, temperature, top_p, max_tokens, seed)])
