"""Opening SQLite connections with the store's pragmas, and the write-transaction helper.

Every connection: WAL (readers never block the writer and vice versa), `synchronous=NORMAL` (a
committed transaction survives a process crash; only an OS crash or power loss can drop the last
ones), `foreign_keys=ON`, and a busy timeout so lock waits queue up instead of failing. Writes go in
`BEGIN IMMEDIATE` so a transaction takes the write lock up front and never fails half way through
on a lock upgrade. WAL needs shared memory between processes, which network filesystems do not
provide; that is detected when the store opens rather than as corruption later.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

from store.errors import NotAStoreError, StoreError, WalUnsupportedError

DEFAULT_BUSY_TIMEOUT_S = 15.0
NETWORK_FS_TYPES = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "9p", "fuse.sshfs", "sshfs", "davfs", "fuse.rclone"}
)


def _unescape_mount(field: str) -> str:
    """Mount points in mountinfo escape space, tab, newline and backslash as octal."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def filesystem_type(path: Path, mountinfo: str | None = None) -> str | None:
    """The filesystem type holding `path` (Linux, from /proc/self/mountinfo), or None if unknown."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
    target = str(path)
    best, best_type = "", None
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        if " - " not in line or len(fields) < 5:
            continue
        mount_point = _unescape_mount(fields[4])
        fs_type = line.split(" - ", 1)[1].split(" ", 1)[0]
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, best_type = mount_point, fs_type
    return best_type


def _wal_advice(path: Path, detail: str) -> str:
    return (
        f"the store {path} cannot use SQLite WAL ({detail}); network filesystems such as NFS, SMB/CIFS "
        "or sshfs do not support it. Put the store on a local disk ([store].path in the config or --db)."
    )


def check_local_filesystem(path: Path, mountinfo: str | None = None) -> None:
    """Refuse a store whose folder is on a network filesystem, where WAL silently corrupts."""
    fs_type = filesystem_type(path.resolve().parent, mountinfo)
    if fs_type is not None and fs_type.lower() in NETWORK_FS_TYPES:
        raise WalUnsupportedError(_wal_advice(path, f"it is on a {fs_type} filesystem"))


def _is_locked(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


async def connect(
    path: Path | str, *, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S, check_fs: bool = True
) -> aiosqlite.Connection:
    """Open an autocommit aiosqlite connection with WAL, NORMAL sync, foreign keys and a busy timeout.

    Autocommit (`isolation_level=None`) means a plain SELECT is its own short read transaction and
    writes happen only inside explicit `BEGIN IMMEDIATE` blocks.
    """
    path = Path(path) if str(path) != ":memory:" else Path(":memory:")
    if check_fs and str(path) != ":memory:":
        check_local_filesystem(path.absolute())
    try:
        conn = await aiosqlite.connect(str(path), isolation_level=None, timeout=busy_timeout_s)
    except sqlite3.Error as exc:  # a folder, an unreadable file, a missing or read-only parent
        raise StoreError(f"cannot open the store {path}: {exc}") from None
    try:
        await conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        mode = await _set_wal(conn, busy_timeout_s)
        if mode != "wal":
            raise WalUnsupportedError(_wal_advice(path, f"journal_mode stayed {mode!r}"))
        await conn.execute("PRAGMA synchronous = NORMAL")
        await conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.DatabaseError as exc:
        await conn.close()
        if "not a database" in str(exc) or "malformed" in str(exc):
            raise NotAStoreError(
                f"{path} is not a SQLite database ({exc}); move it away or choose another --db"
            ) from None
        raise StoreError(f"cannot open the store {path}: {exc}") from None
    except BaseException:
        await conn.close()
        raise
    return conn


async def _set_wal(conn: aiosqlite.Connection, busy_timeout_s: float) -> str:
    """Switch to WAL, retrying while another process creating the same file holds it exclusively.

    Changing the journal mode of a fresh file needs an exclusive lock and can report "locked"
    without consulting the busy handler, so the wait is done here.
    """
    deadline = time.monotonic() + busy_timeout_s
    while True:
        try:
            async with conn.execute("PRAGMA journal_mode = WAL") as cursor:
                row = await cursor.fetchone()
            return str(row[0]).lower() if row else ""
        except sqlite3.OperationalError as exc:
            if not _is_locked(exc) or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.02)


@asynccontextmanager
async def immediate(conn: aiosqlite.Connection) -> AsyncIterator[aiosqlite.Connection]:
    """A `BEGIN IMMEDIATE` ... `COMMIT` block; any exception (or cancellation) rolls it back whole."""
    try:
        try:
            await conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "within a transaction" not in str(exc):
                raise
            # A caller cancelled while its BEGIN was queued left that transaction open; the caller
            # holds the writer lock, so nothing else can be using it.
            await conn.execute("ROLLBACK")
            await conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if _is_locked(exc):
            raise StoreError(f"the store is busy: another process held the write lock too long ({exc})") from None
        raise
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            try:
                await conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # SQLite already rolled back (e.g. after SQLITE_FULL); nothing left to undo
        raise
    else:
        await conn.execute("COMMIT")


async def fetch_all(conn: aiosqlite.Connection, sql: str, params: tuple[object, ...] | dict[str, object] = ()) -> list[sqlite3.Row]:
    """Run a query and read every row at once, so the read transaction ends before returning."""
    async with conn.execute(sql, params) as cursor:
        return list(await cursor.fetchall())


async def fetch_one(conn: aiosqlite.Connection, sql: str, params: tuple[object, ...] | dict[str, object] = ()) -> sqlite3.Row | None:
    """Run a query and return its first row (or None); the cursor is closed right away."""
    async with conn.execute(sql, params) as cursor:
        return await cursor.fetchone()
