"""Contracts, job definitions and action profiles on Azure Blob Storage: the versioned stores.

What lives here: the write protocol of a versioned put (revision n copied into history before
n+1 replaces it, conditionally), the reads that choose from listing metadata, history and
delete. What must not: blob primitives (``dq_stores.blob.backend``), names
(``dq_stores.blob.layout``). The behaviour callers see is ``dq_stores.base.VersionedStore``;
the ``if_match`` / ``create_only`` rules and the retry loop are ``WriteCheck`` and
``optimistic_attempts`` there.

A versioned put writes revision n+1 into the current blob in one conditional request, after
copying revision n (deterministic content) into history, so a crash never loses a revision.
"""

from __future__ import annotations

import builtins
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from dq_stores.base import (
    ActionProfileStore,
    ContractStore,
    JobDefinitionStore,
    Revision,
    StoredDoc,
    VersionedStore,
    VersionFilters,
    WriteCheck,
    optimistic_attempts,
)
from dq_stores.blob.backend import Blob, BlobStoreBase, now, required
from dq_stores.blob.layout import pack_artifact_index, unpack_artifact_index
from dq_stores.canonical import sha256_hex
from dq_stores.errors import BackendUnavailableError, ConflictError, InvalidArtifactError
from dq_stores.inputs import encode_cursor, parse_sortable_time, sortable_time
from dq_stores.kinds import ArtifactIndex
from dq_stores.scope import Scope

