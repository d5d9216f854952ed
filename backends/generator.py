"""Load a Qwen3 chat model on a backend and stream replies, with the same template the trainer used.

The synchronous core shared by the `chat` REPL and the async `AgentService`: validate the messages
(text only: images are refused), render them with `backends.chat_template` (Qwen3, thinking off —
the renderer the agent trainer tokenizes with), and stream the reply until `<|im_end|>`. Adapters
are verified against their manifest and refused when trained on another base or chat format.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backends.adapters import AdapterError, LoraWeights, check_compatible, read_adapter, verify_adapter
from backends.chat_base import ChatEngine, ChatInputError, SamplingParams
from backends.chat_template import IM_END, ChatFormatError, chat_template_fingerprint, check_messages, generation_prompt
from backends.models import base_fingerprint, load_tokenizer, resolve_model
from backends.select import choose_backend

STOP_TOKENS = (IM_END, "<|endoftext|>")


@dataclass(frozen=True)
class GeneratorSettings:
    """Everything needed to build a ChatGenerator; mirrors [model] of the agent's config."""

    model: str
    backend: str = "auto"
    device: str = "auto"
    dtype: str = "auto"
    trust_remote_code: bool = False


def stop_token_ids(tokenizer: Any) -> list[int]:
    """Ids that end a reply: `<|im_end|>` first (required), then `<|endoftext|>` when present."""
    ids: list[int] = []
    for token in STOP_TOKENS:
        encoded = tokenizer.encode(token, add_special_tokens=False)
        if len(encoded) == 1:
            ids.append(int(encoded[0]))
        elif token == IM_END:
            raise ChatInputError(f"the tokenizer has no single {IM_END} token; not a Qwen3 chat model")
    return ids


def load_chat_engine(settings: GeneratorSettings, model_dir: Path, tokenizer: Any, stop_ids: list[int]) -> tuple[ChatEngine, str]:
    """Build the engine for the chosen backend; returns it with the reason for the choice."""
    choice = choose_backend(settings.backend, settings.device)
    if choice.backend == "mlx":
        from backends.chat_mlx import MlxChatEngine

        return MlxChatEngine(model_dir, choice.device, settings.dtype, stop_ids), choice.reason
    if "quantization" in json.loads((model_dir / "config.json").read_text()):
        raise ChatInputError(f"{settings.model} is an MLX-quantized model; chat with it using backend mlx")
    from backends.chat_torch import TorchChatEngine

    return (TorchChatEngine(model_dir, tokenizer, choice.device, settings.dtype, stop_ids, settings.trust_remote_code),
            choice.reason)


@dataclass
class ChatGenerator:
    """A loaded chat model: tokenizer + engine, plus the adapter it serves."""

    settings: GeneratorSettings
    model_dir: Path
    tokenizer: Any  # a transformers tokenizer
    engine: ChatEngine
    backend_reason: str
    base_fingerprint: str
    adapter_dir: Path | None = None

    @classmethod
    def load(cls, settings: GeneratorSettings) -> ChatGenerator:
        model_dir = resolve_model(settings.model)
        tokenizer = load_tokenizer(model_dir, settings.trust_remote_code)
        engine, reason = load_chat_engine(settings, model_dir, tokenizer, stop_token_ids(tokenizer))
        return cls(settings, model_dir, tokenizer, engine, reason, base_fingerprint(model_dir))

    def use_adapter(self, folder: Path | None, lora: LoraWeights | None = None) -> None:
        """Serve the verified, compatible agent adapter in `folder` (None: the plain base)."""
        if folder is not None and lora is None:
            manifest = verify_adapter(folder)
            if manifest.kind != "agent":
                raise AdapterError(f"{folder}: a {manifest.kind} adapter, not an agent (chat) adapter")
            check_compatible(manifest, self.base_fingerprint, chat_template_fingerprint(), folder)
            lora = read_adapter(folder)
        self.engine.apply_lora(lora)
        self.adapter_dir = folder

    def prompt_ids(self, messages: Sequence[Mapping[str, str]]) -> list[int]:
        """Token ids of the generation prompt for a conversation ending with a user message."""
        try:
            clean = check_messages(messages, for_generation=True)
        except ChatFormatError as exc:
            raise ChatInputError(str(exc)) from None
        return list(self.tokenizer.encode(generation_prompt(clean), add_special_tokens=False))

    def stream(self, messages: Sequence[Mapping[str, str]], params: SamplingParams | None = None,
               stop: threading.Event | None = None) -> Iterator[str]:
        """Yield the reply's text as it is generated; ends at `<|im_end|>`, max_tokens or `stop`."""
        ids = self.prompt_ids(messages)
        return self.engine.stream(ids, params or SamplingParams(), stop or threading.Event())

    def reply(self, messages: Sequence[Mapping[str, str]], params: SamplingParams | None = None) -> str:
        """The whole reply at once."""
        return "".join(self.stream(messages, params))

    def close(self) -> None:
        self.engine.close()
