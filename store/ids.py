"""Run and server ids and artifact paths: the untrusted names that could reach SQL or the disk.

Run and server ids are generated here and checked against one strict pattern at every public entry
point of the store, so a hostile id never reaches a query or a path. Artifact paths are resolved (symlinks
included) and refused unless they stay inside `runs_root/<run_id>/`.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TypeGuard

from store.errors import InvalidRunIdError, InvalidServerIdError, UnsafePathError

RUN_ID_PATTERN = r"r\d{8}-\d{6}-[0-9a-f]{8}"
_RUN_ID_RE = re.compile(rf"\A{RUN_ID_PATTERN}\Z")
_SERVER_ID_RE = re.compile(r"\Asrv-\d{8}-\d{6}-[0-9a-f]{8}\Z")
_ARTIFACT_KIND_RE = re.compile(r"\A[a-z][a-z0-9_-]{0,31}\Z")
_SHA256_RE = re.compile(r"\A[0-9a-f]{64}\Z")


def _stamp(now: datetime | None) -> str:
    """UTC `YYYYMMDD-HHMMSS-` + 32 random bits in hex: sortable by time, unique in practice."""
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(4)}"


def new_run_id(now: datetime | None = None) -> str:
    """A sortable, unique run id: `r` + UTC `YYYYMMDD-HHMMSS` + 32 random bits in hex."""
    return f"r{_stamp(now)}"


def new_server_id(now: datetime | None = None) -> str:
    """A sortable, unique server id: `srv-` + UTC `YYYYMMDD-HHMMSS` + 32 random bits in hex."""
    return f"srv-{_stamp(now)}"


def is_run_id(value: object) -> TypeGuard[str]:
    """True when value is a string matching the run id pattern exactly."""
    return isinstance(value, str) and _RUN_ID_RE.match(value) is not None


def validate_run_id(value: object) -> str:
    """Return value unchanged if it is a run id, else raise InvalidRunIdError naming the pattern."""
    if not is_run_id(value):
        shown = repr(value)[:80]
        raise InvalidRunIdError(
            f"invalid run id {shown}: expected r<YYYYMMDD>-<HHMMSS>-<8 hex>, e.g. r20250101-120000-1a2b3c4d"
        )
    return value


def validate_server_id(value: object) -> str:
    """Return value unchanged if it is a server id, else raise InvalidServerIdError naming the pattern."""
    if not isinstance(value, str) or not _SERVER_ID_RE.match(value):
        raise InvalidServerIdError(
            f"invalid server id {repr(value)[:80]}: expected srv-<YYYYMMDD>-<HHMMSS>-<8 hex>, "
            "e.g. srv-20250101-120000-1a2b3c4d"
        )
    return value


def validate_artifact_kind(kind: str) -> str:
    """Artifact kinds are short lowercase words (adapter, checkpoint, eval_report)."""
    if not isinstance(kind, str) or not _ARTIFACT_KIND_RE.match(kind):
        raise ValueError(f"invalid artifact kind {kind!r}: lowercase letters, digits, _ or -, at most 32")
    return kind


def validate_sha256(digest: str) -> str:
    """A lowercase hex SHA-256 digest (64 characters)."""
    if not isinstance(digest, str) or not _SHA256_RE.match(digest):
        raise ValueError(f"invalid sha256 {digest!r}: expected 64 lowercase hex characters")
    return digest


def normalize_rel_path(rel_path: str | PurePosixPath) -> str:
    """The artifact path as a clean POSIX relative path, or UnsafePathError.

    Purely lexical (no disk access), so it also guards rows written without a runs root: absolute
    paths, drive letters, `..` components, backslashes, NUL bytes and empty paths are refused.
    """
    text = str(rel_path)
    if not text or "\x00" in text or "\\" in text:
        raise UnsafePathError(f"unsafe artifact path {text!r}: empty, NUL byte or backslash")
    if PureWindowsPath(text).drive or PurePosixPath(text).is_absolute():
        raise UnsafePathError(f"unsafe artifact path {text!r}: must be relative to the run folder")
    parts = [p for p in PurePosixPath(text).parts if p != "."]
    if not parts or ".." in parts:
        raise UnsafePathError(f"unsafe artifact path {text!r}: must name a file inside the run folder")
    return "/".join(parts)


def safe_artifact_path(runs_root: Path | str, run_id: str, rel_path: str | PurePosixPath) -> Path:
    """Absolute path of an artifact, refused unless it resolves inside `runs_root/<run_id>/`.

    Resolving follows symlinks that already exist, so a link pointing out of the run folder is
    caught too, not only a literal `..`.
    """
    validate_run_id(run_id)
    clean = normalize_rel_path(rel_path)
    run_dir = Path(runs_root).expanduser().resolve() / run_id  # not resolved: a linked run folder escapes too
    target = (run_dir / clean).resolve()
    if target == run_dir or not target.is_relative_to(run_dir):
        raise UnsafePathError(f"unsafe artifact path {str(rel_path)!r}: resolves outside {run_dir}")
    return target


def file_digest(path: Path | str, chunk_size: int = 1 << 20) -> tuple[str, int]:
    """(sha256 hex, size in bytes) of a file, read in chunks so adapters of any size fit in memory."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
