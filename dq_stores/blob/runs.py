"""Job runs on Azure Blob Storage, listed newest first through a time-ordered index.

What lives here: the run write protocol, the index entries and the listings that merge them.
What must not: blob primitives (``dq_stores.blob.backend``), names and metadata packing
(``dq_stores.blob.layout``), the claim check (``dq_stores.results``, which the base class
delegates to). The behaviour callers see is ``dq_stores.base.JobRunStore``; the ``if_match`` /
``create_only`` rules and the retry loop are ``WriteCheck`` and ``optimistic_attempts`` there.

The write protocol. Each run has one index entry, named by its run time; an entry either is
*pending* (no index metadata: readers must check the run itself) or carries the run's index
fields (readers filter on them without downloading the run). A put that creates the run, changes
an indexed field (status, job type, ...) or moves the run time writes the entry as pending, then
the run (conditionally), then the entry's index (conditionally on its pending mark); entries left
stale by a crash or a lost race are skipped by readers, who always check the run they return.

A put that changes no indexed field and not the run time (a metadata update, a result reference:
most read-modify-write loops) writes the run only, conditionally on the revision it read. Why
that is safe: the entry at the run's time carries an index only if the writer that last marked
it pending then wrote the run and finalized the entry, conditionally on its own pending mark;
every later write of the run either kept all indexed fields (this path) or marked the entry
pending first. Hence the index that entry carries always equals the run's indexed fields, which
is what readers' filtering relies on (an entry at a time the run has left is skipped anyway).
The run's metadata holds a digest of its indexed fields (``dqix``): a HEAD tells a writer
whether the fields change, and a reader trusts an entry finalized for older content with the
same fields. Runs written before ``dqix`` existed take the full protocol once.

A put with ``if_match`` whose revision this store has seen (read by ``get_entry``, or written by
this store) decides from that revision's metadata instead of a HEAD: a blob's metadata never
changes without its etag changing, and the run write is conditional on that etag. Answers that
write nothing (identical content, a refused transition) are still taken from a fresh HEAD.
"""

from __future__ import annotations

import builtins
import contextlib
import heapq
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dq_stores.base import JobRunStore, RunFilters, StoredDoc, WriteCheck, optimistic_attempts
from dq_stores.blob.backend import LIST_PAGE, BlobBackend, BlobStoreBase, KnownHeads, now, required
from dq_stores.blob.layout import (
    BlobLayout,
    descending_id,
    descending_time,
    index_digest,
    pack_run_index,
    unpack_run_index,
)
from dq_stores.canonical import sha256_hex
from dq_stores.errors import ConflictError, InvalidArtifactError, NotFoundError
from dq_stores.inputs import encode_cursor, parse_sortable_time, sortable_time
from dq_stores.kinds import RunIndex
from dq_stores.models import JobRun, JobRunStatus
from dq_stores.models.job_runs import check_transition
from dq_stores.scope import Scope, validate_id

__all__ = ["AzureBlobJobRunStore"]


@dataclass(frozen=True)
class _IndexEntry:
    key: tuple[str, str]
    """(name within the environment's index, descending environment): the merge order."""
    environment: str
    job_id: str
    run_time: datetime
    sortable: str
    index: RunIndex | None
    content_hash: str | None
    index_digest: str | None
    """Digest of the packed index the entry carries (compared with the run's ``dqix``)."""


