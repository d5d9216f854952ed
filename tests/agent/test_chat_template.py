"""The Qwen3 chat template (thinking off): exact text, masking token by token, train = generate."""

from __future__ import annotations

import pytest

from backends.chat_template import (
    ChatFormatError, check_messages, encode_chat, generation_prompt, render_chat)
from tests.agent.helpers import chats

MULTI = [{"role": "system", "content": "S"}, {"role": "user", "content": "U1"}, {"role": "assistant", "content": "A1"},
         {"role": "user", "content": "U2"}, {"role": "assistant", "content": "\nA2"}]


def test_renders_what_qwen3_renders_with_thinking_off() -> None:
    """Qwen3's template with enable_thinking=False: an empty think block opens the reply after the
    last user turn; earlier assistant turns have none; leading newlines of that reply are dropped."""
    single = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    assert render_chat(single).text == (
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nyo<|im_end|>\n")
    assert render_chat(MULTI).text == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n"
        "<|im_start|>user\nU2<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nA2<|im_end|>\n")
    assert generation_prompt(MULTI[:2]) == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU1<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_embedded_tokenizer_template_matches_the_renderer(chat_tokenizer) -> None:
    for conversation in [MULTI, *chats()]:
        assert chat_tokenizer.apply_chat_template(conversation, tokenize=False, enable_thinking=False) == \
            render_chat(conversation).text
        assert chat_tokenizer.apply_chat_template(conversation[:-1], tokenize=False, add_generation_prompt=True,
                                                  enable_thinking=False) == generation_prompt(conversation[:-1])


@pytest.mark.parametrize("train_on", ["all", "last"])
def test_loss_falls_only_on_assistant_tokens(chat_tokenizer, train_on: str) -> None:
    """Token by token: a token is a target exactly when it starts inside an assistant reply (or is the
    `<|im_end|>` closing one); with train_on="last" only the final reply counts."""
    conversation = chats()[2]
    text = render_chat(conversation).text
    spans, cursor = [], 0
    for message in conversation:  # the replies located independently of the renderer's own spans
        start = text.index(message["content"], cursor)
        cursor = start + len(message["content"])
        if message["role"] == "assistant":
            spans.append((start, cursor + len("<|im_end|>")))
    spans = spans[-1:] if train_on == "last" else spans
    encoded = encode_chat(chat_tokenizer, conversation, train_on=train_on)
    position = 0
    for token, target in zip(encoded.ids, encoded.targets):
        piece = chat_tokenizer.decode([token])
        assert text[position:position + len(piece)] == piece
        assert target == any(a <= position < b for a, b in spans), (position, piece, target)
        position += len(piece)
    assert position == len(text)
    learned = chat_tokenizer.decode([t for t, flag in zip(encoded.ids, encoded.targets) if flag])
    replies = [m["content"] for m in conversation if m["role"] == "assistant"]
    assert learned == "".join(r + "<|im_end|>" for r in (replies[-1:] if train_on == "last" else replies))


def test_training_rows_start_with_the_generation_prompt(chat_model_dir, chat_tokenizer) -> None:
    """What the generator feeds the model is, token for token, what the trainer trained on before
    the reply, and the reply's first token is the first target."""
    from backends.generator import ChatGenerator, GeneratorSettings

    generator = ChatGenerator.load(GeneratorSettings(str(chat_model_dir), backend="torch"))
    try:
        for conversation in chats():
            prompt = generator.prompt_ids(conversation[:-1])
            row = encode_chat(chat_tokenizer, conversation, train_on="last")
            assert row.ids[:len(prompt)] == prompt
            assert not any(row.targets[:len(prompt)]) and row.targets[len(prompt)]
    finally:
        generator.close()


@pytest.mark.parametrize(("messages", "message"), [
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x.png"}}]}], "images are not supported"),
    ([{"role": "user", "content": "hi", "images": ["x.png"]}], "images are not supported"),
    ([{"role": "tool", "content": "42"}], "tool calls are not supported"),
    ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "<think>hm</think>ok"}], "reserved token"),
    ([{"role": "user", "content": "hi"}], "last message must be the assistant's reply"),
    ([{"role": "assistant", "content": "hi"}], "no user message"),
    ([], "empty"),
])
def test_bad_conversations_are_refused(messages: list, message: str) -> None:
    with pytest.raises(ChatFormatError, match=message):
        check_messages(messages)


def test_generation_needs_a_user_turn_last() -> None:
    with pytest.raises(ChatFormatError, match="last message must be from the user"):
        check_messages(chats()[0], for_generation=True)
    assert check_messages(chats()[0][:1], for_generation=True) == chats()[0][:1]