__all__ = [
    "AzureBlobActionProfileStore",
    "AzureBlobContractStore",
    "AzureBlobJobDefinitionStore",
    "BlobVersionedStore",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Current:
    name: str
    index: ArtifactIndex
    recorded: str


class BlobVersionedStore(BlobStoreBase, VersionedStore[Any]):
    # put --------------------------------------------------------------------------------------
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
        b = self._backend
        kind = self.kind.name
        aid, version = index.artifact_id, index.version
        name = b.layout.current(scope, kind, aid, version)
        label = f"{self.kind.label} {aid}@{version} in {scope}"
        check = WriteCheck(label, if_match, create_only)
        for _ in optimistic_attempts(label):
            current = None if create_only else b.get(name)
            if current is None:
                check.absent()
                meta = self._metadata(index, content_hash, 1, uuid.uuid4().hex, sortable_time(now()))
                try:
                    return b.put(name, document, meta, create=True)
                except ConflictError as exc:
                    check.lost_race(exc)
                    continue  # created concurrently: go again as an update
            check.present(current.etag)
            if current.metadata.get("dqhash") == content_hash:
                return current.etag
            revision = int(required(current.name, current.metadata, "dqrev"))
            generation = required(current.name, current.metadata, "dqgen")
            # Revision n goes to history before n+1 replaces it; its content is fixed once n was
            # committed, so rewriting it (a retry, a racing writer) is harmless.
            b.put(
                b.layout.revision(scope, kind, aid, version, generation, revision),
                current.content,
                {
                    "dqhash": current.metadata.get("dqhash") or sha256_hex(current.content),
                    "dqetag": current.etag,
                    "dqtime": required(current.name, current.metadata, "dqtime"),
                },
            )
            meta = self._metadata(index, content_hash, revision + 1, generation, sortable_time(now()))
            try:
                return b.put(name, document, meta, etag=current.etag)
            except ConflictError as exc:
                check.lost_race(exc)
        raise AssertionError("unreachable: optimistic_attempts raises when attempts run out")

    @staticmethod
    def _metadata(
        index: ArtifactIndex, content_hash: str, revision: int, generation: str, at: str
    ) -> dict[str, str]:
        meta = {"dqhash": content_hash, "dqrev": str(revision), "dqgen": generation, "dqtime": at}
        packed = pack_artifact_index(index)
        if packed is not None:
            meta["dqindex"] = packed
        return meta

    # reads ------------------------------------------------------------------------------------
    def _stored(self, blob: Blob) -> StoredDoc:
        return StoredDoc(blob.content, blob.etag, sha256_hex(blob.content))

    def _currents(self, scope: Scope, artifact_id: str | None = None) -> builtins.list[_Current]:
        """Every current (id, version) of the kind in the scope, with its index; from the listing
        metadata, downloading only items whose index did not fit in metadata.
        """
        b = self._backend
        found: builtins.list[_Current] = []
        missing: builtins.list[tuple[str, str, str, str]] = []
        for item in b.scan(b.layout.current_prefix(scope, self.kind.name, artifact_id)):
            parsed = b.layout.parse_current(item.name)
            if parsed is None:
                continue
            aid, version = parsed
            meta = item.metadata or {}
            recorded = meta.get("dqtime", "")
            index = unpack_artifact_index(aid, version, meta)
            if index is not None:
                found.append(_Current(item.name, index, recorded))
            else:
                missing.append((item.name, aid, version, recorded))
        blobs = b.fetch_many([m[0] for m in missing])
        for (name, _aid, _version, recorded), blob in zip(missing, blobs, strict=True):
            if blob is not None:
                found.append(_Current(name, ArtifactIndex.of(self._decode(blob.content)), recorded))
        return found

    def _get(self, scope: Scope, artifact_id: str, version: str | None) -> StoredDoc | None:
        b = self._backend
        if version is not None:
            blob = b.get(b.layout.current(scope, self.kind.name, artifact_id, version))
            return self._stored(blob) if blob else None
        for _ in range(3):
            live = [c for c in self._currents(scope, artifact_id) if not c.index.retired]
            if not live:
                return None
            best = max(live, key=lambda c: (c.index.version_key, c.recorded, c.index.version))
            blob = b.get(best.name)
            if blob is not None:
                return self._stored(blob)
            # deleted between the listing and the read: look again
        return None

    def _list(
        self, scope: Scope, limit: int, after: builtins.list[Any] | None, filters: VersionFilters
    ) -> tuple[builtins.list[bytes | str], str | None]:
        rows = [c for c in self._currents(scope, filters.artifact_id) if filters.matches(c.index)]
        rows.sort(key=lambda c: c.index.version)
        rows.sort(key=lambda c: c.index.version_key, reverse=True)
        rows.sort(key=lambda c: c.index.artifact_id)
        if after is not None:
            if not all(isinstance(v, str) for v in after):
                raise InvalidArtifactError("cursor is not one this store issued", field="cursor")
            aid, vkey, ver = after
            rows = [
                c
                for c in rows
                if c.index.artifact_id > aid
                or (c.index.artifact_id == aid and c.index.version_key < vkey)
                or (c.index.artifact_id == aid and c.index.version_key == vkey and c.index.version > ver)
            ]
        page = rows[:limit]
        blobs = self._backend.fetch_many([c.name for c in page])
        docs: builtins.list[bytes | str] = [blob.content for blob in blobs if blob is not None]
        cursor = None
        if len(rows) > limit:
            last = page[-1].index
            cursor = encode_cursor([last.artifact_id, last.version_key, last.version])
        return docs, cursor

    def _history(self, scope: Scope, artifact_id: str, version: str) -> builtins.list[Revision]:
        b = self._backend
        kind = self.kind.name
        current = b.head(b.layout.current(scope, kind, artifact_id, version))
        if current is None:
            return []
        revision = int(required(current.name, current.metadata, "dqrev"))
        prefix = b.layout.history_prefix(
            scope, kind, artifact_id, version, required(current.name, current.metadata, "dqgen")
        )
        revisions: builtins.list[Revision] = []
        for item in b.scan(prefix):
            number = _revision_number(item.name[len(prefix) :])
            meta = item.metadata or {}
            if number is None or number >= revision:
                continue  # a copy written by a put that then lost its race
            revisions.append(
                Revision(
                    artifact_id,
                    version,
                    number,
                    required(item.name, meta, "dqetag"),
                    required(item.name, meta, "dqhash"),
                    parse_sortable_time(required(item.name, meta, "dqtime")),
                )
            )
        revisions.append(
            Revision(
                artifact_id,
                version,
                revision,
                current.etag,
                required(current.name, current.metadata, "dqhash"),
                parse_sortable_time(required(current.name, current.metadata, "dqtime")),
            )
        )
        return sorted(revisions, key=lambda r: r.revision)

    def _get_revision(
        self, scope: Scope, artifact_id: str, version: str, revision: int
    ) -> bytes | str | None:
        if not isinstance(revision, int) or isinstance(revision, bool) or revision < 1:
            return None
        b = self._backend
        kind = self.kind.name
        current = b.get(b.layout.current(scope, kind, artifact_id, version))
        if current is None:
            return None
        latest = int(required(current.name, current.metadata, "dqrev"))
        if revision == latest:
            return current.content
        if revision > latest:
            return None
        old = b.get(
            b.layout.revision(
                scope,
                kind,
                artifact_id,
                version,
                required(current.name, current.metadata, "dqgen"),
                revision,
            )
        )
        return old.content if old else None

    # delete -----------------------------------------------------------------------------------
    def _delete(self, scope: Scope, artifact_id: str, version: str | None, if_match: str | None) -> bool:
        b = self._backend
        if version is not None:
            return self._delete_version(scope, artifact_id, version, if_match)
        versions = [c.index.version for c in self._currents(scope, artifact_id)]
        deleted = b.map(lambda v: self._delete_version(scope, artifact_id, v, None), versions)
        return any(deleted)

    def _delete_version(self, scope: Scope, artifact_id: str, version: str, if_match: str | None) -> bool:
        b = self._backend
        kind = self.kind.name
        name = b.layout.current(scope, kind, artifact_id, version)
        label = f"{self.kind.label} {artifact_id}@{version} in {scope}"
        check = WriteCheck(label, if_match)
        for _ in optimistic_attempts(label):
            current = b.head(name)
            check.deleting(current.etag if current is not None else None)
            if current is None:
                return False
            try:
                if not b.delete(name, etag=current.etag):
                    return False  # deleted by someone else meanwhile
            except ConflictError as exc:
                check.lost_race(exc)
                continue
            # The current blob is gone, so this generation's history is unreachable; remove it.
            # A failure here leaves invisible garbage, never a visible half-deleted artifact.
            prefix = b.layout.history_prefix(
                scope, kind, artifact_id, version, current.metadata.get("dqgen", "-")
            )
            try:
                b.map(lambda n: b.delete(n), [item.name for item in b.scan(prefix)])
            except BackendUnavailableError as exc:
                log.warning("%s deleted; removing its history under %s failed: %s", label, prefix, exc)
            return True
        raise AssertionError("unreachable: optimistic_attempts raises when attempts run out")


def _revision_number(leaf: str) -> int | None:
    if not (leaf.startswith("rev-") and leaf.endswith(".json")):
        return None
    digits = leaf[4:-5]
    return int(digits) if digits.isdigit() else None


class AzureBlobContractStore(BlobVersionedStore, ContractStore):
    """Data contracts on Azure Blob Storage."""

    def _get_latest_for_dataset(self, scope: Scope, dataset_type: str) -> StoredDoc | None:
        for _ in range(3):
            rows = [
                c
                for c in self._currents(scope)
                if not c.index.retired and dataset_type in c.index.dataset_types
            ]
            if not rows:
                return None
            # version key desc, newest revision, then contract id asc (as the SQL backend).
            rows.sort(key=lambda c: c.index.artifact_id)
            rows.sort(key=lambda c: (c.index.version_key, c.recorded), reverse=True)
            blob = self._backend.get(rows[0].name)
            if blob is not None:
                return self._stored(blob)
        return None


class AzureBlobJobDefinitionStore(BlobVersionedStore, JobDefinitionStore):
    """Job definitions / checkpoints on Azure Blob Storage."""


class AzureBlobActionProfileStore(BlobVersionedStore, ActionProfileStore):
    """Action profiles on Azure Blob Storage."""
