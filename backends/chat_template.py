"""The Qwen3 chat format with thinking off: one renderer for training and for generation.

Training rows and generation prompts are both made by `render_chat`, so the model is tuned on
exactly the text it is later prompted with. The output equals Qwen3's own chat template called
with `enable_thinking=False` for system/user/assistant conversations (no tools):

- a system message first becomes `<|im_start|>system\\n…<|im_end|>\\n`, users likewise;
- an assistant turn after the last user message opens with an empty think block,
  `<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n` + content + `<|im_end|>\\n`; earlier assistant
  turns (history) carry no think block, as in Qwen3's template;
- the generation prompt is `<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n`.

The trainable tokens of a conversation are an assistant turn's content and its `<|im_end|>` (the
model must learn to stop); template text and the other roles never are. They are found from the
character spans `render_chat` reports and the fast tokenizer's offsets, on a single tokenization of
the whole text — the same tokenization generation uses for the prompt.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

IM_START, IM_END, THINK_OFF = "<|im_start|>", "<|im_end|>", "<think>\n\n</think>\n\n"
ROLES = ("system", "user", "assistant")
IMAGE_PARTS = ("image", "image_url", "input_image")
RESERVED = (IM_START, IM_END, "<think>", "</think>", "<|endoftext|>")


class ChatFormatError(ValueError):
    """A conversation that cannot be rendered in the Qwen3 chat format (bad role, images, ...)."""


@dataclass(frozen=True)
class RenderedChat:
    """The conversation as text, and the character span (start, end) of each assistant turn's
    trainable part (content + `<|im_end|>`) with the index of its message."""

    text: str
    spans: tuple[tuple[int, int, int], ...]


def _text_of(message: Any, index: int) -> tuple[str, str]:
    if not isinstance(message, Mapping):
        raise ChatFormatError(f"message {index} must be an object with 'role' and 'content', "
                              f"got {type(message).__name__}")
    role, content = message.get("role"), message.get("content")
    if "images" in message or "image" in message:
        raise ChatFormatError(f"message {index} has images; this is a text-only chat model (images are not supported)")
    if role not in ROLES:
        hint = " (tool calls are not supported)" if role == "tool" else ""
        raise ChatFormatError(f"message {index} has role {role!r}; expected one of {', '.join(ROLES)}{hint}")
    if isinstance(content, list):
        kinds = {part.get("type") for part in content if isinstance(part, Mapping)}
        if kinds & set(IMAGE_PARTS):
            raise ChatFormatError(f"message {index} ({role}) contains an image; this is a text-only chat model "
                                  "(images are not supported)")
        raise ChatFormatError(f"message {index} ({role}) content must be a string, not a list of parts")
    if not isinstance(content, str):
        raise ChatFormatError(f"message {index} ({role}) needs a string 'content', got {type(content).__name__}")
    for token in RESERVED:
        if token in content:
            raise ChatFormatError(f"message {index} ({role}) contains the reserved token {token!r} "
                                  "(thinking is off and the chat markup is added by the template)")
    return role, content


def check_messages(messages: Any, *, for_generation: bool = False) -> list[dict[str, str]]:
    """Validate a conversation and return it as plain {role, content} dicts.

    Training needs a non-empty assistant reply last; generation needs a user message last (the
    model answers it). Images, tools and non-string content are refused with the message index.
    """
    if not isinstance(messages, Sequence) or isinstance(messages, (str, bytes)):
        raise ChatFormatError(f"'messages' must be a list, got {type(messages).__name__}")
    if not messages:
        raise ChatFormatError("'messages' is empty")
    clean = []
    for index, message in enumerate(messages):
        role, content = _text_of(message, index)
        clean.append({"role": role, "content": content})
    last = clean[-1]["role"]
    if for_generation:
        if last != "user":
            raise ChatFormatError(f"the last message must be from the user (got {last!r})")
    else:
        if last != "assistant":
            raise ChatFormatError(f"the last message must be the assistant's reply (got {last!r})")
        for index, message in enumerate(clean):
            if message["role"] == "assistant" and not message["content"].strip():
                raise ChatFormatError(f"message {index} (assistant) is empty")
    if not any(m["role"] == "user" for m in clean):
        raise ChatFormatError("the conversation has no user message")
    return clean


def render_chat(messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = False) -> RenderedChat:
    """Render validated messages exactly like Qwen3's template with thinking off (see module docs)."""
    parts: list[str] = []
    spans: list[tuple[int, int, int]] = []
    size = 0

    def emit(text: str) -> None:
        nonlocal size
        parts.append(text)
        size += len(text)

    users = [i for i, m in enumerate(messages) if m["role"] == "user"]
    last_query = users[-1] if users else len(messages) - 1
    for index, message in enumerate(messages):
        role, content = message["role"], message["content"]
        if role != "assistant":
            emit(f"{IM_START}{role}\n{content}{IM_END}\n")
            continue
        if index > last_query and index == len(messages) - 1:
            emit(f"{IM_START}assistant\n{THINK_OFF}")
            content = content.lstrip("\n")
        else:
            emit(f"{IM_START}assistant\n")
        start = size
        emit(content + IM_END)
        spans.append((start, size, index))
        emit("\n")
    if add_generation_prompt:
        emit(f"{IM_START}assistant\n{THINK_OFF}")
    return RenderedChat("".join(parts), tuple(spans))


