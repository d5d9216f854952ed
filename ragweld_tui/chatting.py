"""The debug prompt's agent side: a conversation with the active agent adapter, streamed.

`AgentChat` owns one `backends.agent_service.AgentService` (the same service `ragweld-tui chat`
uses: lazy load in a thread, hot swap on promotion or rollback), created on the first message;
nothing of `backends` is imported before that.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragweld_tui.config import AppConfig


@dataclass
class AgentChat:
    """One conversation (system prompt from `[chat]`) with the active agent adapter."""

    config: AppConfig
    backend: str | None = None
    history: list[dict[str, str]] = field(default_factory=list)
    _service: Any = field(default=None, repr=False)
    _clean: Any = field(default=None, repr=False)

    def describe(self) -> str:
        """One line naming the chat model, backend and adapter."""
        folder = self.config.active_adapter_dir("agent")
        adapter = str(folder) if (folder / "manifest.json").is_file() else f"none ({folder} has no adapter)"
        if self._service is not None and self._service.last_adapter_error:
            adapter += f" (refused: {self._service.last_adapter_error})"
        return (f"model {self.config.chat_model()} · backend {self.backend or self.config.model.backend} · "
                f"adapter {adapter} · {len(self.history) // 2} turns")

    async def _ensure(self) -> Any:
        if self._service is None:
            # `ragweld-tui chat`'s factory, imported and run in a thread (it pulls in the backends).
            commands = await asyncio.to_thread(importlib.import_module, "ragweld_tui.commands.chat")
            config = self.config
            if self.backend is not None:
                config = config.model_copy(deep=True)
                config.model.backend = self.backend  # type: ignore[assignment]
            self._service = await asyncio.to_thread(commands.make_agent_service, config)
            self._clean = commands.clean_reply
        return self._service

    async def stream(self, text: str) -> AsyncIterator[str]:
        """Send a user message; yield the reply as it is generated, then keep both in the history."""
        service = await self._ensure()
        system = self.config.chat.system_prompt
        messages = ([{"role": "system", "content": system}] if system else []) + self.history + [
            {"role": "user", "content": text}]
        pieces: list[str] = []
        async with contextlib.aclosing(service.stream(messages)) as stream:
            async for piece in stream:
                pieces.append(piece)
                yield piece
        reply = self._clean("".join(pieces))
        self.history += [{"role": "user", "content": text}, {"role": "assistant", "content": reply}]

    def reset(self) -> None:
        """Start a new conversation."""
        self.history.clear()

    async def close(self) -> None:
        """Unload the chat model."""
        if self._service is not None:
            await self._service.close()
            self._service = None
