"""Durable file writes: temp + fsync + rename + fsync of the folder, so a file is whole or absent.

A checkpoint or the telemetry origin written in place and not fsynced can be half there after a
crash or power loss; the next run then fails on a truncated file for good.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def fsync_dir(folder: Path) -> None:
    """Make renames and new names in `folder` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on a folder; the rename is still atomic
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def fsync_tree(folder: Path) -> None:
    """fsync every file under `folder` and the folders themselves (before renaming it into place)."""
    for root, _dirs, files in os.walk(folder):
        for name in files:
            fsync_file(Path(root) / name)
        fsync_dir(Path(root))


def write_durably(path: Path, write: Callable[[Path], object]) -> None:
    """Call `write(tmp)` for a temp file beside `path`, fsync it, rename it over `path`, fsync the folder."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    write(tmp)
    fsync_file(tmp)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def safetensors_intact(path: Path) -> bool:
    """Whether a safetensors file is whole: its header parses and its tensors end where the file ends."""
    import json
    import struct

    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length <= 0 or 8 + length > size:
                return False
            header = json.loads(handle.read(length))
        ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
        return bool(8 + length + max(ends, default=0) == size)
    except (OSError, ValueError, KeyError, TypeError, IndexError, struct.error):
        return False


def folder_intact(folder: Path, marker: str) -> bool:
    """A checkpoint folder is usable when its marker and every JSON and safetensors file in it are whole."""
    import json

    if not (folder / marker).is_file():
        return False
    for path in folder.iterdir():
        if path.suffix == ".safetensors" and not safetensors_intact(path):
            return False
        if path.suffix == ".json":
            try:
                json.loads(path.read_text())
            except (OSError, ValueError):
                return False
    return True


def newest_intact(root: Path, marker: str) -> tuple[Path | None, list[str]]:
    """The newest `step-*` folder under `root` that is whole, and the names of newer damaged ones skipped."""
    if not root.is_dir():
        return None, []
    skipped: list[str] = []
    for folder in sorted((p for p in root.iterdir() if p.name.startswith("step-")), reverse=True):
        if folder_intact(folder, marker):
            return folder, skipped
        skipped.append(folder.name)
    return None, skipped


def recover_swap(folder: Path) -> bool:
    """Finish a folder swap a crash cut between its two renames (`folder` moved to `.folder.old`, the new
    one not yet in place): put the old one back. Returns whether anything was repaired."""
    old = folder.with_name(f".{folder.name}.old")
    if not folder.exists() and old.is_dir():
        old.rename(folder)
        return True
    return False
