"""The per-folder journal (``.journal``): the one durable write of a single put.

Part of ``dq_stores.filesystem`` (its docstring describes the layout and the guarantees).

A put appends one record (the document, where it goes, its stamp and sha256) to the folder's
journal and syncs it (``fdatasync``): that is the commit point. The document file itself is then
written without fsync (in place, or renamed into place when new) and is, until the next
checkpoint, a cache of the record. A put used to cost a durable atomic write (temp file, fsync,
rename, fsync of the folder: two journal commits of the filesystem and the inode freed by the
rename); an append and one ``fdatasync`` cost about a third of that on ext4.

A checkpoint makes the files durable (``syncfs``: one flush for all of them, far cheaper than
one fsync per file) and empties the journal. It runs when the journal passes ``CHECKPOINT_BYTES``,
before any write that is not journaled (a delete must never be undone by a replay), and in a
repair, which first replays the records (after a crash the files may be torn or lost; the
records are not). Only Linux uses the journal: it needs the lock marker's boot id to tell that a
restart lost unsynced files (``fsio.BOOT_ID``); elsewhere puts stay durable atomic writes.

Record: one header line ``{"path": ..., "size": ..., "stamp": ..., "sha256": ...}`` (JSON, the
path relative to the folder with ``/``), the ``size`` document bytes, a newline. A torn tail (a
writer killed while appending) fails its size or hash check and ends the journal there: that put
never returned. Nothing here knows about artifacts or indexes.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass

from dq_stores.fsio import fsync_dir

__all__ = [
    "CHECKPOINT_BYTES",
    "JOURNAL_FILE",
    "Record",
    "append",
    "checkpoint",
    "read_records",
    "size",
    "truncate",
]

JOURNAL_FILE = ".journal"
CHECKPOINT_BYTES = 1 << 20
"""Journal size after which a put checkpoints (about 800 job runs: one ``syncfs`` of a few ms)."""


@dataclass(frozen=True, slots=True)
class Record:
    path: str
    """Relative to the folder, ``/``-separated."""
    stamp: int
    data: bytes


def _journal(folder: str) -> str:
    return os.path.join(folder, JOURNAL_FILE)


def size(folder: str) -> int:
    """Bytes in the folder's journal (0 when it has none)."""
    try:
        return os.stat(_journal(folder)).st_size
    except FileNotFoundError:
        return 0


def append(folder: str, path: str, stamp: int, data: bytes) -> tuple[int, int]:
    """Append one record and make it durable; return the journal's size before and after."""
    header = json.dumps(
        {"path": path, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "stamp": stamp},
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    record = b"".join((header, b"\n", data, b"\n"))
    journal = _journal(folder)
    try:
        fd = os.open(journal, os.O_WRONLY | os.O_CLOEXEC)
        created = False
    except FileNotFoundError:
        fd = os.open(journal, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)
        created = True
    try:
        start = os.fstat(fd).st_size
        view = memoryview(record)
        offset = start
        try:
            while view:
                written = os.pwrite(fd, view, offset)
                view, offset = view[written:], offset + written
            os.fdatasync(fd)
        except OSError as exc:
            # A half-written record must not stay in front of the next one. The error names the
            # document being put, not the journal (as an atomic write names its target).
            os.ftruncate(fd, start)
            raise OSError(exc.errno, exc.strerror or str(exc), os.path.join(folder, path)) from exc
        except BaseException:
            os.ftruncate(fd, start)
            raise
    finally:
        os.close(fd)
    if created:
        fsync_dir(folder)
    return start, offset


def truncate(folder: str, to: int) -> None:
    """Cut the journal back to ``to`` bytes, durably (the undo of ``append``)."""
    try:
        fd = os.open(_journal(folder), os.O_WRONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        if os.fstat(fd).st_size > to:
            os.ftruncate(fd, to)
            os.fdatasync(fd)
    finally:
        os.close(fd)


def read_records(folder: str) -> list[Record]:
    """The journal's complete records, oldest first (reading stops at a torn or foreign tail)."""
    try:
        with open(_journal(folder), "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return []
    records: list[Record] = []
    pos = 0
    while pos < len(raw):
        end = raw.find(b"\n", pos)
        if end < 0:
            break
        try:
            header = json.loads(raw[pos:end])
            path, stamp, length, digest = header["path"], header["stamp"], header["size"], header["sha256"]
        except (ValueError, KeyError, TypeError):
            break
        if not (isinstance(path, str) and isinstance(stamp, int) and isinstance(length, int)):
            break
        data = raw[end + 1 : end + 1 + length]
        if (
            len(data) != length
            or raw[end + 1 + length : end + 2 + length] != b"\n"
            or hashlib.sha256(data).hexdigest() != digest
        ):
            break
        records.append(Record(path, stamp, data))
        pos = end + 2 + length
    return records


def checkpoint(folder: str, *, replay: Callable[[list[Record]], None] | None = None) -> None:
    """Make what the journal holds durable in the files and empty it.

    ``replay(records)``: after a crash, first write the records back (the files may have lost
    them); it may write without fsync, the flush below covers it.
    """
    journal = _journal(folder)
    try:
        fd = os.open(journal, os.O_WRONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        if os.fstat(fd).st_size == 0:
            return
        if replay is not None:
            replay(read_records(folder))
        sync_filesystem(fd)
        os.ftruncate(fd, 0)
        os.fdatasync(fd)
    finally:
        os.close(fd)


_syncfs: Callable[[int], int] | None = None
_syncfs_loaded = False


def sync_filesystem(fd: int) -> None:
    """Flush every dirty file of the filesystem holding ``fd`` (Linux ``syncfs``; ``os.sync``
    where it is missing). One call writes the journaled files back in one batch.
    """
    global _syncfs, _syncfs_loaded
    if not _syncfs_loaded:
        try:
            # The running program's own symbols: libc on Linux, with no library lookup (which
            # ``ctypes.util.find_library`` would do by running ldconfig).
            libc = ctypes.CDLL(None, use_errno=True)
            _syncfs = libc.syncfs
        except (OSError, AttributeError):
            _syncfs = None
        _syncfs_loaded = True
    if _syncfs is None:
        os.sync()
        return
    if _syncfs(fd) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code) if code else "syncfs failed")
