"""The filesystem backend: canonical JSON files a person can browse, diff and put in git.

Layout (``<root>`` is the folder of the ``file://`` URL; ``<kind>`` is ``contracts``,
``job_definitions`` or ``action_profiles``)::

    <root>/<tenant>/<environment>/
        <kind>/
            <id>/
                <version>.json              current revision of (id, version)
                .history/<version>/<n>.json revision n = 1, 2, ... (the last equals the current file)
            .index.json                     index of this folder (a cache, rebuilt when missing)
            .lock                           flock target and crash marker ("1" during a write)
        job_runs/
            <job_id>.json                   the job run record
            .index.json
            .lock

Every ``.json`` artifact file holds exactly the bytes ``canonical_json`` gives (sorted keys, UTC
timestamps), so a diff shows what changed and ``sha256`` of the file is the content hash. Files
and folders starting with a dot are the store's own: ids can never start with a dot, so they
cannot collide with an artifact. For git, commit the artifact files and ``.history/``; ignore the
rest::

    .index.json
    .lock
    .*.tmp
    .*.deleted

**Revisions and etags.** A put of changed content writes the current file and the next history
file; an identical put writes nothing. A revision's stamp is the time it was recorded in
nanoseconds, strictly increasing per folder, and is also the mtime of its history file (of the run
file for job runs), so it survives a lost index. Etags are ``<revision>-<stamp hex>-<sha256[:12]>``:
unique per revision (delete and re-create included) and the same in every process.

**Durable writes and caches.** One document per put is durable: a job run file, or a versioned
artifact's history revision (the commit point), written to a hidden temp file in the same folder,
fsynced, moved into place with ``os.replace`` and the folder fsynced. The index and a versioned
artifact's current file (a copy of its last history revision) are caches, rewritten in place
under the exclusive lock without fsync when the lock's marker can tell a restart (Linux boot id,
``fsio.BOOT_ID``; elsewhere they are written atomically and synced, as the documents are). A
rename over an existing, unsynced file would make ext4 flush it at once (``auto_da_alloc``):
the in-place rewrite is what keeps a put at the cost of one durable atomic write. Readers of the
store hold the lock, so they never see a half-written cache; a crash that leaves one is repaired
(below). A delete renames the artifact away (one atomic step) before anything else.

**Concurrency.** POSIX only (``fcntl.flock``: a local filesystem, or NFS with working locks).
One lock per ``<tenant>/<environment>/<kind>`` folder (``.lock``): writers hold it exclusively for
the whole read-check-write-index critical section, readers hold it shared, so ``if_match`` and
``create_only`` hold between processes (waits are bounded by ``lock_timeout``). A writer sets the
lock file's marker before its first change and clears it after its last (or marks the index as
cached in this boot); a writer killed in between leaves the mark, and so does a restart after an
unsynced index write (the marker names another boot), and the next process to take the lock
repairs the folder from the files before doing anything else: the index rebuilt, and a current
file that is torn, missing or still the previous revision restored from the history revision. A write that fails with an ``OSError`` undoes its own changes before
raising ``BackendUnavailableError``, so retrying it (with the same ``if_match``) is safe.

**Index.** ``.index.json`` holds, per artifact, the ``ArtifactIndex`` / ``RunIndex`` fields,
revision, stamp and content hash: listings, filters, cursors and latest lookups read the index
(cached in memory by file identity) and then only the files of the page. The files are the truth:
the index is rebuilt from them when it is missing, corrupt, marked dirty, or found stale (an
artifact file whose sha256 differs from its index entry, e.g. after a hand edit or a
``git pull``; a hand-edited file becomes a new revision). The latest lookup of one id also lists
that id's folder, so a version added or removed behind the index's back counts at once; for
listings and filters, delete ``.index.json`` after changing files outside the store. A rebuild
keeps the etags of versioned artifacts exactly; for job runs it keeps them while the old index is
readable, otherwise it restarts their revision numbers (a stale etag then fails ``if_match``, which
is safe) and takes the time a run without timestamps was first recorded from the file's mtime.
Copying the tree (``git clone``) resets mtimes, so etags change there too.

This module holds the store logic; path confinement, atomic writes and the lock are in
``dq_stores.fsio``. It does not store result payloads (that is ``dq_stores.results``).
"""

from __future__ import annotations

import bisect
import builtins
import errno
import heapq
import json
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, ClassVar, Generic, TypeVar
from urllib.parse import unquote, urlsplit

import pydantic

from dq_stores.base import (
    ActionProfileStore,
    ContractStore,
    JobDefinitionStore,
    JobRunStore,
    Revision,
    RunFilters,
    StoredDoc,
    VersionedStore,
    VersionFilters,
)
from dq_stores.canonical import canonical_json, sha256_hex
from dq_stores.errors import (
    BackendUnavailableError,
    ConflictError,
    InvalidArtifactError,
    ScopeViolationError,
    StoreNotFoundError,
)
from dq_stores.fsio import (
    TEMP_SUFFIX,
    TRASH_SUFFIX,
    SafeRoot,
    ScopeLock,
    atomic_write,
    atomic_write_stream,
    fsync_dir,
    is_garbage,
    make_dirs,
    read_file,
    remove_path,
    trash_name,
)
from dq_stores.inputs import encode_cursor, parse_sortable_time, sortable_time
from dq_stores.kinds import ArtifactIndex, Kind, RunIndex
from dq_stores.models import JobRun, JobRunStatus
from dq_stores.models.job_runs import check_transition
from dq_stores.scope import Scope, validate_id
from dq_stores.secrets import redact
from dq_stores.stores import Backend, Stores

__all__ = [
    "FilesystemActionProfileStore",
    "FilesystemContractStore",
    "FilesystemJobDefinitionStore",
    "FilesystemJobRunStore",
    "open_filesystem_backend",
    "open_filesystem_stores",
    "root_from_url",
]

INDEX_FILE = ".index.json"
LOCK_FILE = ".lock"
HISTORY_DIR = ".history"
_INDEX_FORMAT = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CACHE_SIZE = 64
_MAX_VERSION_KEY = 4096  # generous bound of dq_stores.versions.version_key for a 128-char version
DEFAULT_LOCK_TIMEOUT = 60.0

R = TypeVar("R")


# -- small helpers ------------------------------------------------------------------------------


class _Stale(Exception):
    """An artifact file disagrees with the index (hand edit, git pull, crash): rebuild, retry."""

    def __init__(self, folder: str) -> None:
        super().__init__(folder)
        self.folder = folder


class _CorruptIndex(Exception):
    """The index file cannot be used; it is rebuilt from the files."""


