"""Job runs on the filesystem: one canonical JSON file per run, indexed per tenant/environment.

Part of ``dq_stores.filesystem`` (its docstring describes the layout and the guarantees).
"""

from __future__ import annotations

import builtins
import heapq
import json
import os
import uuid
from collections.abc import Sequence
from typing import Any

from dq_stores.base import (
    JobRunStore,
    RunFilters,
    StoredDoc,
)
from dq_stores.canonical import canonical_json, sha256_hex
from dq_stores.errors import (
    ConflictError,
    InvalidArtifactError,
)
from dq_stores.filesystem._common import (
    _is_id,
    _next_stamp,
    _run_cursor,
    _Stale,
    _stamp_time,
)
from dq_stores.filesystem.base import _FsBase
from dq_stores.filesystem.index import _REntry, _RIndex
from dq_stores.filesystem.txn import _Txn
from dq_stores.fsio import (
    TEMP_SUFFIX,
    atomic_write,
    fsync_dir,
    make_dirs,
    read_file,
)
from dq_stores.inputs import encode_cursor
from dq_stores.kinds import RunIndex
from dq_stores.models import JobRun, JobRunStatus
from dq_stores.models.job_runs import check_transition
from dq_stores.scope import Scope, validate_id

# -- job runs -----------------------------------------------------------------------------------


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
            path = self._root.child(folder, f"{index.job_id}.json")
            old = read_file(path)
            self._check_fresh(folder, cur.content_hash if cur else None, old)
            if cur is not None:
                if cur.content_hash == content_hash:
                    return cur.etag, {}
                self._check_transition(label, cur, index)
            entry = self._entry(scope, idx.last_stamp, cur, index, content_hash)
            if txn.lazy:
                txn.write_journaled(folder, path, document, old, stamp=entry.stamp)
            else:
                txn.write(path, document, old, stamp=entry.stamp, sync_dir=False)
            new = idx.with_entry(index.job_id, entry, entry.stamp)
            return entry.etag, {folder: new}

        return self._write([scope], op, journaled=True)

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
