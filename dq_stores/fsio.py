"""Filesystem primitives of the filesystem backend: root-confined paths, atomic file writes,
directory fsync, and the ``flock`` scope lock with its crash marker.

POSIX only (``fcntl``). Nothing here knows about artifacts, JSON or indexes; the store logic is in
``dq_stores.filesystem``. ``atomic_write_stream`` is the one atomic file write of the project:
the filesystem store, the file payload store and exports all use it. Functions raise plain ``OSError`` (with the *target* path as
``filename``) and leave the translation into ``dq_stores.errors`` to the caller, which knows the
store root the message must be relative to.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Iterable
from types import TracebackType

from dq_stores.errors import BackendUnavailableError, ScopeViolationError

__all__ = [
    "BOOT_ID",
    "CACHED",
    "CLEAN",
    "DIRTY",
    "TEMP_SUFFIX",
    "TRASH_SUFFIX",
    "SafeRoot",
    "ScopeLock",
    "atomic_write",
    "atomic_write_stream",
    "fsync_dir",
    "is_garbage",
    "make_dirs",
    "read_file",
    "remove_path",
    "trash_name",
]

TEMP_SUFFIX = ".tmp"
"""Suffix of hidden temp files (``.<name>.<random>.tmp``); only ever created under the lock."""
TRASH_SUFFIX = ".deleted"
"""Suffix of hidden renamed-away files and folders of a delete in progress."""

DIRTY = b"1"
"""First byte of a lock file while a writer is inside its critical section."""
CLEAN = b"0"
"""First byte of a lock file whose folder's index is durable (or was never written)."""
CACHED = b"U"
"""First byte of a lock file whose folder's index was written without fsync in this boot."""


def _read_boot_id() -> bytes | None:
    # Linux: a random id per boot. A marker naming another boot means the machine went down
    # since the index was written without fsync, so the page cache it lived in is gone.
    try:
        with open("/proc/sys/kernel/random/boot_id", "rb") as f:
            boot = f.read().strip()
    except OSError:
        return None
    return boot if len(boot) == 36 else None


BOOT_ID: bytes | None = _read_boot_id()
"""This boot's id (Linux); None elsewhere, where every index write and marker is synced."""
_NO_BOOT = b"-" * 36
_MARKER_SIZE = 1 + 36 + 16
"""State byte, boot id, index generation (16 hex digits)."""

_READ_ONLY_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


