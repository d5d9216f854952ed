"""Parsing and checking the HTTP API's request bodies: every problem is an `ApiError` naming the field.

Two rerank request shapes are accepted on the same routes:

- Cohere / Jina: `{"model"?, "query", "documents": [str | {"text": str}], "top_n"?, "return_documents"?}`
- Hugging Face TEI: `{"query", "texts": [str], "raw_scores"?, "return_text"?, "truncate"?, ...}`

The shape is told by the field holding the documents (`documents` or `texts`). Unknown fields are
refused rather than ignored, so a misspelt `top_k` is an error instead of a silently ignored option;
the options of those APIs that do not apply here (chunking, truncation) are accepted and named in
the README.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from backends.settings import ServeConfig

# Accepted for compatibility and ignored: documents are never chunked, and only the document part of
# a prompt is ever cut to [prompt].max_length (as in `ragweld-tui score`).
COHERE_IGNORED = frozenset({"max_chunks_per_doc", "rank_fields", "max_tokens_per_doc"})
TEI_IGNORED = frozenset({"truncate", "truncation_direction"})
COHERE_FIELDS = frozenset({"model", "query", "documents", "top_n", "return_documents"}) | COHERE_IGNORED
TEI_FIELDS = frozenset({"query", "texts", "raw_scores", "return_text"}) | TEI_IGNORED
FEEDBACK_FIELDS = frozenset({"query", "documents", "relevant", "request_id"})


class ApiError(Exception):
    """A client error: HTTP status, a short code, the offending field (JSON path) and a message."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        return {"error": error}


def invalid(field: str | None, message: str) -> ApiError:
    """422: the body is JSON but a field is missing, of the wrong type or out of range."""
    return ApiError(422, "invalid_request", f"{field}: {message}" if field else message, field)


def too_large(field: str, message: str) -> ApiError:
    """413: a limit of [serve] is exceeded."""
    return ApiError(413, "too_large", f"{field}: {message}", field)


