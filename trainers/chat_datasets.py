"""Loading the agent's data from a `DataConfig`: the one entry point the agent plan calls.

No path means the bundled chat demo; a path must be a chat JSONL file. Kept apart from
`trainers.chat_data` (the format) and `trainers.chat_demo` (which builds on that format), so neither
imports the other's caller.
"""

from __future__ import annotations

from pathlib import Path

from trainers.chat_data import ChatDataset, load_chat_jsonl
from trainers.chat_demo import make_chat_demo
from trainers.errors import DataError
from trainers.settings import DataConfig


def load_chat_dataset(data: DataConfig) -> ChatDataset:
    """The agent's data a config names: a chat JSONL file, or (no path) the bundled demo."""
    if data.format not in ("auto", "chat"):
        raise DataError(f"data.format = {data.format!r} is reranker data; an agent run needs chat JSONL "
                        "(data.format = 'chat')")
    if data.path is None:
        return make_chat_demo()
    path = Path(data.path).expanduser()
    if not path.exists():
        raise DataError("data path not found", path)
    if not path.is_file():
        raise DataError("chat data must be a JSONL file", path)
    return load_chat_jsonl(path)