class SafeRoot:
    """The store root, and the only way paths below it are built.

    Segments must be single, non-empty path components (no separator, no NUL, not ``.``/``..``)
    and the result must stay under the root, lexically and with symlinks resolved. Callers pass
    only validated ids, so a failure here is a bug or a planted link, reported as
    ``ScopeViolationError`` rather than an ``assert`` that ``python -O`` would strip.
    """

    _FOLDERS_MAX = 4096

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.path = os.path.realpath(os.path.abspath(os.fspath(root)))
        self._folders: dict[tuple[str, ...], tuple[str, int, int]] = {}
        """Folders checked by ``join``: segments -> (path, st_dev, st_ino) of what it led to."""

    @staticmethod
    def _check_segments(segments: Iterable[str]) -> None:
        for segment in segments:
            if (
                not segment
                or segment in {".", ".."}
                or "/" in segment
                or "\x00" in segment
                or (os.altsep is not None and os.altsep in segment)
            ):
                raise ScopeViolationError(f"refusing path segment {segment[:40]!r} below the store root")

    def folder(self, *segments: str) -> str:
        """``join`` for an existing folder, remembered by the directory it led to.

        A hot folder (a scope's) is then checked with one ``stat`` instead of one ``lstat`` per
        segment: a link planted anywhere on the way since the full check would lead to another
        directory (another device/inode), which fails the comparison and re-runs ``join``.
        """
        hit = self._folders.get(segments)
        if hit is not None:
            path, dev, ino = hit
            try:
                st = os.stat(path)
            except OSError:
                pass
            else:
                if st.st_ino == ino and st.st_dev == dev:
                    return path
        self._check_segments(segments)
        try:
            before = os.stat(os.path.join(self.path, *segments))
        except OSError:
            return self.join(*segments)  # missing (a first write creates it): nothing to remember
        path = self.join(*segments)
        try:
            after = os.stat(path)
        except OSError:
            return path
        # Remembered only when the directory is the same before and after ``join`` checked the
        # way to it (its own checks passed).
        if stat.S_ISDIR(after.st_mode) and (before.st_dev, before.st_ino) == (after.st_dev, after.st_ino):
            if len(self._folders) >= self._FOLDERS_MAX:
                self._folders.clear()
            self._folders[segments] = (path, after.st_dev, after.st_ino)
        return path

    def child(self, folder: str, *segments: str) -> str:
        """``join`` of ``segments`` below ``folder``, a path ``folder()`` or ``join`` returned:
        only the new segments are checked for links.
        """
        self._check_segments(segments)
        path = os.path.join(folder, *segments)
        if self._link_below(path, len(segments)) and not self._inside(os.path.realpath(path)):
            raise ScopeViolationError("refusing a path outside the store root")
        return path

    def join(self, *segments: str) -> str:
        self._check_segments(segments)
        path = os.path.normpath(os.path.join(self.path, *segments))
        # Lexically inside, and still inside once symlinks below the root are resolved: a link
        # planted in the tree cannot send a tenant's reads or writes elsewhere. The root is a
        # real path already, so without a link below it the path is its own real path: one
        # lstat per segment (stopping at the first that does not exist) instead of realpath's
        # walk from "/"; only a link found on the way costs the full resolution.
        if not self._inside(path) or (
            self._link_below(path, len(segments)) and not self._inside(os.path.realpath(path))
        ):
            raise ScopeViolationError("refusing a path outside the store root")
        return path

    def _link_below(self, path: str, depth: int) -> bool:
        parts = path.rsplit(os.sep, depth)
        current = parts[0]
        for part in parts[1:]:
            current = f"{current}{os.sep}{part}"
            try:
                mode = os.lstat(current).st_mode
            except (FileNotFoundError, NotADirectoryError):
                return False  # nothing exists from here down, so no link either
            if stat.S_ISLNK(mode):
                return True
        return False

    def _inside(self, path: str) -> bool:
        return path == self.path or path.startswith(self.path.rstrip(os.sep) + os.sep)

    def rel(self, path: str | os.PathLike[str] | bytes) -> str:
        """``path`` relative to the root, for messages (never the absolute location)."""
        text = os.fsdecode(path)
        if not os.path.isabs(text):
            return text
        try:
            inside = os.path.commonpath([self.path, text]) == self.path
        except ValueError:
            inside = False
        return os.path.relpath(text, self.path) if inside else os.path.basename(text)


def fsync_dir(path: str) -> None:
    """Make renames and creations in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(path: str) -> None:
    """``mkdir -p path`` and fsync every parent that gained an entry."""
    if os.path.isdir(path):
        return
    missing: list[str] = []
    current = path
    while not os.path.isdir(current) and current != os.path.dirname(current):
        missing.append(current)
        current = os.path.dirname(current)
    for folder in reversed(missing):
        try:
            os.mkdir(folder)
        except FileExistsError:
            if not os.path.isdir(folder):
                raise
        fsync_dir(os.path.dirname(folder) or ".")


def read_file(path: str) -> tuple[bytes, int] | None:
    """The bytes and mtime (ns) of ``path``, or ``None`` if it does not exist."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        mtime = os.fstat(fd).st_mtime_ns
        chunks: list[bytes] = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks), mtime
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes, *, mtime_ns: int | None = None, sync_dir: bool = True) -> None:
    """Replace ``path`` with ``data`` so that readers and crashes see the old or the new bytes.

    Temp file in the same folder, write, set the mtime (the backend's revision stamp), fsync,
    ``os.replace``, fsync the folder. On failure the temp file is removed and the ``OSError`` names
    ``path`` (not the temp file).
    """
    atomic_write_stream(path, (data,), mtime_ns=mtime_ns, sync_dir=sync_dir, make_parents=False)