def decode_json(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 400 saying why it is not one."""
    try:
        data = json.loads(body.decode("utf-8"))  # decoded here: json.loads(bytes) would guess UTF-16/32
    except UnicodeDecodeError as exc:
        raise ApiError(400, "invalid_json", f"the body is not UTF-8 text (byte {exc.start + 1})") from None
    except json.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON ({exc.msg} at line {exc.lineno} "
                                            f"column {exc.colno})") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", f"the body must be a JSON object, not {_type(data)}")
    return data


@dataclass(frozen=True)
class RerankRequest:
    """A checked rerank request, in either shape."""

    shape: Literal["cohere", "tei"]
    query: str
    documents: list[str]
    top_n: int | None = None
    return_documents: bool = False
    raw_scores: bool = False
    model: str | None = None
    document_ids: list[str | None] | None = None  # the `id` of each document object, if given


def parse_rerank(data: dict[str, Any], limits: ServeConfig) -> RerankRequest:
    """Check a decoded rerank body against the API shapes and the [serve] limits."""
    if "documents" in data and "texts" in data:
        raise invalid(None, "give the documents as 'documents' (Cohere/Jina) or 'texts' (TEI), not both")
    if "texts" in data:
        _refuse_unknown(data, TEI_FIELDS)
        query = _query(data, limits)
        texts = _documents(data, "texts", limits, allow_objects=False)
        return RerankRequest("tei", query, texts, return_documents=_bool(data, "return_text"),
                             raw_scores=_bool(data, "raw_scores"))
    if "documents" not in data:
        raise invalid("documents", "missing (a list of strings or {\"text\": ...} objects; TEI clients send 'texts')")
    _refuse_unknown(data, COHERE_FIELDS)
    query = _query(data, limits)
    documents = _documents(data, "documents", limits, allow_objects=True)
    top_n = data.get("top_n")
    if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1):
        raise invalid("top_n", f"must be a positive integer, got {json.dumps(top_n)}")
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise invalid("model", f"must be a string, got {_type(model)}")
    ids = [_document_id(item, i) for i, item in enumerate(data["documents"])]
    return RerankRequest("cohere", query, documents, top_n=top_n,
                         return_documents=_bool(data, "return_documents"), model=model, document_ids=ids)


@dataclass(frozen=True)
class FeedbackRequest:
    """Which of the documents shown for a query were relevant; documents may come from a rerank call."""

    query: str | None
    documents: list[str] | None
    document_ids: list[str | None] | None  # the `id` of each document object, if given
    relevant: list[int | str]
    request_id: str | None


def parse_feedback(data: dict[str, Any], limits: ServeConfig) -> FeedbackRequest:
    """Check a decoded feedback body: `relevant` holds indices into `documents` (or into the documents
    of the rerank call `request_id`), or the `id`s or texts of documents."""
    _refuse_unknown(data, FEEDBACK_FIELDS)
    request_id = data.get("request_id")
    if request_id is not None and (not isinstance(request_id, str) or not request_id.strip()):
        raise invalid("request_id", "must be the non-empty id of a rerank response")
    if request_id is None and "documents" not in data:
        raise invalid("documents", "missing: give the documents shown, or the request_id of the rerank call")
    if request_id is None and "query" not in data:
        raise invalid("query", "missing: give the query, or the request_id of the rerank call")
    query = _query(data, limits) if "query" in data else None
    documents = _documents(data, "documents", limits, allow_objects=True) if "documents" in data else None
    ids = None if documents is None else [_document_id(item, i) for i, item in enumerate(data["documents"])]
    relevant = data.get("relevant")
    if not isinstance(relevant, list) or not relevant:
        raise invalid("relevant", "must be a non-empty list of document indices (or document texts)")
    for i, item in enumerate(relevant):
        if isinstance(item, bool) or not isinstance(item, (int, str)):
            raise invalid(f"relevant[{i}]", f"must be a document index or text, got {_type(item)}")
        if isinstance(item, int) and item < 0:
            raise invalid(f"relevant[{i}]", f"index {item} is negative")
    return FeedbackRequest(query, documents, ids, list(relevant), request_id)


def _document_id(item: object, index: int) -> str | None:
    if not isinstance(item, dict) or "id" not in item:
        return None
    value = item["id"]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise invalid(f"documents[{index}].id", f"must be a string or a number, got {_type(value)}")
    return str(value)


def _refuse_unknown(data: dict[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise invalid(unknown[0], f"unknown field (accepted: {', '.join(sorted(allowed))})")


def _query(data: dict[str, Any], limits: ServeConfig) -> str:
    query = data.get("query")
    if query is None:
        raise invalid("query", "missing")
    if not isinstance(query, str):
        raise invalid("query", f"must be a string, got {_type(query)}")
    if not query.strip():
        raise invalid("query", "is empty")
    if len(query) > limits.max_query_chars:
        raise too_large("query", f"{len(query)} characters, more than [serve].max_query_chars = {limits.max_query_chars}")
    return query


def _documents(data: dict[str, Any], key: str, limits: ServeConfig, allow_objects: bool) -> list[str]:
    items = data.get(key)
    if not isinstance(items, list):
        raise invalid(key, f"must be a list of strings, got {_type(items)}")
    if not items:
        raise invalid(key, "is empty: give at least one document")
    if len(items) > limits.max_documents:
        raise too_large(key, f"{len(items)} documents, more than [serve].max_documents = {limits.max_documents}")
    out = []
    for i, item in enumerate(items):
        where = f"{key}[{i}]"
        if allow_objects and isinstance(item, dict):
            unknown = sorted(set(item) - {"text", "id"})  # "id": a client's own document id, kept as-is
            if unknown:
                raise invalid(f"{where}.{unknown[0]}", "unknown field (a document object holds 'text')")
            item, where = item.get("text"), f"{where}.text"
            if item is None:
                raise invalid(where, "missing")
        if not isinstance(item, str):
            kinds = "a string or an object with a string 'text'" if allow_objects else "a string"
            raise invalid(where, f"must be {kinds}, got {_type(item)}")
        if not item.strip():
            raise invalid(where, "is an empty document")
        if len(item) > limits.max_document_chars:
            raise too_large(where, f"{len(item)} characters, more than [serve].max_document_chars = "
                                   f"{limits.max_document_chars}")
        out.append(item)
    return out


def _bool(data: dict[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise invalid(key, f"must be true or false, got {json.dumps(value) if _jsonable(value) else _type(value)}")
    return value


def _jsonable(value: object) -> bool:
    return isinstance(value, (str, int, float)) or value is None


def _type(value: object) -> str:
    """JSON's name for a decoded value's type."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)
