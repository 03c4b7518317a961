"""The write transaction of one critical section: durable and in-place file writes, with their undo.

Part of ``dq_stores.filesystem`` (its docstring describes the layout and the guarantees).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress

from dq_stores.filesystem import journal
from dq_stores.fsio import (
    ScopeLock,
    atomic_write,
    atomic_write_stream,
    fsync_dir,
    remove_path,
    trash_name,
)

# -- the write transaction ----------------------------------------------------------------------


class _Txn:
    """The file changes of one critical section, with their undo.

    The first change runs ``prepare`` and then marks every held lock dirty; ``rollback`` undoes
    changes newest first (used when a write fails with an ``OSError``); cleanup actions run after
    the index is written.
    """

    def __init__(self, locks: Sequence[ScopeLock], prepare: Callable[[], None] | None = None) -> None:
        self._locks = locks
        self._prepare = prepare
        self._undo: list[Callable[[], None]] = []
        self._cleanup: list[Callable[[], None]] = []
        self._unsynced: set[str] = set()
        self.journal_sizes: dict[str, int] = {}
        """Size of each folder's journal after this transaction appended to it."""
        self.started = False
        self.lazy = bool(locks) and all(lock.lazy_index for lock in locks)
        """Copies a repair restores (index, current files) may skip their fsync."""

    def _start(self) -> None:
        if not self.started:
            if self._prepare is not None:
                self._prepare()
            for lock in self._locks:
                lock.begin()
            self.started = True

    def write(
        self,
        path: str,
        data: bytes,
        old: tuple[bytes, int] | None,
        *,
        stamp: int | None,
        sync_dir: bool = True,
        undo: bool = True,
        durable: bool = True,
    ) -> None:
        """Atomically replace ``path``; ``old`` is its current (bytes, mtime) or None if absent.

        ``sync_dir=False`` defers the folder fsync to ``sync`` (called before the indexes are
        written); ``undo=False`` for a folder's last write (its index), after which nothing fails;
        ``durable=False`` for what a repair rebuilds (the index, a current file): no fsync.
        """
        self._start()
        atomic_write_stream(
            path, (data,), mtime_ns=stamp, sync_dir=sync_dir, durable=durable, make_parents=False
        )
        if durable and not sync_dir:
            self._unsynced.add(os.path.dirname(path))
        if not undo:
            return
        if old is None:
            self._undo.append(lambda: _unlink_synced(path))
        else:
            previous, mtime = old
            self._undo.append(lambda: atomic_write(path, previous, mtime_ns=mtime))

    def write_journaled(
        self, folder: str, path: str, data: bytes, old: tuple[bytes, int] | None, *, stamp: int
    ) -> None:
        """Commit ``data`` for ``path`` (a file below ``folder``) in the folder's journal, then
        write the file without fsync: renamed into place when new (so it is never seen half
        written), rewritten in place when it exists (a rename over it would make ext4 flush it).
        Only for a lazy transaction (see ``dq_stores.filesystem.journal``).
        """
        self._start()
        rel = os.path.relpath(path, folder).replace(os.sep, "/")
        before, after = journal.append(folder, rel, stamp, data)
        self.journal_sizes[folder] = after
        self._undo.append(lambda: journal.truncate(folder, before))
        if old is None:
            self._undo.append(lambda: _unlink(path))
            atomic_write_stream(path, (data,), mtime_ns=stamp, durable=False, make_parents=False)
        else:
            previous, mtime = old
            self._undo.append(lambda: _overwrite(path, previous, mtime))
            _overwrite(path, data, stamp)

    def write_in_place(
        self, path: str, data: bytes, previous: Callable[[], bytes], *, mtime_ns: int | None = None
    ) -> None:
        """Overwrite ``path`` in place, without fsync (a copy a repair restores, under the
        exclusive lock); the undo writes ``previous()`` back (also when this write fails half-way).
        """
        self._start()
        old_mtime = os.stat(path).st_mtime_ns if mtime_ns is not None else None
        self._undo.append(lambda: _overwrite(path, previous(), old_mtime))
        _overwrite(path, data, mtime_ns)

    def move_away(self, path: str) -> None:
        """Rename ``path`` (file or folder) to a hidden trash sibling; removed after commit."""
        self._start()
        folder, name = os.path.split(path)
        trash = os.path.join(folder, trash_name(name))
        os.rename(path, trash)
        fsync_dir(folder)
        self._undo.append(lambda: _rename_synced(trash, path))
        self._cleanup.append(lambda: remove_path(trash))

    def sync(self, skip: Iterable[str] = ()) -> None:
        """Make deferred renames durable, except in ``skip`` (folders whose index write syncs
        them anyway: a run file and its index share one folder).
        """
        for folder in sorted(self._unsynced - set(skip), reverse=True):
            fsync_dir(folder)
        self._unsynced.clear()

    def after_commit(self, action: Callable[[], None]) -> None:
        self._cleanup.append(action)

    def rollback(self) -> None:
        undo, self._undo = self._undo, []
        for action in reversed(undo):
            action()

    def commit(self) -> None:
        self._undo = []
        for action in self._cleanup:
            with suppress(OSError):  # hidden leftovers; the next rebuild removes them
                action()


def _overwrite(path: str, data: bytes, mtime_ns: int | None = None) -> None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        view = memoryview(data)
        offset = 0
        while offset < len(view):
            offset += os.pwrite(fd, view[offset:], offset)
        os.ftruncate(fd, len(data))
        if mtime_ns is not None:
            os.utime(fd, ns=(mtime_ns, mtime_ns))
    finally:
        os.close(fd)


def _unlink(path: str) -> None:
    with suppress(FileNotFoundError):
        os.unlink(path)


def _unlink_synced(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    fsync_dir(os.path.dirname(path))


def _rename_synced(src: str, dst: str) -> None:
    os.rename(src, dst)
    fsync_dir(os.path.dirname(dst))