@contextmanager
def _read_only_tolerated() -> Iterator[None]:
    """Repairs are best effort on a read-only tree (a mounted git checkout): skip them there."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise


def _etag(revision: int, stamp: int, content_hash: str) -> str:
    return f"{revision}-{stamp:x}-{content_hash[:12]}"


def _stamp_time(stamp: int) -> datetime:
    return _EPOCH + timedelta(microseconds=stamp // 1000)


def _next_stamp(last: int) -> int:
    return max(time.time_ns(), last + 1)


def _field(raw: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = raw.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise _CorruptIndex(key)
    return value


def _opt_field(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, str):
        raise _CorruptIndex(key)
    return value


def _str_list(raw: Mapping[str, Any], key: str) -> builtins.list[str]:
    value = raw.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _CorruptIndex(key)
    return value


def _forged_cursor() -> InvalidArtifactError:
    return InvalidArtifactError("cursor is not one this store issued", field="cursor")


def _cursor_id(value: Any) -> str:
    try:
        return validate_id(value, "cursor")
    except InvalidArtifactError as exc:
        raise _forged_cursor() from exc


def _version_cursor(after: Sequence[Any]) -> tuple[str, str, str]:
    """``[artifact_id, version_key, version]`` as this store issues them, or a refusal."""
    artifact_id, vkey, version = after
    if not isinstance(vkey, str) or not 0 < len(vkey) <= _MAX_VERSION_KEY:
        raise _forged_cursor()
    return _cursor_id(artifact_id), vkey, _cursor_id(version)


def _run_cursor(after: Sequence[Any]) -> tuple[str, str, str]:
    """``[run_time, job_id, environment]`` as this store issues them, or a refusal."""
    run_time, job_id, environment = after
    return sortable_time(parse_sortable_time(run_time)), _cursor_id(job_id), _cursor_id(environment)


# -- index entries ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _VEntry:
    """Index entry of one (id, version): its index fields and current revision."""

    index: ArtifactIndex
    revision: int
    stamp: int
    content_hash: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.index.artifact_id, self.index.version)

    @property
    def etag(self) -> str:
        return _etag(self.revision, self.stamp, self.content_hash)

    def to_json(self) -> dict[str, Any]:
        return {
            **self.index.to_json(),
            "revision": self.revision,
            "stamp": self.stamp,
            "content_hash": self.content_hash,
        }

    @classmethod
    def from_json(cls, raw: Any) -> _VEntry:
        if not isinstance(raw, dict):
            raise _CorruptIndex("entry")
        index = ArtifactIndex(
            artifact_id=_field(raw, "artifact_id", str),
            version=_field(raw, "version", str),
            version_key=_field(raw, "version_key", str),
            name=_field(raw, "name", str),
            status=_field(raw, "status", str),
            retired=_field(raw, "retired", bool),
            tags=_str_list(raw, "tags"),
            dataset_types=_str_list(raw, "dataset_types"),
            action_types=_str_list(raw, "action_types"),
            trigger_type=_opt_field(raw, "trigger_type"),
        )
        return cls(
            index, _field(raw, "revision", int), _field(raw, "stamp", int), _field(raw, "content_hash", str)
        )


@dataclass(frozen=True, slots=True)
class _REntry:
    """Index entry of one job run; ``run_time`` is the time it sorts by (never None)."""

    index: RunIndex
    run_time: datetime
    revision: int
    stamp: int
    content_hash: str
    environment: str
    sort_key: tuple[str, str, str] = field(init=False, compare=False)
    """(run time as ``sortable_time`` text, job id, environment): the listing order, ascending."""

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "sort_key", (sortable_time(self.run_time), self.index.job_id, self.environment)
        )

    @property
    def etag(self) -> str:
        return _etag(self.revision, self.stamp, self.content_hash)

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in self.index.__dict__.items() if k != "run_time"}
        data["own_run_time"] = sortable_time(self.index.run_time) if self.index.run_time else None
        data.update(
            run_time=self.sort_key[0],
            revision=self.revision,
            stamp=self.stamp,
            content_hash=self.content_hash,
        )
        return data

    @classmethod
    def from_json(cls, raw: Any, environment: str) -> _REntry:
        if not isinstance(raw, dict):
            raise _CorruptIndex("entry")
        try:
            own = raw.get("own_run_time")
            own_time = parse_sortable_time(own) if own is not None else None
            run_time = parse_sortable_time(raw.get("run_time"))
        except InvalidArtifactError as exc:
            raise _CorruptIndex("run_time") from exc
        index = RunIndex(
            job_id=_field(raw, "job_id", str),
            job_type=_field(raw, "job_type", str),
            status=_field(raw, "status", str),
            job_definition_id=_opt_field(raw, "job_definition_id"),
            dataset_type=_opt_field(raw, "dataset_type"),
            contract_id=_opt_field(raw, "contract_id"),
            contract_version=_opt_field(raw, "contract_version"),
            dagster_run_id=_opt_field(raw, "dagster_run_id"),
            asset_key=_opt_field(raw, "asset_key"),
            partition_key=_opt_field(raw, "partition_key"),
            run_time=own_time,
        )
        if index.status not in JobRunStatus.__members__.values():
            raise _CorruptIndex("status")
        return cls(
            index,
            run_time,
            _field(raw, "revision", int),
            _field(raw, "stamp", int),
            _field(raw, "content_hash", str),
            environment,
        )


# -- indexes ------------------------------------------------------------------------------------

E = TypeVar("E", _VEntry, _REntry)


class _Index(Generic[E]):
    """The parsed ``.index.json`` of one folder. Immutable once built: a write builds a new one,
    so cached instances can be shared between threads.
    """

    def __init__(self, scope: Scope, last_stamp: int, entries: dict[Any, E]) -> None:
        self.scope = scope
        self.last_stamp = last_stamp
        self.entries: dict[Any, E] = entries

    def to_bytes(self, kind: str) -> bytes:
        document = {
            "format": _INDEX_FORMAT,
            "kind": kind,
            "tenant": self.scope.tenant,
            "environment": self.scope.environment,
            "last_stamp": self.last_stamp,
            "entries": [e.to_json() for e in self.entries.values()],
        }
        return json.dumps(document, sort_keys=True, separators=(",", ":")).encode() + b"\n"

    @staticmethod
    def header(data: bytes, kind: str, scope: Scope) -> tuple[int, builtins.list[Any]]:
        try:
            document = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _CorruptIndex("json") from exc
        if not isinstance(document, dict) or document.get("format") != _INDEX_FORMAT:
            raise _CorruptIndex("format")
        if document.get("kind") != kind:
            raise _CorruptIndex("kind")
        if (document.get("tenant"), document.get("environment")) != (scope.tenant, scope.environment):
            # Two scopes share one folder: a case-insensitive filesystem ("Acme" vs "acme").
            raise ScopeViolationError(
                f"the {kind} folder of scope {scope} belongs to "
                f"{document.get('tenant')}/{document.get('environment')} "
                "(tenants or environments differing only in case on a case-insensitive filesystem?)"
            )
        entries = document.get("entries")
        if not isinstance(entries, list):
            raise _CorruptIndex("entries")
        return _field(document, "last_stamp", int), entries


class _VIndex(_Index[_VEntry]):
    @classmethod
    def parse(cls, data: bytes, kind: str, scope: Scope) -> _VIndex:
        last_stamp, raw = cls.header(data, kind, scope)
        entries: dict[tuple[str, str], _VEntry] = {}
        for item in raw:
            entry = _VEntry.from_json(item)
            entries[entry.key] = entry
        return cls(scope, last_stamp, entries)

    @cached_property
    def ordered(self) -> builtins.list[_VEntry]:
        """Entries by (artifact_id asc, version_key desc, version asc): the listing order."""
        out = sorted(self.entries.values(), key=lambda e: e.index.version)
        out.sort(key=lambda e: e.index.version_key, reverse=True)  # stable: keeps version asc
        out.sort(key=lambda e: e.index.artifact_id)
        return out

    @cached_property
    def by_id(self) -> dict[str, builtins.list[_VEntry]]:
        grouped: dict[str, builtins.list[_VEntry]] = {}
        for entry in self.entries.values():
            grouped.setdefault(entry.index.artifact_id, []).append(entry)
        return grouped

    def latest(self, artifact_id: str) -> _VEntry | None:
        """Highest version key that is not retired; ties go to the newest revision."""
        live = [e for e in self.by_id.get(artifact_id, ()) if not e.index.retired]
        return max(live, key=lambda e: (e.index.version_key, e.stamp, e.index.version), default=None)

    def latest_for_dataset(self, dataset_type: str) -> _VEntry | None:
        live = [
            e for e in self.entries.values() if not e.index.retired and dataset_type in e.index.dataset_types
        ]
        # Same order as the SQL backend: version key desc, newest revision, then contract id asc.
        live.sort(key=lambda e: e.index.version, reverse=True)
        live.sort(key=lambda e: e.index.artifact_id)
        live.sort(key=lambda e: (e.index.version_key, e.stamp), reverse=True)
        return live[0] if live else None

    def start_after(self, after: tuple[str, str, str] | None) -> int:
        """Position of the first entry strictly after the cursor in ``ordered``."""
        if after is None:
            return 0
        aid, vkey, ver = after
        ordered = self.ordered

        def is_after(e: _VEntry) -> bool:
            i = e.index
            return i.artifact_id > aid or (
                i.artifact_id == aid and (i.version_key < vkey or (i.version_key == vkey and i.version > ver))
            )

        lo, hi = 0, len(ordered)
        while lo < hi:
            mid = (lo + hi) // 2
            if is_after(ordered[mid]):
                hi = mid
            else:
                lo = mid + 1
        return lo


class _RIndex(_Index[_REntry]):
    @classmethod
    def parse(cls, data: bytes, kind: str, scope: Scope) -> _RIndex:
        last_stamp, raw = cls.header(data, kind, scope)
        entries: dict[str, _REntry] = {}
        for item in raw:
            entry = _REntry.from_json(item, scope.environment)
            entries[entry.index.job_id] = entry
        return cls(scope, last_stamp, entries)

    @cached_property
    def ordered(self) -> builtins.list[_REntry]:
        """Entries by sort key ascending; listings walk it backwards (newest first)."""
        return sorted(self.entries.values(), key=lambda e: e.sort_key)

    @cached_property
    def keys(self) -> builtins.list[tuple[str, str, str]]:
        return [e.sort_key for e in self.ordered]

    def select(
        self, after: tuple[str, str, str] | None, limit: int, filters: RunFilters
    ) -> builtins.list[_REntry]:
        """Up to ``limit`` matching entries newest first, strictly after the cursor."""
        keys = self.keys
        end = len(keys) if after is None else bisect.bisect_left(keys, after)
        if filters.until is not None:
            end = min(end, bisect.bisect_left(keys, (sortable_time(filters.until),)))
        since = sortable_time(filters.since) if filters.since is not None else None
        out: builtins.list[_REntry] = []
        for pos in range(end - 1, -1, -1):
            entry = self.ordered[pos]
            if since is not None and keys[pos][0] < since:
                break
            if filters.matches(entry.index, entry.run_time):
                out.append(entry)
                if len(out) >= limit:
                    break
        return out


IX = TypeVar("IX", _VIndex, _RIndex)


# -- the write transaction ----------------------------------------------------------------------


class _Txn:
    """The file changes of one critical section, with their undo.

    The first change marks every held lock dirty; ``rollback`` undoes changes newest first (used
    when a write fails with an ``OSError``); cleanup actions run after the index is written.
    """

    def __init__(self, locks: Sequence[ScopeLock]) -> None:
        self._locks = locks
        self._undo: list[Callable[[], None]] = []
        self._cleanup: list[Callable[[], None]] = []
        self._unsynced: set[str] = set()
        self.started = False
        self.lazy = bool(locks) and all(lock.lazy_index for lock in locks)
        """Copies a repair restores (index, current files) may skip their fsync."""

    def _start(self) -> None:
        if not self.started:
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


def _unlink_synced(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    fsync_dir(os.path.dirname(path))


def _rename_synced(src: str, dst: str) -> None:
    os.rename(src, dst)
    fsync_dir(os.path.dirname(dst))


# -- the shared machinery -----------------------------------------------------------------------


class _FsBase(Generic[IX]):
    """Root, index cache, locking and error translation shared by the four stores."""

    kind: ClassVar[Kind[Any]]
    _index_class: ClassVar[type[_VIndex] | type[_RIndex]]

    def __init__(self, root: str | os.PathLike[str], *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> None:
        if isinstance(root, str) and "\x00" in root:
            raise InvalidArtifactError("the store root must not contain NUL", field="root")
        self._root = SafeRoot(root)
        self._lock_timeout = float(lock_timeout)
        self._cache: OrderedDict[str, tuple[tuple[int, int, int, int, int], IX]] = OrderedDict()
        self._cache_lock = threading.Lock()

    @property
    def root(self) -> str:
        """The absolute folder the store keeps its files in."""
        return self._root.path

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._root.path!r})"

    def _list_scopes(self, tenant: str | None, environment: str | None) -> builtins.list[Scope]:
        """Every (tenant, environment) that has a folder of this store's kind."""
        found: builtins.list[Scope] = []
        with self._translate("list", self._root.path):
            try:
                tenants = [tenant] if tenant is not None else os.listdir(self._root.path)
            except FileNotFoundError:
                return []
            for name in tenants:
                tenant_dir = os.path.join(self._root.path, name)
                if name.startswith(".") or not _is_id(name) or not os.path.isdir(tenant_dir):
                    continue
                envs = [environment] if environment is not None else os.listdir(tenant_dir)
                for env in envs:
                    if (
                        not env.startswith(".")
                        and _is_id(env)
                        and os.path.isdir(self._root.join(name, env, self.kind.name))
                    ):
                        found.append(Scope(name, env))
        return found

    # paths ------------------------------------------------------------------------------------
    def _folder(self, scope: Scope) -> str:
        return self._root.join(scope.tenant, scope.environment, self.kind.name)

    def _path(self, scope: Scope, *segments: str) -> str:
        return self._root.join(scope.tenant, scope.environment, self.kind.name, *segments)

    def _rel(self, path: str) -> str:
        return self._root.rel(path)

    @contextmanager
    def _translate(self, action: str, path: str) -> Iterator[None]:
        """``OSError`` -> ``BackendUnavailableError`` naming the path relative to the root."""
        try:
            yield
        except OSError as exc:
            where = self._rel(exc.filename) if exc.filename else self._rel(path)
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise BackendUnavailableError(f"filesystem store: cannot {action} {where}: {reason}") from exc

    # index ------------------------------------------------------------------------------------
    def _parse_index(self, data: bytes, scope: Scope) -> IX:
        index: IX = self._index_class.parse(data, self.kind.name, scope)  # type: ignore[assignment]
        return index

    def _empty_index(self, scope: Scope) -> IX:
        index: IX = self._index_class(scope, 0, {})  # type: ignore[assignment]
        return index

    def _load_index(self, folder: str, scope: Scope, lock: ScopeLock) -> IX | None:
        """The folder's index (from the cache when the file is unchanged); None if unusable."""
        path = os.path.join(folder, INDEX_FILE)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        signature = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, lock.generation)
        with self._cache_lock:
            hit = self._cache.get(path)
            if hit is not None and hit[0] == signature:
                self._cache.move_to_end(path)
                return hit[1]
        got = read_file(path)
        if got is None:
            return None
        try:
            index = self._parse_index(got[0], scope)
        except _CorruptIndex:
            return None
        self._remember(path, signature, index)
        return index

    def _remember(self, path: str, signature: tuple[int, int, int, int, int], index: IX) -> None:
        with self._cache_lock:
            self._cache[path] = (signature, index)
            self._cache.move_to_end(path)
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)

    def _save_index(self, folder: str, index: IX, lock: ScopeLock) -> None:
        path = os.path.join(folder, INDEX_FILE)
        atomic_write(path, index.to_bytes(self.kind.name))
        self._remember_file(path, index, lock.generation)

    def _remember_file(self, path: str, index: IX, generation: int) -> None:
        st = os.stat(path)
        self._remember(path, (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, generation), index)

    def _current_index(self, folder: str, scope: Scope, lock: ScopeLock) -> IX:
        """Under the exclusive lock: the index, repaired first if a writer died or it is unusable."""
        if not lock.dirty:
            index = self._load_index(folder, scope, lock)
            if index is not None:
                return index
        return self._rebuild(folder, scope, lock)

    def _rebuild(self, folder: str, scope: Scope, lock: ScopeLock) -> IX:
        """Under the exclusive lock: rebuild the index from the files, save it, clear the mark."""
        # The old index (if readable) lets a job-run rebuild keep revisions and first-seen times.
        old = self._load_index(folder, scope, lock)
        index = self._scan(folder, scope, old, repairing=lock.dirty)
        with _read_only_tolerated():  # a read-only tree: serve the rebuilt index from memory
            self._save_index(folder, index, lock)
            lock.end()
        return index

    def _scan(self, folder: str, scope: Scope, old: IX | None, *, repairing: bool = False) -> IX:
        """The index rebuilt from the files; ``repairing``: after a writer died or a restart lost
        unsynced writes (the durable history revisions are then the truth for current files).
        """
        raise NotImplementedError

    def _parse_file(self, path: str, data: bytes, scope: Scope) -> Any:
        """Validate an artifact file found by a scan; errors name the file."""
        rel = self._rel(path)
        try:
            model = self.kind.model.model_validate_json(data)
        except pydantic.ValidationError as exc:
            raise InvalidArtifactError.from_pydantic(exc, what=f"{self.kind.label} file {rel}") from exc
        if (model.tenant_id, model.environment) != (scope.tenant, scope.environment):
            raise ScopeViolationError(
                f"{self.kind.label} file {rel} belongs to {model.tenant_id}/{model.environment}, not {scope}"
            )
        return model

    def _remove_garbage(self, folder: str, names: Sequence[str]) -> None:
        for name in names:
            if is_garbage(name):
                with _read_only_tolerated():
                    remove_path(os.path.join(folder, name))

    # operations ---------------------------------------------------------------------------
    def _read(self, scope: Scope, op: Callable[[IX], R]) -> R:
        """Run ``op`` on a consistent index under the shared lock (repairing when needed)."""
        folder = self._folder(scope)
        lock_path = os.path.join(folder, LOCK_FILE)
        with self._translate("read", folder):
            if not os.path.isdir(folder):
                return op(self._empty_index(scope))
            with ScopeLock(lock_path, exclusive=False, timeout=self._lock_timeout) as lock:
                if not lock.dirty:
                    index = self._load_index(folder, scope, lock)
                    if index is not None:
                        try:
                            return op(index)
                        except _Stale:
                            pass
            with ScopeLock(lock_path, exclusive=True, timeout=self._lock_timeout) as lock:
                index = self._current_index(folder, scope, lock)
                try:
                    return op(index)
                except _Stale:
                    pass
                index = self._rebuild(folder, scope, lock)
                try:
                    return op(index)
                except _Stale as exc:
                    raise BackendUnavailableError(
                        f"filesystem store: {self._rel(folder)} changed outside the store while being read"
                    ) from exc

    def _write(
        self, scopes: Sequence[Scope], op: Callable[[dict[str, IX], _Txn], tuple[R, dict[str, IX]]]
    ) -> R:
        """Run ``op`` under the exclusive locks of ``scopes`` (taken in path order) and save the
        indexes it returns; on an ``OSError`` undo every change it made.
        """
        folders = sorted({self._folder(s): s for s in scopes}.items())
        with self._translate("write", folders[0][0]), ExitStack() as stack:
            locks: dict[str, ScopeLock] = {}
            indexes: dict[str, IX] = {}
            for folder, scope in folders:
                make_dirs(folder)
                lock_path = os.path.join(folder, LOCK_FILE)
                locks[folder] = stack.enter_context(
                    ScopeLock(lock_path, exclusive=True, timeout=self._lock_timeout)
                )
                indexes[folder] = self._current_index(folder, scope, locks[folder])
            txn = _Txn(list(locks.values()))
            lazy = False
            try:
                for _attempt in range(len(folders) + 1):
                    try:
                        result, changed = op(indexes, txn)
                        break
                    except _Stale as stale:
                        if txn.started:
                            raise
                        indexes[stale.folder] = self._rebuild(
                            stale.folder, dict(folders)[stale.folder], locks[stale.folder]
                        )
                else:
                    raise BackendUnavailableError(
                        "filesystem store: files changed outside the store during a write"
                    )
                # Artifact files are durable before any index names them. A lazy index (the
                # locks' markers detect a restart that loses it) is a cache written without
                # fsync, so every deferred folder sync happens here.
                lazy = all(lock.lazy_index for lock in locks.values())
                txn.sync(skip=() if lazy else changed)
                for folder, index in changed.items():
                    path = os.path.join(folder, INDEX_FILE)
                    # The index is the last file of a folder's change; with several folders an
                    # earlier one may need undoing when a later one fails.
                    several = len(changed) > 1
                    old = read_file(path) if several else None
                    if lazy:
                        # Rewritten in place under the exclusive lock: a rename over the old
                        # index would make ext4 flush it at once (auto_da_alloc, ~0.3-1 ms); a
                        # torn write is what the marker makes the next holder repair, and a
                        # failed one is undone from the index it replaced.
                        txn.write_in_place(
                            path, index.to_bytes(self.kind.name), self._bytes_of(indexes[folder])
                        )
                    else:
                        txn.write(path, index.to_bytes(self.kind.name), old, stamp=None, undo=several)
            except BaseException:
                if txn.started:
                    try:
                        txn.rollback()
                    except OSError:
                        pass  # the dirty marks stay: the next lock holder repairs from the files
                    else:
                        for lock in locks.values():
                            lock.restore()
                raise
            txn.commit()
            for folder, index in changed.items():
                lock = locks[folder]
                generation = lock.generation + 1 if lazy else lock.generation
                self._remember_file(os.path.join(folder, INDEX_FILE), index, generation)
                lock.end(index_synced=not lazy, generation=generation)
            if txn.started:
                for folder, lock in locks.items():
                    if folder not in changed:
                        lock.end(index_synced=not lazy)
            return result

    def _bytes_of(self, index: IX) -> Callable[[], bytes]:
        return lambda: index.to_bytes(self.kind.name)

    @staticmethod
    def _absent(label: str, if_match: str | None) -> bool:
        """A delete of something that does not exist: False, or a conflict under ``if_match``."""
        if if_match is not None:
            raise ConflictError(f"{label} does not match etag {if_match!r}")
        return False

    def _read_verified(self, folder: str, path: str, content_hash: str) -> bytes:
        """The file's bytes if they are what the index says; ``_Stale`` if not."""
        got = read_file(path)
        if got is None or sha256_hex(got[0]) != content_hash:
            raise _Stale(folder)
        return got[0]

    @staticmethod
    def _check_fresh(folder: str, known_hash: str | None, current: tuple[bytes, int] | None) -> None:
        if (current is None) != (known_hash is None) or (
            current is not None and sha256_hex(current[0]) != known_hash
        ):
            raise _Stale(folder)


