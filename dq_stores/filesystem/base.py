"""What the four filesystem stores share: root, index cache, locking, repair and error translation.

Part of ``dq_stores.filesystem`` (its docstring describes the layout and the guarantees).
"""

from __future__ import annotations

import builtins
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from typing import Any, ClassVar, Generic

import pydantic

from dq_stores.canonical import sha256_hex
from dq_stores.errors import (
    BackendUnavailableError,
    ConflictError,
    InvalidArtifactError,
    ScopeViolationError,
)
from dq_stores.filesystem import journal
from dq_stores.filesystem._common import (
    _CACHE_SIZE,
    DEFAULT_LOCK_TIMEOUT,
    INDEX_FILE,
    LOCK_FILE,
    R,
    _CorruptIndex,
    _is_id,
    _read_only_tolerated,
    _Stale,
)
from dq_stores.filesystem.index import IX, _RIndex, _VIndex
from dq_stores.filesystem.txn import _Txn
from dq_stores.fsio import (
    SafeRoot,
    ScopeLock,
    atomic_write,
    atomic_write_stream,
    is_garbage,
    make_dirs,
    read_file,
    remove_path,
)
from dq_stores.kinds import Kind
from dq_stores.scope import Scope

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
        return self._root.folder(scope.tenant, scope.environment, self.kind.name)

    def _path(self, scope: Scope, *segments: str) -> str:
        return self._root.child(self._folder(scope), *segments)

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
        repairing = lock.dirty
        if lock.writable:
            # After a crash the journal's records are the truth for the files they name; either
            # way the index about to be saved durably must not name files that are not durable.
            self._checkpoint(folder, replay=repairing)
        index = self._scan(folder, scope, old, repairing=repairing)
        with _read_only_tolerated():  # a read-only tree: serve the rebuilt index from memory
            self._save_index(folder, index, lock)
            lock.end()
        return index

    def _checkpoint(self, folder: str, *, replay: bool = False) -> None:
        """Empty the folder's journal into durable files (``replay``: write its records back
        first, as after a crash); under the exclusive lock.
        """

        def write_back(records: builtins.list[journal.Record]) -> None:
            last = {record.path: record for record in records}  # a later record of a path wins
            for rel, record in last.items():
                path = self._root.child(folder, *rel.split("/"))
                got = read_file(path)
                if got is not None and got[0] == record.data:
                    if got[1] != record.stamp:
                        os.utime(path, ns=(record.stamp, record.stamp))
                    continue
                atomic_write_stream(path, (record.data,), mtime_ns=record.stamp, durable=False)

        journal.checkpoint(folder, replay=write_back if replay else None)

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
        self,
        scopes: Sequence[Scope],
        op: Callable[[dict[str, IX], _Txn], tuple[R, dict[str, IX]]],
        *,
        journaled: bool = False,
    ) -> R:
        """Run ``op`` under the exclusive locks of ``scopes`` (taken in path order) and save the
        indexes it returns; on an ``OSError`` undo every change it made. An op that does not
        commit through the journal (``journaled``) runs after the folders' journals are emptied:
        a replay must never undo it.
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

            def empty_journals() -> None:
                for folder, lock in locks.items():
                    if lock.writable:
                        self._checkpoint(folder)

            txn = _Txn(list(locks.values()), prepare=None if journaled else empty_journals)
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
            for folder, size in txn.journal_sizes.items():
                if size > journal.CHECKPOINT_BYTES:
                    # The put is committed already: a checkpoint that fails leaves the records in
                    # the journal, and the next put past the limit tries again.
                    with suppress(OSError):
                        self._checkpoint(folder)
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
