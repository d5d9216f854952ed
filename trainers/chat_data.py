"""Chat training data: mlx-lm's `{"messages": [...]}` and `{"prompt", "completion"}` JSONL, or the demo.

Every line is checked before anything is trained (roles, string contents, an assistant reply last,
no images or tool turns, no chat markup inside contents), and any problem is a DataError naming
`file:line`, so bad data fails before a run exists. The dev split is by a hash of (seed, content),
independent of file order, so the baseline and every evaluation of a run see the same conversations.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backends.chat_template import ChatFormatError, check_messages
from trainers.errors import DataError
from trainers.jsonl import iter_jsonl, string_field

FINGERPRINT_CHARS = 16


@dataclass(frozen=True)
class ChatExample:
    """One conversation (validated {role, content} messages) and where it came from."""

    messages: tuple[dict[str, str], ...]
    source: str

    def key(self) -> str:
        return json.dumps(self.messages, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


@dataclass(frozen=True)
class ChatReport:
    """What the loader found, for the log and the run's record."""

    source: str
    format: str
    n_conversations: int
    n_messages_form: int
    n_prompt_completion: int
    n_assistant_turns: int
    n_multi_turn: int

    def summary(self) -> str:
        return (f"chat data ({self.format}) from {self.source}: {self.n_conversations} conversations "
                f"({self.n_messages_form} messages, {self.n_prompt_completion} prompt/completion; "
                f"{self.n_multi_turn} multi-turn), {self.n_assistant_turns} assistant turns")


@dataclass(frozen=True)
class ChatDataset:
    """The conversations, the report and a content fingerprint."""

    examples: list[ChatExample]
    report: ChatReport
    fingerprint: str

    def __len__(self) -> int:
        return len(self.examples)


def fingerprint_chats(examples: Sequence[ChatExample]) -> str:
    """Short sha256 of the canonical content, in order (the same chats give the same fingerprint)."""
    digest = hashlib.sha256()
    for ex in examples:
        digest.update(ex.key().encode("utf-8") + b"\n")
    return digest.hexdigest()[:FINGERPRINT_CHARS]


def parse_chat_line(obj: dict[str, Any], path: Path, line: int) -> tuple[list[dict[str, str]], str]:
    """One JSONL object as validated messages and its form ("messages" or "prompt_completion")."""
    has_messages, has_pc = "messages" in obj, "prompt" in obj or "completion" in obj
    if has_messages and has_pc:
        raise DataError("give either 'messages' or 'prompt'/'completion', not both", path, line)
    if has_messages:
        raw, form = obj["messages"], "messages"
    elif has_pc:
        prompt = string_field(obj, "prompt", path, line)
        completion = string_field(obj, "completion", path, line)
        raw, form = [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}], "prompt_completion"
    else:
        keys = ", ".join(sorted(obj)) or "none"
        raise DataError(f"expected a 'messages' list or 'prompt' and 'completion' strings (keys: {keys})", path, line)
    if "images" in obj or "image" in obj:
        raise DataError("images are not supported: this is a text-only chat model", path, line)
    if "tools" in obj:
        raise DataError("'tools' are not supported: train on system/user/assistant turns only", path, line)
    try:
        return check_messages(raw), form
    except ChatFormatError as exc:
        raise DataError(str(exc), path, line) from None


def load_chat_jsonl(path: Path) -> ChatDataset:
    """Read and validate every line of a chat JSONL file (errors name file:line)."""
    examples, forms = [], []
    for line, obj in iter_jsonl(path):
        messages, form = parse_chat_line(obj, path, line)
        examples.append(ChatExample(tuple(messages), f"{path}:{line}"))
        forms.append(form)
    if len(examples) < 2:
        raise DataError(f"need at least 2 conversations to split into train and dev (got {len(examples)})", path)
    return make_chat_dataset(examples, source=str(path), format="jsonl", forms=forms)


def make_chat_dataset(examples: Sequence[ChatExample], *, source: str, format: str,
                      forms: Sequence[str] | None = None) -> ChatDataset:
    forms = list(forms) if forms is not None else ["messages"] * len(examples)
    assistant_turns = [sum(m["role"] == "assistant" for m in ex.messages) for ex in examples]
    report = ChatReport(source, format, len(examples), forms.count("messages"), forms.count("prompt_completion"),
                        sum(assistant_turns), sum(1 for n in assistant_turns if n > 1))
    return ChatDataset(list(examples), report, fingerprint_chats(examples))


def split_chats(examples: Sequence[ChatExample], dev_fraction: float, seed: int) -> tuple[list[ChatExample], list[ChatExample]]:
    """Hold out round(n·dev_fraction) conversations (≥ 1, leaving ≥ 1) chosen by hash of (seed, content)."""
    n = len(examples)
    if n < 2:
        raise DataError(f"need at least 2 conversations to split into train and dev (got {n})")
    n_dev = min(n - 1, max(1, round(n * dev_fraction)))
    rank = sorted(range(n), key=lambda i: hashlib.sha256(f"{seed}\x00{examples[i].key()}".encode()).digest())
    dev = set(rank[:n_dev])
    return [ex for i, ex in enumerate(examples) if i not in dev], [ex for i, ex in enumerate(examples) if i in dev]
