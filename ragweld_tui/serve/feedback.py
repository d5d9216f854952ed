"""The feedback loop's file: which shown documents users found relevant, as training triplets.

Each accepted `POST /v1/feedback` becomes one line of triplet JSONL, the format `ragweld-tui --run`
trains on (`[data] path = ".../feedback.jsonl"`):

    {"query": ..., "positives": [relevant texts], "negatives": [the other shown texts],
     "source": "feedback", "request_id": ..., "received_at": ...}

A line is appended with one `write` on an O_APPEND descriptor under an exclusive `flock` (several
servers may share the file), then fsync'd, and only then acknowledged: an acknowledged line
survives a kill -9 or a power cut. A line whose write was cut short by a crash was never
acknowledged; opening the log drops such a torn tail, so the file always holds whole lines.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragweld_tui.serve.api_input import FeedbackRequest, invalid

SOURCE = "feedback"


class FeedbackLog:
    """Append-only triplet JSONL with atomic, durable line appends."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.appended = 0
        self.repaired_bytes = 0

    def open(self) -> None:
        """Create the file (and folder) if needed and drop a torn last line left by a crash."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if size:
                keep = _whole_lines_size(fd, size)
                if keep < size:
                    os.ftruncate(fd, keep)
                    os.fsync(fd)
                    self.repaired_bytes = size - keep
        finally:
            os.close(fd)

    def append(self, row: dict[str, Any]) -> None:
        """Write `row` as one line and fsync it (blocking: call from a thread)."""
        data = (json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            self.appended += 1


def _whole_lines_size(fd: int, size: int) -> int:
    """The length of the file up to and including its last newline."""
    block = 1 << 16
    end = size
    while end > 0:
        start = max(0, end - block)
        chunk = os.pread(fd, end - start, start)
        cut = chunk.rfind(b"\n")
        if cut >= 0:
            return start + cut + 1
        end = start
    return 0


@dataclass(frozen=True)
class Shown:
    """What a rerank call showed: its query and documents (with the client's ids, if any)."""

    query: str
    documents: list[str]
    ids: list[str | None]


class RecentRequests:
    """The last rerank calls by request id, so feedback can name documents by index alone.

    Bounded by count and by characters held, oldest dropped first.
    """

    def __init__(self, max_requests: int = 1024, max_chars: int = 32 * 1024 * 1024) -> None:
        self.max_requests, self.max_chars = max_requests, max_chars
        self._items: OrderedDict[str, Shown] = OrderedDict()
        self._chars = 0

    def remember(self, request_id: str, shown: Shown) -> None:
        size = _chars(shown)
        if size > self.max_chars:
            return
        self._items[request_id] = shown
        self._chars += size
        while len(self._items) > self.max_requests or self._chars > self.max_chars:
            _, old = self._items.popitem(last=False)
            self._chars -= _chars(old)

    def get(self, request_id: str) -> Shown | None:
        return self._items.get(request_id)


def _chars(shown: Shown) -> int:
    return len(shown.query) + sum(len(d) for d in shown.documents)


def feedback_row(request: FeedbackRequest, recent: RecentRequests) -> dict[str, Any]:
    """The triplet line for a feedback request (ApiError for ids or indices that name nothing)."""
    shown = None
    if request.request_id is not None:
        shown = recent.get(request.request_id)
        if shown is None and request.documents is None:
            raise invalid("request_id", f"no recent rerank call has id {request.request_id!r} (this server keeps "
                                        "the last ones only); send the query and documents instead")
    query = request.query if request.query is not None else shown.query if shown else None
    documents = request.documents if request.documents is not None else shown.documents if shown else None
    ids = request.document_ids if request.documents is not None else shown.ids if shown else None
    assert query is not None and documents is not None and ids is not None  # parse_feedback checked
    chosen: set[int] = set()
    for i, item in enumerate(request.relevant):
        chosen.add(_resolve(item, documents, ids, f"relevant[{i}]"))
    positives = [documents[i] for i in sorted(chosen)]
    negatives = [d for i, d in enumerate(documents) if i not in chosen and d not in positives]
    row: dict[str, Any] = {"query": query, "positives": positives, "negatives": negatives, "source": SOURCE}
    if request.request_id is not None:
        row["request_id"] = request.request_id
    row["received_at"] = round(time.time(), 3)
    return row


def _resolve(item: int | str, documents: list[str], ids: list[str | None], field: str) -> int:
    if isinstance(item, int):
        if item >= len(documents):
            raise invalid(field, f"index {item} is out of range ({len(documents)} documents were shown)")
        return item
    if item in ids:
        return ids.index(item)
    if item in documents:
        return documents.index(item)
    raise invalid(field, "names no document shown (neither an id nor the text of one)")