# -- versioned stores ---------------------------------------------------------------------------


class _FsVersioned(_FsBase[_VIndex], VersionedStore[Any]):
    _index_class = _VIndex

    def _put(
        self,
        scope: Scope,
        index: ArtifactIndex,
        document: bytes,
        content_hash: str,
        *,
        if_match: str | None,
        create_only: bool,
    ) -> str:
        aid, version = index.artifact_id, index.version
        label = f"{self.kind.label} {aid}@{version} in {scope}"
        folder = self._folder(scope)
        current_path = self._path(scope, aid, f"{version}.json")
        history = self._path(scope, aid, HISTORY_DIR, version)

        def op(indexes: dict[str, _VIndex], txn: _Txn) -> tuple[str, dict[str, _VIndex]]:
            idx = indexes[folder]
            cur = idx.entries.get((aid, version))
            if cur is None:
                if if_match is not None:
                    raise ConflictError(f"{label} does not exist; if_match={if_match!r} cannot hold")
            else:
                if create_only:
                    raise ConflictError(f"{label} already exists (create_only)")
                if if_match is not None and if_match != cur.etag:
                    raise ConflictError(f"{label} changed since etag {if_match!r} (now {cur.etag!r})")
            old = read_file(current_path)
            self._check_fresh(folder, cur.content_hash if cur else None, old)
            if cur is not None and cur.content_hash == content_hash:
                return cur.etag, {}
            stamp = _next_stamp(idx.last_stamp)
            revision = cur.revision + 1 if cur else 1
            if cur is None and os.path.lexists(history):
                txn.move_away(history)  # left by an interrupted delete: a new artifact starts afresh
            make_dirs(history)
            # The history revision first, durable: it is the commit point. The current file is a
            # copy of it that a repair restores (written without fsync when the index is lazy).
            revision_path = os.path.join(history, f"{revision}.json")
            txn.write(revision_path, document, read_file(revision_path), stamp=stamp)
            lazy = txn.lazy
            if lazy and old is not None:
                # Rewritten in place (under the exclusive lock, so no reader of the store sees it
                # half-way): a rename over it would make ext4 flush the unsynced copy at once.
                previous = old
                txn.write_in_place(current_path, document, lambda: previous[0], mtime_ns=stamp)
            else:
                txn.write(current_path, document, old, stamp=stamp, sync_dir=not lazy, durable=not lazy)
            entry = _VEntry(index, revision, stamp, content_hash)
            entries = dict(idx.entries)
            entries[entry.key] = entry
            return entry.etag, {folder: _VIndex(scope, stamp, entries)}

        return self._write([scope], op)

    def _get(self, scope: Scope, artifact_id: str, version: str | None) -> StoredDoc | None:
        folder = self._folder(scope)

        def op(idx: _VIndex) -> StoredDoc | None:
            if version is None:
                # One small listdir keeps "latest" true to the files after a git pull added or
                # removed a version behind the index's back.
                self._check_versions(folder, scope, idx, artifact_id)
                entry = idx.latest(artifact_id)
            else:
                entry = idx.entries.get((artifact_id, version))
                if entry is None and os.path.exists(self._path(scope, artifact_id, f"{version}.json")):
                    raise _Stale(folder)
            if entry is None:
                return None
            path = self._path(scope, artifact_id, f"{entry.index.version}.json")
            return StoredDoc(
                self._read_verified(folder, path, entry.content_hash), entry.etag, entry.content_hash
            )

        return self._read(scope, op)

    def _restore_current(self, id_dir: str, history: str, version: str) -> bool:
        """Write ``<version>.json`` from its last history revision; False if there is none."""
        last = _last_revision_file(history)
        if last is None:
            return False
        with _read_only_tolerated():
            atomic_write(os.path.join(id_dir, f"{version}.json"), last[1], mtime_ns=last[2])
        return True

    def _repair_current(self, path: str, history: str, got: tuple[bytes, int]) -> tuple[bytes, int]:
        """After a crash: a current file that lags its last history revision (a put stopped
        between the two writes) is restored from it. A current file matching no earlier revision
        is newer than the history (a hand edit; the scan records it as the next revision).
        """
        last = _last_revision_file(history)
        if last is None or last[1] == got[0]:
            return got
        previous = read_file(os.path.join(history, f"{_last_revision(history) - 1}.json"))
        if (previous is None or previous[0] != got[0]) and _is_complete_json(got[0]):
            return got  # complete and matching no earlier revision: a hand edit
        with _read_only_tolerated():
            atomic_write(path, last[1], mtime_ns=last[2])
        return last[1], last[2]

    def _check_versions(self, folder: str, scope: Scope, idx: _VIndex, artifact_id: str) -> None:
        try:
            names = os.listdir(self._path(scope, artifact_id))
        except FileNotFoundError:
            names = []
        on_disk = {n[:-5] for n in names if n.endswith(".json") and not n.startswith(".") and _is_id(n[:-5])}
        if on_disk != {e.index.version for e in idx.by_id.get(artifact_id, ())}:
            raise _Stale(folder)

    def _list(
        self, scope: Scope, limit: int, after: builtins.list[Any] | None, filters: VersionFilters
    ) -> tuple[builtins.list[bytes | str], str | None]:
        folder = self._folder(scope)
        start_after = _version_cursor(after) if after is not None else None

        def op(idx: _VIndex) -> tuple[builtins.list[bytes | str], str | None]:
            ordered = idx.ordered
            page: builtins.list[_VEntry] = []
            more = False
            for pos in range(idx.start_after(start_after), len(ordered)):
                entry = ordered[pos]
                if filters.matches(entry.index):
                    if len(page) == limit:
                        more = True
                        break
                    page.append(entry)
            docs: builtins.list[bytes | str] = [
                self._read_verified(
                    folder, self._path(scope, e.index.artifact_id, f"{e.index.version}.json"), e.content_hash
                )
                for e in page
            ]
            last = page[-1].index if page else None
            cursor = (
                encode_cursor([last.artifact_id, last.version_key, last.version]) if more and last else None
            )
            return docs, cursor

        return self._read(scope, op)

    def _delete(self, scope: Scope, artifact_id: str, version: str | None, if_match: str | None) -> bool:
        folder = self._folder(scope)
        id_dir = self._path(scope, artifact_id)

        def op(indexes: dict[str, _VIndex], txn: _Txn) -> tuple[bool, dict[str, _VIndex]]:
            idx = indexes[folder]
            if version is None:
                found = idx.by_id.get(artifact_id, [])
                if not found:
                    if os.path.isdir(id_dir) and any(
                        n.endswith(".json") and not n.startswith(".") and _is_id(n[:-5])
                        for n in os.listdir(id_dir)
                    ):
                        raise _Stale(folder)
                    return False, {}
                # One rename removes every version and its history at once.
                txn.move_away(id_dir)
                entries = {k: v for k, v in idx.entries.items() if k[0] != artifact_id}
                return True, {folder: _VIndex(scope, idx.last_stamp, entries)}
            cur = idx.entries.get((artifact_id, version))
            if if_match is not None and (cur is None or cur.etag != if_match):
                raise ConflictError(
                    f"{self.kind.label} {artifact_id}@{version} in {scope} does not match etag {if_match!r}"
                )
            current_path = self._path(scope, artifact_id, f"{version}.json")
            self._check_fresh(folder, cur.content_hash if cur else None, read_file(current_path))
            if cur is None:
                return False, {}
            # The current file goes first (the commit point); a history left behind by a crash is
            # an orphan that the rebuild removes.
            txn.move_away(current_path)
            history = self._path(scope, artifact_id, HISTORY_DIR, version)
            if os.path.lexists(history):
                txn.move_away(history)
            txn.after_commit(lambda: _remove_empty_dirs(os.path.dirname(history), id_dir))
            entries = dict(idx.entries)
            del entries[(artifact_id, version)]
            return True, {folder: _VIndex(scope, idx.last_stamp, entries)}

        if not os.path.isdir(folder):  # nothing to delete; do not create folders for a no-op
            return self._absent(f"{self.kind.label} {artifact_id}@{version} in {scope}", if_match)
        return self._write([scope], op)

    def _history(self, scope: Scope, artifact_id: str, version: str) -> builtins.list[Revision]:
        folder = self._folder(scope)
        history = self._path(scope, artifact_id, HISTORY_DIR, version)

        def op(idx: _VIndex) -> builtins.list[Revision]:
            cur = idx.entries.get((artifact_id, version))
            if cur is None:
                return []
            out = []
            for n in range(1, cur.revision + 1):
                got = read_file(os.path.join(history, f"{n}.json"))
                if got is None:
                    raise _Stale(folder)
                digest = sha256_hex(got[0])
                stamp = got[1]
                if n == cur.revision:
                    if digest != cur.content_hash:
                        raise _Stale(folder)
                    stamp = cur.stamp
                out.append(
                    Revision(artifact_id, version, n, _etag(n, stamp, digest), digest, _stamp_time(stamp))
                )
            return out

        return self._read(scope, op)

    def _get_revision(
        self, scope: Scope, artifact_id: str, version: str, revision: int
    ) -> bytes | str | None:
        if not isinstance(revision, int) or isinstance(revision, bool):
            raise InvalidArtifactError("revision must be an integer", field="revision")
        history = self._path(scope, artifact_id, HISTORY_DIR, version)

        def op(idx: _VIndex) -> bytes | None:
            cur = idx.entries.get((artifact_id, version))
            if cur is None or not 1 <= revision <= cur.revision:
                return None
            got = read_file(os.path.join(history, f"{revision}.json"))
            if got is None:
                raise _Stale(self._folder(scope))
            return got[0]

        return self._read(scope, op)

    # rebuild ----------------------------------------------------------------------------------
    def _scan(self, folder: str, scope: Scope, old: _VIndex | None, *, repairing: bool = False) -> _VIndex:
        names = sorted(os.listdir(folder))
        self._remove_garbage(folder, names)
        entries: dict[tuple[str, str], _VEntry] = {}
        last_stamp = old.last_stamp if old else 0
        appended: builtins.list[tuple[str, bytes, tuple[str, str], ArtifactIndex, int, str]] = []
        for name in names:
            id_dir = os.path.join(folder, name)
            if name.startswith(".") or not _is_id(name) or not os.path.isdir(id_dir):
                continue
            for key, index, data, digest, history, last_rev in self._scan_id(id_dir, name, scope, repairing):
                if last_rev is not None:
                    revision, stamp = last_rev
                    entries[key] = _VEntry(index, revision, stamp, digest)
                    last_stamp = max(last_stamp, stamp)
                else:
                    appended.append((history, data, key, index, _last_revision(history), digest))
        for history, data, key, index, last, digest in appended:
            # A current file without a matching last history file: a crash between the two writes,
            # or a hand edit. Record it as the next revision.
            last_stamp = _next_stamp(last_stamp)
            path = os.path.join(history, f"{last + 1}.json")
            with _read_only_tolerated():
                make_dirs(history)
                atomic_write(path, data, mtime_ns=last_stamp)
            entries[key] = _VEntry(index, last + 1, last_stamp, digest)
        return _VIndex(scope, last_stamp, entries)

    def _scan_id(
        self, id_dir: str, artifact_id: str, scope: Scope, repairing: bool = False
    ) -> Iterator[tuple[tuple[str, str], ArtifactIndex, bytes, str, str, tuple[int, int] | None]]:
        names = os.listdir(id_dir)
        # Versions a delete was removing when it stopped (their current file is in the trash).
        deleting = {
            n[1:].split(".json.", 1)[0] for n in names if n.startswith(".") and n.endswith(TRASH_SUFFIX)
        }
        self._remove_garbage(id_dir, names)
        versions = {n[:-5] for n in names if n.endswith(".json") and not n.startswith(".") and _is_id(n[:-5])}
        history_root = os.path.join(id_dir, HISTORY_DIR)
        if os.path.isdir(history_root):
            history_names = os.listdir(history_root)
            self._remove_garbage(history_root, history_names)
            for name in history_names:
                if os.path.isdir(os.path.join(history_root, name)):
                    self._remove_garbage(
                        os.path.join(history_root, name), os.listdir(os.path.join(history_root, name))
                    )
                if name.startswith(".") or name in versions:
                    continue
                # A put stopped between its durable revision and the current file (the first
                # revision of a new version): the revision is the truth, restore the copy.
                if (
                    repairing
                    and name not in deleting
                    and _is_id(name)
                    and self._restore_current(id_dir, os.path.join(history_root, name), name)
                ):
                    versions.add(name)
                    continue
                with _read_only_tolerated():  # orphan of an interrupted delete
                    remove_path(os.path.join(history_root, name))
        for version in sorted(versions):
            path = os.path.join(id_dir, f"{version}.json")
            got = read_file(path)
            if got is None:
                continue
            if repairing:
                got = self._repair_current(path, os.path.join(history_root, version), got)
            data = got[0]
            model = self._parse_file(path, data, scope)
            if (model.artifact_id, model.version) != (artifact_id, version):
                raise InvalidArtifactError(
                    f"{self.kind.label} file {self._rel(path)} holds {model.artifact_id}@{model.version}; "
                    f"its path says {artifact_id}@{version}",
                    field=self.kind.id_field,
                )
            digest = sha256_hex(data)
            history = os.path.join(history_root, version)
            last = _last_revision(history)
            matched: tuple[int, int] | None = None
            if last:
                got_last = read_file(os.path.join(history, f"{last}.json"))
                if got_last is not None and sha256_hex(got_last[0]) == digest:
                    matched = (last, got_last[1])
            yield (artifact_id, version), ArtifactIndex.of(model), data, digest, history, matched