def atomic_write_stream(
    path: str | os.PathLike[str],
    chunks: Iterable[bytes],
    *,
    mtime_ns: int | None = None,
    sync_dir: bool = True,
    durable: bool = True,
    make_parents: bool = True,
    temp_name: Callable[[str], str] | None = None,
) -> int:
    """Write every chunk to a temp file beside ``path`` and rename it into place: the one atomic
    write of the project (store documents, result payloads, exports). Returns the bytes written.

    ``durable`` fsyncs the file (and, with ``sync_dir``, its folder) before and after the rename;
    ``make_parents`` creates missing folders; ``temp_name(name)`` names the temp file (default
    ``.<name>.<random>.tmp``, hidden). A chunk iterator that raises leaves nothing behind.
    """
    path = os.fspath(path)
    folder, name = os.path.split(path)
    if make_parents and folder:
        make_dirs(folder)
    tmp = os.path.join(
        folder, temp_name(name) if temp_name else f".{name}.{secrets.token_hex(6)}{TEMP_SUFFIX}"
    )
    size = 0
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        try:
            for chunk in chunks:
                view = memoryview(chunk)
                size += len(view)
                while view:
                    view = view[os.write(fd, view) :]
            if mtime_ns is not None:
                os.utime(fd, ns=(mtime_ns, mtime_ns))
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        _discard(tmp)
        raise OSError(exc.errno, exc.strerror or str(exc) or type(exc).__name__, path) from exc
    except BaseException:
        _discard(tmp)
        raise
    if durable and sync_dir:
        fsync_dir(folder or ".")
    return size


