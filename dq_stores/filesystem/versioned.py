"""Contracts, job definitions and action profiles on the filesystem: current files, history
revisions (the durable commit point), and the scan that repairs a folder from them.

Part of ``dq_stores.filesystem`` (its docstring describes the layout and the guarantees).
"""

from __future__ import annotations

import builtins
import json
import os
from collections.abc import Iterator
from typing import Any

from dq_stores.base import (
    ActionProfileStore,
    ContractStore,
    JobDefinitionStore,
    Revision,
    StoredDoc,
    VersionedStore,
    VersionFilters,
)
from dq_stores.canonical import canonical_json, sha256_hex
from dq_stores.errors import (
    ConflictError,
    InvalidArtifactError,
)
from dq_stores.filesystem._common import (
    HISTORY_DIR,
    _etag,
    _is_id,
    _next_stamp,
    _read_only_tolerated,
    _Stale,
    _stamp_time,
    _version_cursor,
)
from dq_stores.filesystem.base import _FsBase
from dq_stores.filesystem.index import _VEntry, _VIndex
from dq_stores.filesystem.txn import _Txn
from dq_stores.fsio import (
    TRASH_SUFFIX,
    atomic_write,
    make_dirs,
    read_file,
    remove_path,
)
from dq_stores.inputs import encode_cursor
from dq_stores.kinds import ArtifactIndex
from dq_stores.scope import Scope

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
        id_dir = self._root.folder(scope.tenant, scope.environment, self.kind.name, aid)
        current_path = self._root.child(id_dir, f"{version}.json")
        history = self._root.child(id_dir, HISTORY_DIR, version)

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
            # The history revision first, durable (in the journal when lazy): it is the commit
            # point. The current file is a copy of it that a repair restores (written without
            # fsync when the index is lazy).
            revision_path = os.path.join(history, f"{revision}.json")
            lazy = txn.lazy
            if lazy:
                txn.write_journaled(folder, revision_path, document, read_file(revision_path), stamp=stamp)
            else:
                txn.write(revision_path, document, read_file(revision_path), stamp=stamp)
            if lazy and old is not None:
                # Rewritten in place (under the exclusive lock, so no reader of the store sees it
                # half-way): a rename over it would make ext4 flush the unsynced copy at once.
                previous = old
                txn.write_in_place(current_path, document, lambda: previous[0], mtime_ns=stamp)
            else:
                txn.write(current_path, document, old, stamp=stamp, sync_dir=not lazy, durable=not lazy)
            entry = _VEntry(index, revision, stamp, content_hash)
            new = idx.with_entry(entry.key, entry, stamp)
            return entry.etag, {folder: new}

        return self._write([scope], op, journaled=True)

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