def _is_complete_json(data: bytes) -> bool:
    # A copy rewritten in place and cut short by a crash is torn JSON (or torn canonical bytes).
    try:
        value = json.loads(data)
    except ValueError:
        return False
    return isinstance(value, dict) and canonical_json(value) == data


def _last_revision_file(history: str) -> tuple[str, bytes, int] | None:
    last = _last_revision(history)
    if not last:
        return None
    path = os.path.join(history, f"{last}.json")
    got = read_file(path)
    return (path, got[0], got[1]) if got is not None else None


def _is_id(name: str) -> bool:
    try:
        validate_id(name, "name")
    except InvalidArtifactError:
        return False
    return True


def _last_revision(history: str) -> int:
    try:
        names = os.listdir(history)
    except FileNotFoundError:
        return 0
    numbers = [
        int(n[:-5]) for n in names if n.endswith(".json") and n[:-5].isdigit() and not n.startswith("0")
    ]
    return max(numbers, default=0)


def _remove_empty_dirs(*folders: str) -> None:
    for folder in folders:
        try:
            os.rmdir(folder)
        except OSError:
            return


class FilesystemContractStore(_FsVersioned, ContractStore):
    """Data contracts as files under ``<root>/<tenant>/<environment>/contracts/``."""

    def _get_latest_for_dataset(self, scope: Scope, dataset_type: str) -> StoredDoc | None:
        folder = self._folder(scope)

        def op(idx: _VIndex) -> StoredDoc | None:
            entry = idx.latest_for_dataset(dataset_type)
            if entry is None:
                return None
            path = self._path(scope, entry.index.artifact_id, f"{entry.index.version}.json")
            return StoredDoc(
                self._read_verified(folder, path, entry.content_hash), entry.etag, entry.content_hash
            )

        return self._read(scope, op)


