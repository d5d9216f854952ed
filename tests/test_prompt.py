"""The exact Qwen3-Reranker prompt, its tokenization, truncation and the yes/no ids."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from backends.embedded import TinyQwen3Spec, write_tiny_qwen3
from backends.prompt import PREFIX, SUFFIX, PromptBuilder, PromptError, format_prompt, resolve_answer_ids, template_fingerprint

TRICKY_DOCS = ["The cat", "1990 was a year", "(parenthesis) first", "\nnewline first", "  two spaces",
               ":colon", "'s quote", "日本語のテキスト", "", "ends with space ", "yes", "no"]


def test_prompt_text_is_the_model_card_text() -> None:
    assert PREFIX.startswith("<|im_start|>system\nJudge whether the Document meets the requirements")
    assert PREFIX.endswith('Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n')
    assert SUFFIX == "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    text = format_prompt("q", "d", "inst")
    assert "<Instruct>: inst\n<Query>: q\n<Document>: d<|im_end|>" in text
    assert template_fingerprint() == template_fingerprint() and len(template_fingerprint()) == 16


def test_qwen_token_ids(tiny_tokenizer) -> None:
    assert resolve_answer_ids(tiny_tokenizer) == (9693, 2152)
    im_start = tiny_tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert tiny_tokenizer.encode("<|im_start|>system\n", add_special_tokens=False) == [im_start, 8948, 198]
    assert tiny_tokenizer.convert_tokens_to_ids("</think>") == im_start + 24


def test_split_tokenization_equals_whole_string(tiny_tokenizer, cisi_docs) -> None:
    builder = PromptBuilder(tiny_tokenizer, max_length=100_000)
    docs = TRICKY_DOCS + cisi_docs[:200]
    rows = builder.build("what is  information retrieval?", docs)
    for doc, row in zip(docs, rows):
        whole = tiny_tokenizer.encode(format_prompt("what is  information retrieval?", doc), add_special_tokens=False)
        assert row == whole, doc


def test_truncation_cuts_only_the_document(tiny_tokenizer) -> None:
    builder = PromptBuilder(tiny_tokenizer, max_length=512)
    long_doc = " ".join(f"word{i}" for i in range(20_000))
    assert len(tiny_tokenizer.encode(long_doc, add_special_tokens=False)) > 20_000
    (row,) = builder.build("which words matter", [long_doc])
    assert len(row) <= 512
    text = tiny_tokenizer.decode(row)
    assert "<Query>: which words matter\n<Document>: word0 word1" in text
    assert text.endswith(SUFFIX)


def test_over_long_query_and_bad_inputs_are_refused(tiny_tokenizer) -> None:
    builder = PromptBuilder(tiny_tokenizer, max_length=64)
    with pytest.raises(PromptError, match="query alone"):
        builder.build("a very long query " * 50, ["doc"])
    with pytest.raises(PromptError, match="query is empty"):
        builder.build("   ", ["doc"])
    with pytest.raises(PromptError, match="document 1 is int"):
        PromptBuilder(tiny_tokenizer).build("q", ["ok", 3])  # type: ignore[list-item]


def test_tokenizer_with_multi_token_yes_is_refused() -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = {c: i for i, c in enumerate("abcdefghijklmnopqrstuvwxyz ")}
    backend = Tokenizer(models.BPE(vocab=chars, merges=[], unk_token=None))
    backend.add_tokens(["no"])
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend)
    assert len(tokenizer.encode("yes", add_special_tokens=False)) == 3
    with pytest.raises(PromptError, match="'yes' as 3 tokens"):
        resolve_answer_ids(tokenizer)


def test_embedded_model_is_byte_identical(tmp_path: Path) -> None:
    def digest(folder: Path) -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}

    first = write_tiny_qwen3(tmp_path / "a", TinyQwen3Spec())
    second = write_tiny_qwen3(tmp_path / "b", TinyQwen3Spec())
    assert digest(first) == digest(second)
    assert digest(write_tiny_qwen3(tmp_path / "c", TinyQwen3Spec(seed=5)))["model.safetensors"] != digest(first)["model.safetensors"]
