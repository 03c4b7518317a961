"""The claim check: where a job run's result lives, and how it gets there and back.

``ResultStore`` is attached to a ``JobRunStore`` by ``open_stores`` (``configure_results``): it
keeps small results inline where the backend can (SQL, through the run store's inline primitives)
and writes larger ones to a payload store (``dq_stores.results.payloads``) under the store's own
namespace (its identity), recording ``uri``, ``sha256``, ``size_bytes`` and ``content_type`` on the
run. Payload first, record second; reads verify hash and size; ``gc_payloads`` collects only this
store's orphans. What must not live here: run-record persistence (the run store's backend
primitives) and how a payload location is opened (``dq_stores.stores``).
"""

from __future__ import annotations

import builtins
import json
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from dq_stores.canonical import canonical_json, sha256_hex
from dq_stores.errors import InvalidArtifactError
from dq_stores.inputs import KEY_PREFIX_RE, check_label, check_media_type, check_write_options
from dq_stores.models import REPORT_MODELS, JobRun, ResultRef
from dq_stores.models.common import CanonicalModel
from dq_stores.results.payloads import DEFAULT_OFFLOAD_THRESHOLD, PayloadStore, parse_result_key, result_key
from dq_stores.scope import Scope, validate_id

if TYPE_CHECKING:
    from dq_stores.base import JobRunStore

__all__ = ["PurgedRun", "ResultStore"]


@dataclass(frozen=True)
class PurgedRun:
    """What ``purge_run`` did: whether the record was deleted, and what happened to its result
    (``None`` when it had none).
    """

    deleted: bool
    result: str | None


