"""Chat JSONL loading (both forms), errors naming file:line, the split, the batch stream, the demo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainers.chat_batches import ChatStream, micro_batches, tokenize_chats
from trainers.chat_data import ChatExample, load_chat_jsonl, split_chats
from trainers.chat_demo import make_chat_demo
from trainers.errors import DataError
from tests.agent.helpers import chats

BAD_LINES = [
    ('{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n{"messages": [\n',
     ":2:", "invalid JSON"),
    ('{"text": "hello"}\n', ":1:", "expected a 'messages' list or 'prompt' and 'completion'"),
    ('{"messages": [{"role": "user", "content": "q"}]}\n', ":1:", "last message must be the assistant's reply"),
    ('{"messages": [{"role": "tool", "content": "q"}, {"role": "assistant", "content": "a"}]}\n', ":1:", "role 'tool'"),
    ('{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "a.png"}}]},'
     ' {"role": "assistant", "content": "a"}]}\n', ":1:", "images are not supported"),
    ('{"prompt": "q", "completion": 3}\n', ":1:", "'completion' must be a string"),
    ('{"prompt": "q"}\n', ":1:", "missing field 'completion'"),
    ('{"messages": "hi"}\n', ":1:", "must be a list"),
    ('{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "  "}]}\n', ":1:", "is empty"),
]


def write_lines(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_both_forms_load_and_are_counted(tmp_path: Path) -> None:
    rows = [{"messages": c} for c in chats()] + [{"prompt": "Say hi.", "completion": "Hi."}]
    data = load_chat_jsonl(write_lines(tmp_path / "chats.jsonl", rows))
    report = data.report
    assert (report.n_conversations, report.n_messages_form, report.n_prompt_completion) == (5, 4, 1)
    assert report.n_multi_turn == 1 and report.n_assistant_turns == 6
    assert data.examples[-1].messages == ({"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi."})
    assert data.examples[0].source == f"{tmp_path / 'chats.jsonl'}:1"


@pytest.mark.parametrize(("text", "where", "what"), BAD_LINES)
def test_bad_lines_name_file_and_line(tmp_path: Path, text: str, where: str, what: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(text)
    with pytest.raises(DataError) as info:
        load_chat_jsonl(path)
    assert f"{path}{where}" in str(info.value) and what in str(info.value)


def test_split_depends_on_content_not_order() -> None:
    examples = make_chat_demo(40).examples
    train, dev = split_chats(examples, 0.25, seed=3)
    assert len(dev) == 10 and len(train) == 30 and not {e.key() for e in train} & {e.key() for e in dev}
    _, dev_reversed = split_chats(examples[::-1], 0.25, seed=3)
    assert {e.key() for e in dev} == {e.key() for e in dev_reversed}
    assert {e.key() for e in split_chats(examples, 0.25, seed=4)[1]} != {e.key() for e in dev}


def test_stream_is_bucketed_deterministic_and_covers_each_epoch() -> None:
    lengths = [5 + (i * 7) % 40 for i in range(50)]
    stream = ChatStream(lengths, batch_size=4, seed=1, bucket=2)
    again = ChatStream(lengths, batch_size=4, seed=1, bucket=2)
    per_epoch = stream.batches_per_epoch
    assert per_epoch == 13
    epoch = [stream.batch(s) for s in range(per_epoch)]
    assert sorted(i for b in epoch for i in b) == list(range(50))
    later = [stream.batch(s) for s in range(per_epoch, 2 * per_epoch)]
    assert again.batch(per_epoch + 3) == later[3]  # random access (a resumed run) gives the same batch
    assert later != epoch  # epochs reshuffle
    for batch in epoch:  # rows of a batch come from one length-sorted window: they are close in length
        assert all(lengths[a] <= lengths[b] for a, b in zip(batch, batch[1:]))


def test_micro_batches_split_a_step(chat_tokenizer) -> None:
    rows, cut, dropped = tokenize_chats(chat_tokenizer, [ChatExample(tuple(c), "t") for c in chats()], 64)
    assert (cut, dropped) == (0, 0)
    parts = micro_batches(rows, [0, 1, 2, 3], 3)
    assert [len(p.rows) for p in parts] == [2, 2] and sum(p.num_targets() for p in parts) == sum(
        r.num_targets() for r in rows)
    short, cut, dropped = tokenize_chats(chat_tokenizer, [ChatExample(tuple(chats()[2]), "t")], 12)
    assert (cut, dropped, short) == (1, 1, [])  # cut before any reply token: nothing to learn, left out


def test_demo_is_deterministic_unique_and_mixed() -> None:
    demo = make_chat_demo()
    assert demo.fingerprint == make_chat_demo().fingerprint and len(demo) == 240
    assert len({e.key() for e in demo.examples}) == 240
    assert demo.report.n_multi_turn == 24