def _discard(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def trash_name(name: str) -> str:
    """Hidden sibling name a file or folder is renamed to when it is deleted."""
    return f".{name}.{secrets.token_hex(6)}{TRASH_SUFFIX}"


def is_garbage(name: str) -> bool:
    """Leftovers of an interrupted write (temp file) or delete (renamed-away entry)."""
    return name.startswith(".") and (name.endswith(TEMP_SUFFIX) or name.endswith(TRASH_SUFFIX))


def remove_path(path: str) -> None:
    """Remove a file or a folder tree; missing is fine."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass


class ScopeLock:
    """``flock`` on ``<folder>/.lock``: exclusive for writers, shared for readers.

    The lock is held per open file description, so each acquisition opens the file anew: threads
    of one process exclude each other exactly like processes do, and the kernel releases the lock
    of a killed process. The file starts with the crash marker: a state byte, the boot id and the
    index generation. A writer sets the state to ``1`` before its first change and, after its last,
    to ``0`` (the index is durable) or ``U`` (the index was written in place without fsync, in the
    boot the marker names). Whoever takes the lock next and finds ``1``, or ``U`` of another boot,
    knows a writer died mid-way or a restart may have lost unsynced writes, and repairs the
    folder. The ``1`` is synced before the first change unless the marker already said ``U`` of
    this boot: a kill keeps the page cache, and a restart is told by the boot id that is durable
    already, so the common put pays no extra sync.

    On a read-only folder the lock degrades to no lock (``writable`` False): nobody can write
    there, so there is nothing to exclude.
    """

    def __init__(self, path: str, *, exclusive: bool, timeout: float) -> None:
        self.path = path
        self.exclusive = exclusive
        self.timeout = timeout
        self.writable = True
        self._fd: int | None = None
        self._marker_seen: bytes | None = None
        self._before: bytes | None = None

    def __enter__(self) -> ScopeLock:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            if exc.errno not in _READ_ONLY_ERRNOS:
                raise
            self.writable = False
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                return self
        try:
            self._acquire(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def _acquire(self, fd: int) -> None:
        op = fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH
        try:
            fcntl.flock(fd, op | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        # Contended: poll with a short backoff so a stopped (not dead) holder cannot hang callers
        # forever; the kernel frees a dead holder's lock at once.
        deadline = time.monotonic() + self.timeout
        delay = 0.0002
        while True:
            try:
                fcntl.flock(fd, op | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise BackendUnavailableError(
                        f"filesystem store: timed out after {self.timeout:g}s waiting for the lock "
                        f"{os.path.basename(os.path.dirname(self.path))}/{os.path.basename(self.path)}"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.01)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the flock
            self._fd = None

    def _marker(self) -> bytes:
        if self._marker_seen is None:
            self._marker_seen = os.pread(self._fd, _MARKER_SIZE, 0) if self._fd is not None else b""
        return self._marker_seen

    @property
    def dirty(self) -> bool:
        """The folder needs repair: a writer died inside its critical section, or the index was
        written without fsync and the machine has restarted since (see the class docstring).
        """
        if self._fd is None:
            return False
        marker = self._marker()
        if marker[:1] == DIRTY:
            return True
        return marker[:1] == CACHED and (BOOT_ID is None or marker[1:37] != BOOT_ID)

    @property
    def generation(self) -> int:
        """Counter of in-place index writes (part of the index cache's key: an in-place write
        keeps the file's inode, and its mtime may not change within one clock tick).
        """
        if self._fd is None:
            return 0
        raw = self._marker()[37:53]
        try:
            return int(raw, 16) if len(raw) == 16 else 0
        except ValueError:
            return 0

    @property
    def lazy_index(self) -> bool:
        """Whether the index may be written without fsync: this boot's id is known, so a restart
        that loses it is detected from the marker.
        """
        return BOOT_ID is not None and self.writable

    def begin(self) -> None:
        """Mark the folder as being changed; durable before the first change is made.

        When the marker already says "index cached in this boot", a restart since would be
        detected from the durable marker anyway, and a killed process leaves its page-cache
        writes behind, so the new mark needs no fsync: the common put costs no extra sync.
        """
        if self._fd is None or not self.exclusive or not self.writable:
            raise OSError(errno.EACCES, "the lock file is not writable", self.path)
        marker = self._marker()
        if self._before is None:
            self._before = marker if marker[:1] in (CLEAN, CACHED) else CLEAN
        mark = DIRTY + (BOOT_ID or _NO_BOOT) + marker[37:53]
        os.pwrite(self._fd, mark, 0)
        self._marker_seen = mark
        if BOOT_ID is None or marker[1:37] != BOOT_ID or marker[:1] not in (CACHED, DIRTY):
            os.fdatasync(self._fd)

    def restore(self) -> None:
        """After a rolled-back change: the marker the folder had before ``begin`` (its index is
        what it was then, durable or cached).
        """
        if self._before is not None and self._fd is not None and self.writable:
            state = self._before[:1]
            if state == CLEAN and BOOT_ID is not None:
                # The undo itself was written without fsync: durable no longer holds for sure.
                state = CACHED
            gen = self._before[37:53] if len(self._before) >= _MARKER_SIZE else b"0" * 16
            mark = state + (BOOT_ID or _NO_BOOT) + gen
            os.pwrite(self._fd, mark, 0)
            self._marker_seen = mark

    def end(self, *, index_synced: bool = True, generation: int | None = None) -> None:
        """Clear the mark (``index_synced=False``: mark the index as cached in this boot;
        ``generation``: the index was rewritten in place). Not synced: a lost clear costs one
        needless repair, nothing more.
        """
        if self._fd is not None and self.writable:
            state = CLEAN if index_synced or BOOT_ID is None else CACHED
            gen = self.generation if generation is None else generation
            mark = state + (BOOT_ID or _NO_BOOT) + b"%016x" % (gen & (2**64 - 1))
            os.pwrite(self._fd, mark, 0)
            self._marker_seen = mark
