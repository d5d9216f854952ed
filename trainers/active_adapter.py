"""The active adapter path: immutable version folders and an atomically swapped symlink.

The active adapter path is a symlink to an immutable version folder next to it
(`<parent>/.versions/<name>/<run_id>`). Promoting copies the run's adapter into a temp folder,
fsyncs it, renames it into place, then replaces the symlink with `os.replace` — one atomic rename —
so a scorer reading the active path at any moment, or after a crash at any step, sees either the
complete old adapter or the complete new one. Old versions stay, which is what makes rollback a
pointer move.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from backends.adapters import MANIFEST, AdapterError, Manifest, verify_adapter

VERSIONS = ".versions"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_durably(src: Path, dest: Path) -> None:
    """Copy an adapter folder's files, the manifest last, each fsync'd."""
    dest.mkdir(parents=True)
    names = sorted(p.name for p in src.iterdir() if p.is_file() and p.name != MANIFEST) + [MANIFEST]
    for name in names:
        shutil.copyfile(src / name, dest / name)
        with (dest / name).open("rb+") as handle:
            os.fsync(handle.fileno())
    _fsync_dir(dest)


def version_dir(active: Path, run_id: str) -> Path:
    return active.parent / VERSIONS / active.name / run_id


def install_version(adapter_dir: Path, active: Path, run_id: str) -> Path:
    """Make (or reuse) the immutable version folder for a run's adapter; verified before and after."""
    verify_adapter(adapter_dir)
    target = version_dir(active, run_id)
    if target.is_dir():
        verify_adapter(target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{run_id}.", dir=target.parent))
    try:
        tmp.rmdir()
        _copy_durably(adapter_dir, tmp)
        verify_adapter(tmp)
        os.rename(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def point_active(active: Path, target: Path | None) -> None:
    """Atomically make `active` a symlink to `target` (None: remove it, serving the plain base)."""
    active.parent.mkdir(parents=True, exist_ok=True)
    if active.exists() and not active.is_symlink():
        # A folder placed by hand: keep it as a version so nothing is lost, then manage it as a link.
        os.rename(active, version_dir(active, f"manual-{os.getpid()}-{int(os.path.getmtime(active))}"))
    if target is None:
        if active.is_symlink():
            active.unlink()
        _fsync_dir(active.parent)
        return
    link_tmp = active.parent / f".{active.name}.link-{os.getpid()}"
    if link_tmp.is_symlink() or link_tmp.exists():
        link_tmp.unlink()
    os.symlink(os.path.relpath(target, active.parent), link_tmp)
    os.replace(link_tmp, active)
    _fsync_dir(active.parent)


def verified_manifest(adapter_dir: Path) -> Manifest | None:
    try:
        return verify_adapter(adapter_dir)
    except AdapterError:
        return None