class FilesystemJobDefinitionStore(_FsVersioned, JobDefinitionStore):
    """Job definitions as files under ``<root>/<tenant>/<environment>/job_definitions/``."""


class FilesystemActionProfileStore(_FsVersioned, ActionProfileStore):
    """Action profiles as files under ``<root>/<tenant>/<environment>/action_profiles/``."""


# -- job runs -----------------------------------------------------------------------------------


class FilesystemJobRunStore(_FsBase[_RIndex], JobRunStore):
    """Job runs as files ``<root>/<tenant>/<environment>/job_runs/<job_id>.json``."""

    _index_class = _RIndex
    _identity: str | None = None

    def _store_identity(self, create: bool) -> str | None:
        # ``<root>/.dq-store.json`` holds {"store_id": ...}; created on the first payload write.
        if self._identity is not None:
            return self._identity
        path = self._root.join(STORE_FILE)
        with self._translate("read", path):
            found = _read_store_id(path)
            if found is None and create:
                make_dirs(self._root.path)
                tmp = f"{path}.{uuid.uuid4().hex}{TEMP_SUFFIX}"
                atomic_write(tmp, json.dumps({"store_id": uuid.uuid4().hex[:16]}).encode(), sync_dir=False)
                try:
                    os.link(tmp, path)  # fails if another process recorded one first: theirs wins
                    fsync_dir(self._root.path)
                except FileExistsError:
                    pass
                finally:
                    os.unlink(tmp)
                found = _read_store_id(path)
        self._identity = found
        return found

    def _put_run(
        self,
        scope: Scope,
        index: RunIndex,
        document: bytes,
        content_hash: str,
        *,
        if_match: str | None,
        create_only: bool,
    ) -> str:
        folder = self._folder(scope)
        label = f"job run {index.job_id} in {scope}"

        def op(indexes: dict[str, _RIndex], txn: _Txn) -> tuple[str, dict[str, _RIndex]]:
            idx = indexes[folder]
            cur = idx.entries.get(index.job_id)
            if cur is None:
                if if_match is not None:
                    raise ConflictError(f"{label} does not exist; if_match={if_match!r} cannot hold")
            else:
                if create_only:
                    raise ConflictError(f"{label} already exists (create_only)")
                if if_match is not None and if_match != cur.etag:
                    raise ConflictError(f"{label} changed since etag {if_match!r} (now {cur.etag!r})")
            path = self._path(scope, f"{index.job_id}.json")
            old = read_file(path)
            self._check_fresh(folder, cur.content_hash if cur else None, old)
            if cur is not None:
                if cur.content_hash == content_hash:
                    return cur.etag, {}
                self._check_transition(label, cur, index)
            entry = self._entry(scope, idx.last_stamp, cur, index, content_hash)
            txn.write(path, document, old, stamp=entry.stamp, sync_dir=False)
            entries = dict(idx.entries)
            entries[index.job_id] = entry
            return entry.etag, {folder: _RIndex(scope, entry.stamp, entries)}

        return self._write([scope], op)

    @staticmethod
    def _check_transition(label: str, cur: _REntry, index: RunIndex) -> None:
        if not check_transition(JobRunStatus(cur.index.status), JobRunStatus(index.status)):
            raise InvalidArtifactError(
                f"{label}: status may not change from {cur.index.status} to {index.status}", field="status"
            )

    @staticmethod
    def _entry(
        scope: Scope, last_stamp: int, cur: _REntry | None, index: RunIndex, content_hash: str
    ) -> _REntry:
        stamp = _next_stamp(last_stamp)
        # A run without timestamps sorts by the time the store first recorded it (as in SQL).
        run_time = index.run_time or (cur.run_time if cur else _stamp_time(stamp))
        return _REntry(
            index, run_time, cur.revision + 1 if cur else 1, stamp, content_hash, scope.environment
        )

    def put_many(self, runs: Sequence[JobRun]) -> builtins.list[str]:
        """Upsert many runs: one lock and one index write per scope, all or nothing (every status
        transition is checked before the first file is written).
        """
        if not runs:
            return []
        prepared = []
        for run in runs:
            model = self._coerce(run)
            scope = Scope(model.tenant_id, model.environment)
            document = canonical_json(model)
            prepared.append((scope, RunIndex.of(model), document, sha256_hex(document)))

        def op(indexes: dict[str, _RIndex], txn: _Txn) -> tuple[builtins.list[str], dict[str, _RIndex]]:
            working: dict[str, dict[str, _REntry]] = {}
            stamps = {folder: idx.last_stamp for folder, idx in indexes.items()}
            staged: dict[str, tuple[bytes, tuple[bytes, int] | None, _REntry]] = {}
            etags: builtins.list[str] = []
            for scope, index, document, content_hash in prepared:
                folder = self._folder(scope)
                entries = working.setdefault(folder, dict(indexes[folder].entries))
                path = self._path(scope, f"{index.job_id}.json")
                cur = entries.get(index.job_id)
                if path in staged:
                    old = staged[path][1]
                else:
                    old = read_file(path)
                    self._check_fresh(folder, cur.content_hash if cur else None, old)
                if cur is not None:
                    if cur.content_hash == content_hash:
                        etags.append(cur.etag)
                        continue
                    self._check_transition(f"job run {index.job_id} in {scope}", cur, index)
                entry = self._entry(scope, stamps[folder], cur, index, content_hash)
                stamps[folder] = entry.stamp
                entries[index.job_id] = entry
                staged[path] = (document, old, entry)
                etags.append(entry.etag)
            for path, (document, old, entry) in staged.items():
                txn.write(path, document, old, stamp=entry.stamp, sync_dir=False)
            touched = {os.path.dirname(path) for path in staged}
            return etags, {f: _RIndex(indexes[f].scope, stamps[f], working[f]) for f in touched}

        return self._write([p[0] for p in prepared], op)

    def _get_run(self, scope: Scope, job_id: str) -> StoredDoc | None:
        folder = self._folder(scope)
        path = self._path(scope, f"{job_id}.json")

        def op(idx: _RIndex) -> StoredDoc | None:
            entry = idx.entries.get(job_id)
            if entry is None:
                if os.path.exists(path):
                    raise _Stale(folder)
                return None
            return StoredDoc(
                self._read_verified(folder, path, entry.content_hash), entry.etag, entry.content_hash
            )

        return self._read(scope, op)

    def _list_runs(
        self,
        tenant: str,
        environment: str | None,
        limit: int,
        after: builtins.list[Any] | None,
        filters: RunFilters,
    ) -> tuple[builtins.list[bytes | str], str | None]:
        start: tuple[str, str, str] | None = None
        if after is not None:
            start = _run_cursor(after)
        if environment is not None:
            scope = Scope(tenant, environment)
            folder = self._folder(scope)

            def op(idx: _RIndex) -> tuple[builtins.list[bytes | str], str | None]:
                selected = idx.select(start, limit + 1, filters)
                page = selected[:limit]
                docs: builtins.list[bytes | str] = [
                    self._read_verified(folder, self._path(scope, f"{e.index.job_id}.json"), e.content_hash)
                    for e in page
                ]
                cursor = encode_cursor(list(page[-1].sort_key)) if len(selected) > limit else None
                return docs, cursor

            return self._read(scope, op)
        # Every environment folder of the tenant: pick the page from the indexes, then read files.
        candidates: builtins.list[builtins.list[_REntry]] = []
        for env in self._environments(tenant):
            candidates.append(
                self._read(Scope(tenant, env), lambda idx: idx.select(start, limit + 1, filters))
            )
        merged = list(heapq.merge(*candidates, key=lambda e: e.sort_key, reverse=True))[: limit + 1]
        page = merged[:limit]
        docs: builtins.list[bytes | str] = []
        by_env: dict[str, builtins.list[_REntry]] = {}
        for entry in page:
            by_env.setdefault(entry.environment, []).append(entry)
        read: dict[tuple[str, str], bytes] = {}
        for env, entries in by_env.items():
            read.update(self._read_runs(Scope(tenant, env), [e.index.job_id for e in entries]))
        for entry in page:
            data = read.get((entry.environment, entry.index.job_id))
            if data is not None:  # deleted since the index was read: skipped, as in a new query
                docs.append(data)
        cursor = encode_cursor(list(page[-1].sort_key)) if len(merged) > limit else None
        return docs, cursor

    def _read_runs(self, scope: Scope, job_ids: Sequence[str]) -> dict[tuple[str, str], bytes]:
        folder = self._folder(scope)

        def op(idx: _RIndex) -> dict[tuple[str, str], bytes]:
            out = {}
            for job_id in job_ids:
                entry = idx.entries.get(job_id)
                if entry is not None:
                    path = self._path(scope, f"{job_id}.json")
                    out[(scope.environment, job_id)] = self._read_verified(folder, path, entry.content_hash)
            return out

        return self._read(scope, op)

    def _environments(self, tenant: str) -> builtins.list[str]:
        tenant_dir = self._root.join(tenant)
        with self._translate("list", tenant_dir):
            try:
                names = os.listdir(tenant_dir)
            except FileNotFoundError:
                return []
            return sorted(
                n
                for n in names
                if not n.startswith(".")
                and _is_id(n)
                and os.path.isdir(os.path.join(tenant_dir, n, self.kind.name))
            )

    def _delete_run(self, scope: Scope, job_id: str, if_match: str | None) -> bool:
        folder = self._folder(scope)
        path = self._path(scope, f"{job_id}.json")

        def op(indexes: dict[str, _RIndex], txn: _Txn) -> tuple[bool, dict[str, _RIndex]]:
            idx = indexes[folder]
            cur = idx.entries.get(job_id)
            if if_match is not None and (cur is None or cur.etag != if_match):
                raise ConflictError(f"job run {job_id} in {scope} does not match etag {if_match!r}")
            self._check_fresh(folder, cur.content_hash if cur else None, read_file(path))
            if cur is None:
                return False, {}
            txn.move_away(path)
            entries = dict(idx.entries)
            del entries[job_id]
            return True, {folder: _RIndex(scope, idx.last_stamp, entries)}

        if not os.path.isdir(folder):  # nothing to delete; do not create folders for a no-op
            return self._absent(f"job run {job_id} in {scope}", if_match)
        return self._write([scope], op)

    # rebuild ----------------------------------------------------------------------------------
    def _scan(self, folder: str, scope: Scope, old: _RIndex | None, *, repairing: bool = False) -> _RIndex:
        names = sorted(os.listdir(folder))
        self._remove_garbage(folder, names)
        entries: dict[str, _REntry] = {}
        last_stamp = old.last_stamp if old else 0
        for name in names:
            if name.startswith(".") or not name.endswith(".json") or not _is_id(name[:-5]):
                continue
            path = os.path.join(folder, name)
            got = read_file(path)
            if got is None:
                continue
            data, mtime = got
            model = self._parse_file(path, data, scope)
            if model.job_id != name[:-5]:
                raise InvalidArtifactError(
                    f"job run file {self._rel(path)} holds job {model.job_id}; its path says {name[:-5]}",
                    field="job_id",
                )
            index = RunIndex.of(model)
            digest = sha256_hex(data)
            prev = old.entries.get(index.job_id) if old else None
            if prev is not None and prev.content_hash == digest:
                entry = prev
            else:
                stamp = max(mtime, prev.stamp + 1) if prev else mtime
                run_time = index.run_time or (prev.run_time if prev else _stamp_time(mtime))
                revision = prev.revision + 1 if prev else 1
                entry = _REntry(index, run_time, revision, stamp, digest, scope.environment)
            entries[index.job_id] = entry
            last_stamp = max(last_stamp, entry.stamp)
        return _RIndex(scope, last_stamp, entries)