def generation_prompt(messages: Sequence[Mapping[str, str]]) -> str:
    """The prompt text the model continues to answer the last user message."""
    return render_chat(messages, add_generation_prompt=True).text


@dataclass(frozen=True)
class EncodedChat:
    """Token ids of a rendered conversation; `targets[t]` marks token t as a loss target
    (predicted from position t−1). Position 0 is never a target."""

    ids: list[int]
    targets: list[bool]

    def num_targets(self) -> int:
        return sum(self.targets)


def encode_chat(tokenizer: Any, messages: Sequence[Mapping[str, str]], *, train_on: str = "all",
                max_length: int | None = None) -> EncodedChat:
    """Tokenize a conversation once and mark the assistant tokens to learn.

    `train_on="all"` learns every assistant turn, `"last"` only the final reply (earlier replies are
    masked like the prompt). A token is a target when it starts inside a trainable span; rows longer
    than `max_length` are cut at the end.
    """
    if train_on not in ("all", "last"):
        raise ValueError(f"train_on must be 'all' or 'last' (got {train_on!r})")
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("chat training needs a fast tokenizer (tokenizer.json) for character offsets")
    rendered = render_chat(messages)
    spans = rendered.spans[-1:] if train_on == "last" else rendered.spans
    encoded = tokenizer(rendered.text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(encoded["input_ids"]), encoded["offset_mapping"]
    targets = [False] * len(ids)
    span_index = 0
    for t, (start, _end) in enumerate(offsets):
        while span_index < len(spans) and start >= spans[span_index][1]:
            span_index += 1
        if t > 0 and span_index < len(spans) and spans[span_index][0] <= start < spans[span_index][1]:
            targets[t] = True
    if max_length is not None:
        ids, targets = ids[:max_length], targets[:max_length]
    return EncodedChat(ids, targets)


# A conversation that walks every branch of the renderer; its rendering is what the fingerprint hashes.
_CANONICAL = [
    {"role": "system", "content": "S"}, {"role": "user", "content": "U1"}, {"role": "assistant", "content": "A1"},
    {"role": "user", "content": "U2"}, {"role": "assistant", "content": "\nA2"},
]


def chat_template_fingerprint() -> str:
    """A short hash of the chat format; agent adapters record it and generators check it."""
    text = render_chat(_CANONICAL).text + "\x1f" + generation_prompt(_CANONICAL[:2])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
