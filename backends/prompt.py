"""The Qwen3-Reranker prompt: exact template, its fingerprint, and document-only truncation.

The model was trained on exactly this text, so any drift (a missing newline, a cut suffix) makes
scores near random. Tokenization is split in two cacheable halves — the per-query head ending in
`<Document>:` and the document starting with its leading space — which yields the same ids as
tokenizing the whole body at once, because the Qwen pre-tokenizer never joins `:` with the space.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
    'Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
)
BODY_FORMAT = "<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {doc}"
SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
YES_TOKEN = "yes"
NO_TOKEN = "no"


class PromptError(ValueError):
    """An input that cannot become a valid reranker prompt (empty query, over-long query, ...)."""


def template_fingerprint() -> str:
    """A short hash of prefix, body format, suffix and answer tokens; adapters record it."""
    text = "\x1f".join((PREFIX, BODY_FORMAT, SUFFIX, YES_TOKEN, NO_TOKEN))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def format_prompt(query: str, doc: str, instruction: str = DEFAULT_INSTRUCTION) -> str:
    """The whole prompt as one string (what the model card builds)."""
    return PREFIX + BODY_FORMAT.format(instruction=instruction, query=query, doc=doc) + SUFFIX


def resolve_answer_ids(tokenizer: Any) -> tuple[int, int]:
    """Return the (yes, no) token ids, refusing a tokenizer where either is not one distinct token."""
    ids = []
    for word in (YES_TOKEN, NO_TOKEN):
        encoded = tokenizer.encode(word, add_special_tokens=False)
        if len(encoded) != 1:
            raise PromptError(
                f"tokenizer encodes {word!r} as {len(encoded)} tokens {encoded}; a Qwen3 reranker "
                "tokenizer must encode 'yes' and 'no' as single tokens"
            )
        ids.append(int(encoded[0]))
    if ids[0] == ids[1]:
        raise PromptError(f"tokenizer maps 'yes' and 'no' to the same id {ids[0]}")
    return ids[0], ids[1]


@dataclass(frozen=True)
class PromptBuilder:
    """Turns (query, documents) into token ids, truncating only the documents to `max_length`."""

    tokenizer: Any
    instruction: str = DEFAULT_INSTRUCTION
    max_length: int = 8192
    # The encoded prompt prefix and suffix, made once in __post_init__.
    _prefix: list[int] = field(init=False, repr=False, compare=False)
    _suffix: list[int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        encode = self._encode
        object.__setattr__(self, "_prefix", encode(PREFIX))
        object.__setattr__(self, "_suffix", encode(SUFFIX))

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def query_head(self, query: str) -> list[int]:
        """Prefix + instruction + query up to and including `<Document>:` (no trailing space)."""
        if not isinstance(query, str) or not query.strip():
            raise PromptError("the query is empty")
        head_text = BODY_FORMAT.format(instruction=self.instruction, query=query, doc="")[:-1]
        return self._prefix + self._encode(head_text)

    def build(self, query: str, docs: Sequence[str]) -> list[list[int]]:
        """Token ids for every (query, doc) row; each fits in max_length with query and suffix intact."""
        head, tails = self.build_parts(query, docs)
        return [head + tail for tail in tails]

    def build_parts(self, query: str, docs: Sequence[str]) -> tuple[list[int], list[list[int]]]:
        """The shared head (prefix, instruction, query) and each row's tail (document + suffix).

        Rows are head + tail; a scorer can run the head once and reuse its key/value cache.
        """
        head = self.query_head(query)
        budget = self.max_length - len(head) - len(self._suffix)
        if budget < 1:
            raise PromptError(
                f"the query alone takes {len(head) + len(self._suffix)} tokens with the prompt, over "
                f"max_length {self.max_length}; shorten the query or raise [prompt].max_length"
            )
        for index, doc in enumerate(docs):
            if not isinstance(doc, str):
                raise PromptError(f"document {index} is {type(doc).__name__}, not a string")
        if not docs:
            return head, []
        # One batched call to the fast tokenizer; the leading space belongs to the document.
        encoded = self.tokenizer([" " + doc for doc in docs], add_special_tokens=False)["input_ids"]
        return head, [list(ids[:budget]) + self._suffix for ids in encoded]