class ResultStore:
    """The results of one job-run store: inline (SQL) up to ``offload_threshold`` bytes, else in
    ``payloads`` under the store's namespace; ``legacy`` locations are read, never written.
    """

    def __init__(
        self,
        runs: JobRunStore,
        payloads: PayloadStore | None = None,
        *,
        legacy: Sequence[PayloadStore] = (),
        offload_threshold: int | None = None,
    ) -> None:
        if offload_threshold is not None and (
            isinstance(offload_threshold, bool)
            or not isinstance(offload_threshold, int)
            or offload_threshold < 0
        ):
            raise InvalidArtifactError("offload_threshold must be an integer >= 0", field="offload_threshold")
        self._runs = runs
        self.payloads = payloads
        self.legacy: tuple[PayloadStore, ...] = tuple(legacy)
        self.offload_threshold = DEFAULT_OFFLOAD_THRESHOLD if offload_threshold is None else offload_threshold

    def __repr__(self) -> str:
        return f"ResultStore({self.location!r})"

    @property
    def location(self) -> str:
        """Where offloaded results go, secrets redacted; says so when there is no such place."""
        if self.payloads is None:
            inline = self._runs.supports_inline_results
            return "no results location (results stay inline)" if inline else "no results location"
        return self.payloads.location

    def store_id(self, *, create: bool = False) -> str | None:
        """The run store's identity (the namespace of its payloads); see ``JobRunStore.store_id``."""
        return self._runs.store_id(create=create)

    def close(self) -> None:
        """Nothing to release: the payload stores are closed by whoever opened them."""

    def _own_key(self, uri: str) -> str | None:
        """The key (below this store's namespace) of a payload this store wrote, else ``None``."""
        if self.payloads is None or not self.payloads.owns(uri):
            return None
        namespace = self.store_id()
        key = self.payloads.key_of(uri)
        if namespace is None or not key.startswith(f"{namespace}/"):
            return None
        return key

    def _reader_for(self, uri: str) -> PayloadStore | None:
        for store in (self.payloads, *self.legacy):
            if store is not None and store.owns(uri):
                return store
        return None

    def put_result(
        self,
        tenant: str,
        environment: str,
        job_id: str,
        result: Any,
        *,
        content_type: str | None = None,
        result_type: str | None = None,
        offload: bool | None = None,
    ) -> ResultRef:
        """Store a run's result and point the run record at it; return the reference.

        ``result`` is a report model, a JSON value, ``bytes``, an iterable of byte chunks or a
        binary file (the last two always stream to the payload store). Small results stay inline
        where the backend can; ``offload=True`` forces the payload store, ``False`` forces inline.
        Payload first, record second: a crash in between leaves an orphan payload for ``gc``, never
        a record pointing at nothing. Raises ``NotFoundError`` if the run does not exist.
        """
        from dq_stores.errors import NotFoundError

        scope = Scope(tenant, environment)
        job_id = validate_id(job_id, "job_id")
        if self._runs.get_entry(tenant, environment, job_id) is None:
            raise NotFoundError(f"job run {job_id} not found in {scope}")
        ref = self._write_result(scope, job_id, result, content_type, result_type, offload)
        try:
            old = self._attach_result(scope, job_id, ref)
        except BaseException:
            self._discard_written(scope, job_id, ref)
            raise
        self._after_result_switch(scope, job_id, old, ref)
        return ref

    def put_with_result(
        self,
        run: JobRun | Mapping[str, Any],
        result: Any,
        *,
        if_match: str | None = None,
        create_only: bool = False,
        content_type: str | None = None,
        result_type: str | None = None,
        offload: bool | None = None,
    ) -> tuple[str, ResultRef]:
        """Write a run record and its result as one item: the result first (payload or inline
        body), then the record pointing at it; return ``(etag, ref)``.

        If the result cannot be written (no results location for a result that must be offloaded,
        a failing payload store) nothing is written at all; if the record cannot be written
        (``ConflictError``, a refused status change, an outage) the result just written is removed
        again (best effort; a crash leaves an orphan for ``gc_payloads``). Any ``result`` field of
        ``run`` is replaced by the new reference. Used by ``copy`` and ``import``.
        """
        model = self._runs._coerce(run)
        scope = Scope(model.tenant_id, model.environment)
        check_write_options(if_match, create_only)
        existing = (
            None if create_only else self._runs.get_entry(scope.tenant, scope.environment, model.job_id)
        )
        ref = self._write_result(scope, model.job_id, result, content_type, result_type, offload)
        try:
            etag = self._runs.put(
                model.model_copy(update={"result": ref}), if_match=if_match, create_only=create_only
            )
        except BaseException:
            self._discard_written(scope, model.job_id, ref)
            raise
        old = existing.artifact.result if existing is not None else None
        self._after_result_switch(scope, model.job_id, old, ref)
        return etag, ref

    def needs_results_location(self, size_bytes: int) -> bool:
        """Whether a result of ``size_bytes`` would have to go to a results location here."""
        return not self._runs.supports_inline_results or size_bytes > self.offload_threshold

    def _write_result(
        self,
        scope: Scope,
        job_id: str,
        result: Any,
        content_type: str | None,
        result_type: str | None,
        offload: bool | None,
    ) -> ResultRef:
        """Write the result's bytes (inline body or payload) and return the reference to them;
        nothing points at them yet.
        """
        content_type = check_media_type(content_type)
        result_type = check_label(result_type, "result_type")
        data: Any
        if isinstance(result, (CanonicalModel, Mapping | list)):
            try:
                data = canonical_json(result)
            except RecursionError as exc:
                raise InvalidArtifactError(
                    "result is nested too deeply to be stored as JSON", field="result"
                ) from exc
            content_type = content_type or "application/json"
            result_type = result_type or getattr(result, "report_type", None)
        elif isinstance(result, bytes | bytearray | memoryview):
            data = bytes(result)
        elif isinstance(result, str) or not (hasattr(result, "read") or isinstance(result, Iterable)):
            raise InvalidArtifactError(
                f"a result is a report, a JSON object or list, bytes, an iterable of bytes or a binary "
                f"file; got {type(result).__name__} (encode text first)",
                field="result",
            )
        else:
            data = result  # a stream: size unknown until written
        content_type = content_type or "application/octet-stream"
        small = isinstance(data, bytes) and len(data) <= self.offload_threshold
        use_inline = (
            self._runs.supports_inline_results
            and isinstance(data, bytes)
            and (offload is False or (offload is None and small))
        )
        if use_inline:
            assert isinstance(data, bytes)
            digest = sha256_hex(data)
            self._runs._put_inline(scope, job_id, data, digest, content_type)
            return ResultRef(
                location="inline",
                sha256=digest,
                size_bytes=len(data),
                content_type=content_type,
                result_type=result_type,
            )
        if self.payloads is None:
            from dq_stores.errors import NoResultsLocationError

            size = f"{len(data):,} bytes" if isinstance(data, bytes) else "a stream"
            raise NoResultsLocationError(
                f"the result of job run {job_id} in {scope} ({size}) must be offloaded, but these "
                "stores have no results location; open them with results_url=... "
                "(DQ_STORES_RESULTS_URL, the CLI's --results-url)"
            )
        namespace = self.store_id(create=True)
        # A random name, not the content hash: the payload store hashes while it uploads (the
        # sha256 of 50 MB costs about a third of its upload to Blob), and a stream's hash is not
        # known before its last chunk anyway. The record keeps the sha256 that reads verify.
        key = result_key(scope, job_id, uuid.uuid4().hex, content_type, namespace=namespace)
        info = self.payloads.write(key, data, content_type=content_type)
        return ResultRef(
            location="external",
            uri=info.uri,
            sha256=info.sha256,
            size_bytes=info.size_bytes,
            content_type=content_type,
            result_type=result_type,
        )

    def _discard_written(self, scope: Scope, job_id: str, ref: ResultRef) -> None:
        """Best-effort removal of a result written for a record that was then not written."""
        try:
            if ref.location == "inline":
                # Every body but the one the record points at is an orphan now.
                current = self._runs.get(scope.tenant, scope.environment, job_id)
                kept = current.result if current is not None else None
                keep = kept.sha256 if kept is not None and kept.location == "inline" else None
                self._runs._delete_inline(scope, job_id, keep=keep)
            else:
                self._drop_payload(ref)
        except Exception:
            pass

    def _after_result_switch(self, scope: Scope, job_id: str, old: ResultRef | None, ref: ResultRef) -> None:
        # Only now that the record points at the new result may the old one go.
        if old is not None and old.location == "external" and old.uri != ref.uri:
            self._drop_payload(old)
        if ref.location == "inline":
            self._runs._delete_inline(scope, job_id, keep=ref.sha256)
        elif old is not None and old.location == "inline":
            self._runs._delete_inline(scope, job_id)

    def _attach_result(self, scope: Scope, job_id: str, ref: ResultRef) -> ResultRef | None:
        from dq_stores.errors import ConflictError, NotFoundError

        for _ in range(20):
            entry = self._runs.get_entry(scope.tenant, scope.environment, job_id)
            if entry is None:
                raise NotFoundError(f"job run {job_id} disappeared from {scope} while storing its result")
            old = entry.artifact.result
            updated = entry.artifact.model_copy(update={"result": ref})
            try:
                self._runs.put(updated, if_match=entry.etag)
            except ConflictError:
                continue  # another writer updated the run; re-read and re-apply
            return old
        raise ConflictError(f"job run {job_id} in {scope} kept changing; result not attached")

    def _drop_payload(self, ref: ResultRef) -> bool:
        """Delete a referenced payload if this store wrote it (its own namespace); ``False`` when
        it is left in place (another store's or a pre-identity payload, or already gone).
        """
        if self.payloads is None or ref.uri is None or self._own_key(ref.uri) is None:
            return False
        return self.payloads.delete(ref.uri)

    def iter_result(self, tenant: str, environment: str, job_id: str) -> Iterator[bytes]:
        """Stream a run's result; the hash and size are checked at the end, and a mismatch raises
        ``PayloadIntegrityError`` (so a consumer must not trust the data before the stream ends).
        """
        run = self._runs.get(tenant, environment, job_id)
        if run is None:
            from dq_stores.errors import NotFoundError

            raise NotFoundError(f"job run {job_id} not found in {Scope(tenant, environment)}")
        return self.iter_run_result(run)

    def result_readable(self, run: JobRun) -> bool:
        """Whether these stores can read ``run``'s result (inline, or at a location they were
        opened with); no request is made. ``False`` for a run without a result.
        """
        ref = run.result
        if ref is None:
            return False
        return ref.location == "inline" or (ref.uri is not None and self._reader_for(ref.uri) is not None)

    def iter_run_result(self, run: JobRun) -> Iterator[bytes]:
        """Stream the result of a run record just read (saves the lookup ``iter_result`` makes)."""
        import hashlib

        from dq_stores.errors import NotFoundError, PayloadIntegrityError

        scope = Scope(run.tenant_id, run.environment)
        job_id = run.job_id
        ref = run.result
        if ref is None:
            raise NotFoundError(f"job run {job_id} in {scope} has no result")
        chunks: Iterable[bytes]
        if ref.location == "inline":
            body = self._runs._get_inline(scope, job_id, ref.sha256)
            if body is None:
                raise NotFoundError(f"inline result of job run {job_id} in {scope} is missing")
            chunks = (body,)
        else:
            assert ref.uri is not None
            reader = self._reader_for(ref.uri)
            if reader is None:
                from dq_stores.secrets import redact

                raise NotFoundError(
                    f"result of job run {job_id} in {scope} lives at {redact(ref.uri)}, a location these "
                    f"stores were not opened with (their results location: {self.location}); "
                    "open them with that results_url"
                )
            chunks = reader.read_chunks(ref.uri)

        def verified() -> Iterator[bytes]:
            digest = hashlib.sha256()
            size = 0
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                yield chunk
            if digest.hexdigest() != ref.sha256 or size != ref.size_bytes:
                raise PayloadIntegrityError(
                    f"result of job run {job_id} in {scope} is corrupt: expected sha256 {ref.sha256[:12]}... "
                    f"and {ref.size_bytes} bytes, found {digest.hexdigest()[:12]}... and {size} bytes"
                )

        return verified()

    def get_result(self, tenant: str, environment: str, job_id: str) -> bytes:
        """A run's result bytes, verified against the sha256 and size its record holds."""
        return b"".join(self.iter_result(tenant, environment, job_id))

    def get_result_model(self, tenant: str, environment: str, job_id: str) -> Any:
        """The result parsed into its report model (by ``result_type``), else plain JSON."""
        run = self._runs.get(tenant, environment, job_id)
        data = self.get_result(tenant, environment, job_id)
        model = REPORT_MODELS.get((run.result.result_type or "") if run and run.result else "")
        return model.model_validate_json(data) if model else json.loads(data)

    def delete_result(self, tenant: str, environment: str, job_id: str) -> bool:
        """Remove a run's result: record first (it stops pointing at it), then the payload (if this
        store wrote it).
        """
        scope = Scope(tenant, environment)
        job_id = validate_id(job_id, "job_id")
        entry = self._runs.get_entry(tenant, environment, job_id)
        if entry is None or entry.artifact.result is None:
            return False
        ref = entry.artifact.result
        self._runs.put(entry.artifact.model_copy(update={"result": None}), if_match=entry.etag)
        if ref.location == "inline":
            self._runs._delete_inline(scope, job_id)
        else:
            self._drop_payload(ref)
        return True

    def delete_with_result(self, tenant: str, environment: str, job_id: str) -> bool:
        """Delete a run record and then its result payload (retention): nothing left orphaned.
        A payload this store did not write (another store's, or one from before store identities)
        is left in place: see ``purge_run``, which says so.
        """
        return self.purge_run(tenant, environment, job_id).deleted

    def purge_run(self, tenant: str, environment: str, job_id: str) -> PurgedRun:
        """Delete a run record, then its result: what ``delete_with_result`` does, reporting what
        happened to the result (``"deleted"``, ``"inline"``, ``"left in place: ..."``, ``None``).
        """
        scope = Scope(tenant, environment)
        entry = self._runs.get_entry(tenant, environment, job_id)
        if entry is None:
            return PurgedRun(False, None)
        self._runs.delete(tenant, environment, job_id, if_match=entry.etag)
        ref = entry.artifact.result
        if ref is None:
            return PurgedRun(True, None)
        if ref.location == "inline":
            self._runs._delete_inline(scope, entry.artifact.job_id)
            return PurgedRun(True, "deleted (inline)")
        if self._drop_payload(ref):
            return PurgedRun(True, "deleted")
        from dq_stores.secrets import redact

        uri = redact(ref.uri or "?")
        if ref.uri is not None and self.payloads is not None and self.payloads.owns(ref.uri):
            why = "written by another store or before store identities"
            if self._own_key(ref.uri) is not None:
                why = "already gone"
        else:
            why = "not in this store's results location"
        return PurgedRun(True, f"left in place ({why}): {uri}")

    def gc_payloads(
        self, *, prefix: str = "", older_than: timedelta = timedelta(hours=1), dry_run: bool = False
    ) -> builtins.list[str]:
        """Remove payloads of this store (its own namespace in its results location) that no run
        record points to (orphans of crashed writes), if older than ``older_than`` (a grace period
        so in-flight writes are not collected). Returns their URIs. Payloads of other stores
        sharing the location, and payloads written before store identities, are never touched.
        """
        from datetime import UTC

        if not isinstance(prefix, str) or len(prefix) > 1024 or KEY_PREFIX_RE.fullmatch(prefix) is None:
            # Keys are built from validated ids only, so any other prefix could never match; and
            # it is passed to the payload store's listing, where a NUL or control character makes
            # a service fail (and retry) instead of answering "nothing".
            raise InvalidArtifactError(
                "prefix may only contain letters, digits, '.', '_', '-' and '/'", field="prefix"
            )
        if self.payloads is None:
            return []
        namespace = self.store_id()
        if namespace is None:
            return []  # this store never wrote a payload
        cutoff = datetime.now(UTC) - older_than
        removed: builtins.list[str] = []
        for listing in self.payloads.list(f"{namespace}/{prefix}"):
            if listing.modified > cutoff:
                continue
            parsed = parse_result_key(listing.key, namespace)
            if parsed is None:
                continue
            scope, job_id = parsed
            run = self._runs.get(scope.tenant, scope.environment, job_id)
            if run is not None and run.result is not None and run.result.uri == listing.uri:
                continue
            if not dry_run:
                self.payloads.delete(listing.uri)
            removed.append(listing.uri)
        return removed
