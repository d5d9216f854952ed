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

from ragweld_tui.commands.common import config_from_args, user_errors
from ragweld_tui.config import EMBEDDED_CHAT, AppConfig
from ragweld_tui.errors import UserError

HELP = "commands: /reset (new conversation), /exit (leave), /help"


def register(sub: argparse._SubParsersAction) -> None:
    chat = sub.add_parser("chat", help="chat with the agent (the active adapter, or --adapter DIR) in the terminal")
    chat.add_argument("--adapter", metavar="DIR", help="serve this adapter folder ('none': the plain base model)")
    chat.add_argument("--model", metavar="REF", help="base chat model (default: [model].base of an agent config)")
    chat.add_argument("--temperature", type=float, help="sampling temperature (0: greedy; default [chat])")
    chat.add_argument("--top-p", type=float, dest="top_p", help="nucleus sampling mass (default [chat])")
    chat.add_argument("--max-tokens", type=int, dest="max_tokens", help="longest reply in tokens (default [chat])")
    chat.add_argument("--system", help="system prompt (default [chat].system_prompt)")
    chat.add_argument("--seed", type=int, help="seed for repeatable sampling")
    chat.set_defaults(handler=lambda args: asyncio.run(_chat(args)))


def chat_model(config: AppConfig, override: str | None) -> str:
    """The base to chat with: --model, else an agent config's base, else the embedded chat model."""
    if override:
        return override
    return config.model.base if config.train.kind == "agent" else EMBEDDED_CHAT


def _adapter_path(args: argparse.Namespace, config: AppConfig) -> tuple[Path | None, bool]:
    """(folder to follow, whether the user named it explicitly)."""
    if args.adapter is None:
        from trainers.promotion import active_path

        return active_path(config, "agent"), False
    if args.adapter.lower() == "none":
        return None, True
    folder = Path(args.adapter).expanduser()
    if not folder.is_dir():
        raise UserError(f"{folder}: adapter folder not found")
    return folder, True


async def _chat(args: argparse.Namespace) -> int:
    from backends.agent_service import AgentService
    from backends.chat_base import ChatInputError, SamplingParams
    from backends.generator import GeneratorSettings

    config = config_from_args(args)
    folder, explicit = _adapter_path(args, config)
    c = config.chat
    try:
        defaults = SamplingParams(c.temperature if args.temperature is None else args.temperature,
                                  c.top_p if args.top_p is None else args.top_p,
                                  c.max_tokens if args.max_tokens is None else args.max_tokens, args.seed)
    except ChatInputError as exc:
        raise UserError(str(exc)) from None
    settings = GeneratorSettings(chat_model(config, args.model), config.model.backend, config.model.device,
                                 config.model.dtype, config.model.trust_remote_code)
    service = AgentService(settings, folder, reload_check_s=config.serving.reload_check_s, defaults=defaults)
    system = args.system if args.system is not None else c.system_prompt
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
        served = "base model" if service.adapter_fingerprint is None else f"adapter {folder}"
        print(f"chat with {settings.model} ({served}; {service.backend_reason}). {HELP}", file=sys.stderr)
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


async def _repl(service, system: str | None) -> None:
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
