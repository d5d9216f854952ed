"""The debug prompt's agent side: a conversation with the active agent adapter, streamed.

`AgentChat` owns one `backends.agent_service.AgentService` (the same service `ragweld-tui chat`
uses: lazy load in a thread, hot swap on promotion or rollback), created on the first message;
nothing of the backends' chat side is imported before that.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ragweld_tui.config import AppConfig
from ragweld_tui.format import plural
from ragweld_tui.scoring import Backend

if TYPE_CHECKING:
    from backends.agent_service import AgentService


@dataclass
class AgentChat:
    """One conversation (system prompt from `[chat]`) with the active agent adapter."""

    config: AppConfig
    backend: Backend | None = None
    model: str | None = None  # None: the config's chat model (`/model` sets another)
    history: list[dict[str, str]] = field(default_factory=list)
    _service: AgentService | None = field(default=None, repr=False)

    def describe(self) -> str:
        """One line naming the chat model, backend and adapter."""
        folder = self.config.active_adapter_dir("agent")
        adapter = str(folder) if (folder / "manifest.json").is_file() else f"none ({folder} has no adapter)"
        if self._service is not None and self._service.last_adapter_error:
            adapter += f" (refused: {self._service.last_adapter_error})"
        return (f"model {self.config.chat_model(self.model)} · backend {self.backend or self.config.model.backend} · "
                f"adapter {adapter} · {plural(len(self.history) // 2, 'turn')}")

    async def _ensure(self) -> AgentService:
        if self._service is None:
            # `ragweld-tui chat`'s factory, run in a thread (it imports and sets up the backends' chat side).
            from ragweld_tui.commands.chat import make_agent_service

            config = self.config
            if self.backend is not None:
                config = config.model_copy(deep=True)
                config.model.backend = self.backend
            self._service = await asyncio.to_thread(make_agent_service, config, model=self.model)
        return self._service

    async def stream(self, text: str) -> AsyncIterator[str]:
        """Send a user message; yield the reply as it is generated, then keep both in the history."""
        service = await self._ensure()
        system = self.config.chat.system_prompt
        messages = ([{"role": "system", "content": system}] if system else []) + self.history + [
            {"role": "user", "content": text}]
        pieces: list[str] = []
        # AgentService.stream is an async generator but annotated AsyncIterator (no aclose) in backends.
        async with contextlib.aclosing(service.stream(messages)) as stream:
            async for piece in stream:
                pieces.append(piece)
                yield piece
        from ragweld_tui.commands.chat import clean_reply

        reply = clean_reply("".join(pieces))
        self.history += [{"role": "user", "content": text}, {"role": "assistant", "content": reply}]

    def reset(self) -> None:
        """Start a new conversation."""
        self.history.clear()

    async def close(self) -> None:
        """Unload the chat model."""
        if self._service is not None:
            await self._service.close()
            self._service = None
