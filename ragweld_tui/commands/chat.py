"""`ragweld-tui chat [--adapter DIR]`: a headless REPL with the learning agent, replies streamed.

Without `--adapter` it serves the active promoted agent adapter and follows promotions and
rollbacks while it runs (the same `AgentService` the TUI's agent mode uses); with `--adapter DIR`
it serves that folder, refused (exit 2) when it is incomplete or was trained on another base.
Lines starting with `/` are commands: /reset forgets the conversation, /exit leaves. Works with a
pipe as well as a terminal: `printf 'Hello\n' | ragweld-tui --config agent.toml chat`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ragweld_tui.commands.common import config_from_args, user_errors
from ragweld_tui.config import AppConfig
from ragweld_tui.errors import UserError

if TYPE_CHECKING:
    from backends.agent_service import AgentService

AdapterChoice = Path | Literal["active"] | None  # a folder, the active agent adapter (followed), or the base

HELP = "commands: /reset (new conversation), /exit (leave), /help"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    chat = sub.add_parser("chat", help="chat with the agent (the active adapter, or --adapter DIR) in the terminal")
    chat.add_argument("--adapter", metavar="DIR", help="serve this adapter folder ('none': the plain base model)")
    chat.add_argument("--model", metavar="REF", help="base chat model (default: [model].base of an agent config)")
    chat.add_argument("--temperature", type=float, help="sampling temperature (0: greedy; default [chat])")
    chat.add_argument("--top-p", type=float, dest="top_p", help="nucleus sampling mass (default [chat])")
    chat.add_argument("--max-tokens", type=int, dest="max_tokens", help="longest reply in tokens (default [chat])")
    chat.add_argument("--system", help="system prompt (default [chat].system_prompt)")
    chat.add_argument("--seed", type=int, help="seed for repeatable sampling")
    chat.set_defaults(handler=lambda args: asyncio.run(_chat(args)))


def make_agent_service(config: AppConfig, adapter: AdapterChoice = "active", model: str | None = None, *,
                       temperature: float | None = None, top_p: float | None = None, max_tokens: int | None = None,
                       seed: int | None = None) -> AgentService:
    """An `AgentService` for a config: its chat model, the active agent adapter ("active", followed
    across promotions), a fixed folder, or None (the plain base); [chat] sampling unless overridden.

    The TUI's agent mode and this REPL build their service here. Imports the backends lazily.
    """
    from backends.agent_service import AgentService
    from backends.chat_base import ChatInputError, SamplingParams
    from backends.generator import GeneratorSettings

    folder = config.active_adapter_dir("agent") if adapter == "active" else adapter
    c = config.chat
    try:
        defaults = SamplingParams(c.temperature if temperature is None else temperature,
                                  c.top_p if top_p is None else top_p,
                                  c.max_tokens if max_tokens is None else max_tokens, seed)
    except ChatInputError as exc:
        raise UserError(str(exc)) from None
    settings = GeneratorSettings(config.chat_model(model), config.model.backend, config.model.device,
                                 config.model.dtype, config.model.trust_remote_code)
    return AgentService(settings, folder, reload_check_s=config.serving.reload_check_s,
                        idle_unload_s=config.serving.idle_unload_s, defaults=defaults)


def _adapter_arg(args: argparse.Namespace) -> tuple[AdapterChoice, bool]:
    """(adapter for make_agent_service, whether the user named it explicitly)."""
    if args.adapter is None:
        return "active", False
    if args.adapter.lower() == "none":
        return None, True
    folder = Path(args.adapter).expanduser()
    if not folder.is_dir():
        raise UserError(f"{folder}: adapter folder not found")
    return folder, True


async def _chat(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    adapter, explicit = _adapter_arg(args)
    service = make_agent_service(config, adapter, args.model, temperature=args.temperature, top_p=args.top_p,
                                 max_tokens=args.max_tokens, seed=args.seed)
    system = args.system if args.system is not None else config.chat.system_prompt
    try:
        with user_errors():
            try:
                await service.warm()
            except ValueError as exc:
                raise UserError(str(exc)) from None
        if service.last_adapter_error:
            if explicit:
                raise UserError(f"adapter refused: {service.last_adapter_error}")
            print(f"warning: serving the base model; active adapter refused: {service.last_adapter_error}",
                  file=sys.stderr)
        served = "base model" if service.adapter_fingerprint is None else f"adapter {service.active_adapter}"
        print(f"chat with {service.settings.model} ({served}; {service.backend_reason}). {HELP}", file=sys.stderr)
        await _repl(service, system)
    finally:
        await service.close()
    return 0


async def _read_line(prompt: str) -> str | None:
    """One line from stdin (None at end of input); the prompt is shown only on a terminal."""
    def read() -> str | None:
        if sys.stdin.isatty():
            try:
                return input(prompt)
            except EOFError:
                return None
        line = sys.stdin.readline()
        return line.rstrip("\n") if line else None
    return await asyncio.to_thread(read)


async def _repl(service: AgentService, system: str | None) -> None:
    from backends.chat_base import ChatInputError

    history: list[dict[str, str]] = []
    while True:
        line = await _read_line("you> ")
        if line is None:
            return
        text = line.strip()
        if not text:
            continue
        if text.startswith("/"):
            command = text[1:].split()[0].lower() if text[1:].strip() else ""
            if command in ("exit", "quit"):
                return
            if command == "reset":
                history.clear()
                print("(new conversation)", file=sys.stderr)
            else:
                print(HELP, file=sys.stderr)
            continue
        messages = ([{"role": "system", "content": system}] if system else []) + history + [{"role": "user", "content": text}]
        pieces: list[str] = []
        try:
            # AgentService.stream is an async generator but annotated AsyncIterator (no aclose) in backends.
            async with contextlib.aclosing(service.stream(messages)) as stream:
                async for piece in stream:
                    pieces.append(piece)
                    print(piece, end="", flush=True)
        except ChatInputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            continue
        print(flush=True)
        history += [{"role": "user", "content": text}, {"role": "assistant", "content": clean_reply("".join(pieces))}]


def clean_reply(text: str) -> str:
    """A reply as history: without chat markup the model may have produced (refused in messages)."""
    from backends.chat_template import RESERVED

    for token in RESERVED:
        text = text.replace(token, "")
    return text.strip() or "…"