class AzureBlobJobRunStore(BlobStoreBase, JobRunStore):
    """Job runs on Azure Blob Storage, listed newest first through a time-ordered index.

    Results always go to the payload store (``configure_results``): by default the same
    container, under ``<prefix>/.results/<store id>/`` (``open_blob_stores``).
    """

    _identity: str | None = None

    def __init__(self, backend: BlobBackend, *, owns_backend: bool = False) -> None:
        super().__init__(backend, owns_backend=owns_backend)
        self._known = KnownHeads()

    def _store_identity(self, create: bool) -> str | None:
        if self._identity is None:
            self._identity = self._backend.store_identity(create)
        return self._identity

    def _run_meta(
        self, content_hash: str, index: RunIndex, recorded: str, run_time: str, digest: str | None
    ) -> dict[str, str]:
        meta = {
            "dqhash": content_hash,
            "dqstatus": index.status,
            "dqrecorded": recorded,
            "dqruntime": run_time,
        }
        if digest is not None:
            meta["dqix"] = digest  # absent when the index is too big for metadata: never "same index"
        return meta

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
        b = self._backend
        name = b.layout.run(scope, index.job_id)
        label = f"job run {index.job_id} in {scope}"
        check = WriteCheck(label, if_match, create_only)
        new_status = JobRunStatus(index.status)
        packed = pack_run_index(index)
        digest = index_digest(packed) if packed is not None else None
        for attempt in optimistic_attempts(label):
            # The revision the caller's etag names, if this store has seen it (the caller's
            # get_entry, or this store's own last write): no HEAD then, since the run write below
            # is conditional on that very etag.
            known = self._known.get(name, if_match) if attempt == 0 and if_match is not None else None
            current = known or b.head(name)
            old_time: str | None = None
            if current is None:
                check.absent()
                recorded = sortable_time(now())
            else:
                check.present(current.etag)
                old_status = current.metadata.get("dqstatus", JobRunStatus.PENDING.value)
                allowed = check_transition(JobRunStatus(old_status), new_status)
                identical = current.metadata.get("dqhash") == content_hash
                if known is not None and (identical or not allowed):
                    # An answer that writes nothing (a no-op, a refusal) must rest on the run as
                    # it is now, not as the caller saw it: read it.
                    continue
                if not allowed:
                    raise InvalidArtifactError(
                        f"{label}: status may not change from {old_status} to {new_status.value}",
                        field="status",
                    )
                if identical:
                    return current.etag
                recorded = required(current.name, current.metadata, "dqrecorded")
                old_time = required(current.name, current.metadata, "dqruntime")
            # A run without times keeps the time it already had (first: when it was recorded).
            run_time = sortable_time(index.run_time) if index.run_time else (old_time or recorded)
            meta = self._run_meta(content_hash, index, recorded, run_time, digest)
            if (
                current is not None
                and run_time == old_time
                and digest is not None
                and current.metadata.get("dqix") == digest
            ):
                # Same index fields, same time: the run's index entry already tells readers what
                # they need (module docstring), so the run is the only write.
                try:
                    etag = b.put(name, document, meta, etag=current.etag)
                except ConflictError as exc:
                    check.lost_race(exc)
                    continue
                self._known.add(name, etag, meta)
                return etag
            entry = b.layout.run_index(scope, parse_sortable_time(run_time), index.job_id)
            old_entry_etag: str | None = None
            if old_time is not None and old_time != run_time:
                old_head = b.head(b.layout.run_index(scope, parse_sortable_time(old_time), index.job_id))
                old_entry_etag = old_head.etag if old_head else None
            # Pending first: until the run is written, readers must check the run itself.
            entry_etag = b.put(entry, b"", {"dqpending": "1"}, content_type="application/octet-stream")
            try:
                if current is None:
                    etag = b.put(name, document, meta, create=True)
                else:
                    etag = b.put(name, document, meta, etag=current.etag)
            except ConflictError as exc:
                check.lost_race(exc)
                continue  # lost a race with another writer: read again (and re-check the transition)
            self._known.add(name, etag, meta)
            self._finalize_entry(entry, entry_etag, packed, content_hash)
            if old_entry_etag is not None:
                old_name = b.layout.run_index(scope, parse_sortable_time(old_time or run_time), index.job_id)
                # Conditional: if another writer re-used that entry meanwhile, it is theirs now.
                with contextlib.suppress(ConflictError):
                    b.delete(old_name, etag=old_entry_etag)
            return etag
        raise AssertionError("unreachable: optimistic_attempts raises when attempts run out")

    def _finalize_entry(self, entry: str, entry_etag: str, packed: str | None, content_hash: str) -> None:
        if packed is None:
            return  # too big for metadata: stays "check the run" for readers
        meta = {"dqhash": content_hash, "dqindex": packed}
        b = self._backend
        try:
            b.set_metadata(entry, meta, etag=entry_etag)
        except ConflictError:
            pass  # another writer marked it pending again after us: they finish it
        except NotFoundError:
            with contextlib.suppress(ConflictError):
                b.put(entry, b"", meta, create=True, content_type="application/octet-stream")

    def put_many(self, runs: Sequence[JobRun]) -> builtins.list[str]:
        """Upsert many runs, several at a time (each run is its own conditional write: a failure
        leaves the runs before it written; the first error is raised when all are done).
        """
        return self._backend.map(self.put, list(runs))

    def _get_run(self, scope: Scope, job_id: str) -> StoredDoc | None:
        blob = self._backend.get(self._backend.layout.run(scope, job_id))
        if blob is None:
            return None
        self._known.add(blob.name, blob.etag, blob.metadata)  # a put(if_match=this etag) needs no HEAD
        return StoredDoc(blob.content, blob.etag, sha256_hex(blob.content))

    def _delete_run(self, scope: Scope, job_id: str, if_match: str | None) -> bool:
        b = self._backend
        name = b.layout.run(scope, job_id)
        label = f"job run {job_id} in {scope}"
        check = WriteCheck(label, if_match)
        for _ in optimistic_attempts(label):
            current = b.head(name)
            check.deleting(current.etag if current is not None else None)
            if current is None:
                return False
            entry = b.layout.run_index(
                scope, parse_sortable_time(required(current.name, current.metadata, "dqruntime")), job_id
            )
            entry_head = b.head(entry)
            try:
                if not b.delete(name, etag=current.etag):
                    return False
            except ConflictError as exc:
                check.lost_race(exc)
                continue
            if entry_head is not None:
                # Conditional: a writer that re-created the run meanwhile owns the entry now.
                with contextlib.suppress(ConflictError):
                    b.delete(entry, etag=entry_head.etag)
            return True
        raise AssertionError("unreachable: optimistic_attempts raises when attempts run out")

    # listing ----------------------------------------------------------------------------------
    def _entries(self, scope: Scope, start_from: str | None, first_page: int) -> Iterator[_IndexEntry]:
        b = self._backend
        prefix = b.layout.run_index_prefix(scope)
        env_key = descending_id(scope.environment)
        for item in b.scan(prefix, start_from=start_from, first_page=first_page):
            key = item.name[len(prefix) :]
            parsed = b.layout.parse_run_index_key(key)
            if parsed is None:
                continue  # not one of ours
            run_time, job_id = parsed
            meta = item.metadata or {}
            index = unpack_run_index(job_id, meta)
            yield _IndexEntry(
                (key, env_key),
                scope.environment,
                job_id,
                run_time,
                sortable_time(run_time),
                index,
                meta.get("dqhash"),
                index_digest(meta["dqindex"]) if index is not None else None,
            )

    def _list_runs(
        self,
        tenant: str,
        environment: str | None,
        limit: int,
        after: builtins.list[Any] | None,
        filters: RunFilters,
    ) -> tuple[builtins.list[bytes | str], str | None]:
        b = self._backend
        cursor_key: tuple[str, str] | None = None
        if after is not None:
            try:
                job_after = validate_id(after[1], "job_id")
                env_after = validate_id(after[2], "environment")
            except InvalidArtifactError as exc:
                raise InvalidArtifactError("cursor is not one this store issued", field="cursor") from exc
            cursor_key = (
                BlobLayout.run_index_key(parse_sortable_time(after[0]), job_after),
                descending_id(env_after),
            )
        until = descending_time(filters.until) if filters.until is not None else None
        since = descending_time(filters.since) if filters.since is not None else None
        by_fields = (
            any(
                getattr(filters, f) is not None
                for f in (
                    "job_type",
                    "status",
                    "job_definition_id",
                    "dataset_type",
                    "dagster_run_id",
                    "asset_key",
                )
            )
            or filters.partition_key is not None
        )
        first_page = LIST_PAGE if by_fields else limit + 9
        environments = [environment] if environment is not None else self._environments(tenant)
        streams = []
        for env in environments:
            scope = Scope(tenant, env)
            prefix = b.layout.run_index_prefix(scope)
            starts = []
            if cursor_key is not None:
                starts.append(prefix + cursor_key[0])
            if until is not None:
                starts.append(prefix + until + ".")  # '.' > '-': past every entry at `until`
            streams.append(self._entries(scope, max(starts) if starts else None, first_page))
        merged = heapq.merge(*streams, key=lambda e: e.key)

        found: builtins.list[tuple[_IndexEntry, bytes]] = []
        batch: builtins.list[_IndexEntry] = []

        def check(batch: builtins.list[_IndexEntry]) -> None:
            blobs = b.fetch_many([b.layout.run(Scope(tenant, e.environment), e.job_id) for e in batch])
            for entry, blob in zip(batch, blobs, strict=True):
                if blob is None or blob.metadata.get("dqruntime") != entry.sortable:
                    continue  # stale entry: the run is gone or lives under another time
                # The entry describes the run when it was finalized for this very content, or for
                # content with the same index fields (the run's digest of them matches).
                described = entry.index is not None and (
                    blob.metadata.get("dqhash") == entry.content_hash
                    or blob.metadata.get("dqix") == entry.index_digest
                )
                # A pending or outdated entry: the run itself decides.
                if not described and not filters.matches(
                    RunIndex.of(self._decode(blob.content)), entry.run_time
                ):
                    continue
                found.append((entry, blob.content))

        for entry in merged:
            if cursor_key is not None and entry.key <= cursor_key:
                continue
            token = entry.key[0][:20]
            if since is not None and token > since:
                break  # older than `since`, and so is everything after it
            if until is not None and token <= until:
                continue
            if entry.index is not None and not filters.matches(entry.index, entry.run_time):
                continue
            batch.append(entry)
            if len(batch) >= limit + 1 - len(found):
                check(batch)
                batch = []
                if len(found) > limit:
                    break
        if batch and len(found) <= limit:
            check(batch)
        page = found[:limit]
        cursor = None
        if len(found) > limit:
            last = page[-1][0]
            cursor = encode_cursor([last.sortable, last.job_id, last.environment])
        return [doc for _, doc in page], cursor

    def _environments(self, tenant: str) -> builtins.list[str]:
        return self._backend.ids(self._backend.layout.tenant(tenant), "environment")