# -- opening ------------------------------------------------------------------------------------


def root_from_url(url: str) -> str:
    """The folder of a ``file://`` URL: ``file:///abs/path`` is absolute, ``file://rel/path``
    is relative to the working directory. Percent-escapes are decoded.
    """
    parts = urlsplit(url)
    if parts.scheme != "file":
        raise InvalidArtifactError(f"not a file:// URL: {url!r}", field="url")
    if parts.query or parts.fragment:
        raise InvalidArtifactError("file:// store URLs take no query or fragment", field="url")
    path = unquote(parts.netloc + parts.path)
    if not path or "\x00" in path:
        raise InvalidArtifactError("file:// store URL needs a folder, e.g. file:///var/lib/dq", field="url")
    return path


STORE_FILE = ".dq-store.json"
"""The store's identity file at the root (a dot-file: never taken for a tenant)."""


def _read_store_id(path: str) -> str | None:
    data = read_file(path)
    if data is None:
        return None
    try:
        value = json.loads(data[0])["store_id"]
        return validate_id(value, "store_id")
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidArtifactError(
            f"{STORE_FILE} at the store root is not a store identity", field="store_id"
        ) from exc


def open_filesystem_backend(
    url: str,
    *,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    create: bool = True,
    **options: Any,
) -> Backend:
    """The four filesystem stores under the folder of ``url`` (created on the first write): the
    metadata backend ``open_stores`` uses for ``file://`` URLs. The default results location is
    the folder ``.results`` under the root (a dot-folder: never taken for a tenant).
    ``lock_timeout`` (seconds) bounds the wait for a folder lock held by another writer.
    """
    from dq_stores.results.files import FilePayloadStore

    if options:
        name = sorted(options)[0]
        raise InvalidArtifactError(f"unknown option {name!r} for file:// stores", field=name)
    if isinstance(lock_timeout, bool) or not isinstance(lock_timeout, int | float) or lock_timeout <= 0:
        raise InvalidArtifactError("lock_timeout must be a positive number of seconds", field="lock_timeout")
    root = root_from_url(url)
    if os.path.exists(root) and not os.path.isdir(root):
        raise InvalidArtifactError(f"the store root {root!r} is not a folder", field="url")
    if not create and not os.path.isdir(root):
        raise StoreNotFoundError(f"no store at {redact(url)}: {root} does not exist")
    default = FilePayloadStore(os.path.join(root, ".results"))
    job_runs = FilesystemJobRunStore(root, lock_timeout=lock_timeout)
    return Backend(
        contracts=FilesystemContractStore(root, lock_timeout=lock_timeout),
        job_definitions=FilesystemJobDefinitionStore(root, lock_timeout=lock_timeout),
        action_profiles=FilesystemActionProfileStore(root, lock_timeout=lock_timeout),
        job_runs=job_runs,
        url=redact(url),
        close=job_runs.close,
        default_results=lambda: default,
    )


def open_filesystem_stores(url: str, **options: Any) -> Stores:
    """``open_stores`` for a ``file://`` URL, ignoring the environment (kept for existing callers)."""
    from dq_stores.stores import open_stores

    root_from_url(url)  # a file:// URL, or InvalidArtifactError
    return open_stores(url, use_env=False, **options)
