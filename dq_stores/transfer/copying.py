"""Copying scopes between two stores of any backends: the current revision of every artifact and
every run with its result (written into the destination's own results namespace), skipping what is
already there and verifying every write.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from dq_stores.base import JobRunStore, VersionedStore
from dq_stores.canonical import canonical_json, sha256_hex
from dq_stores.errors import BackendUnavailableError, StoreError, StoreNotFoundError
from dq_stores.kinds import JOB_RUNS, Kind
from dq_stores.models import JobRun
from dq_stores.scope import Scope
from dq_stores.secrets import redact
from dq_stores.stores import Stores
from dq_stores.transfer.common import VERSIONED_KINDS, one_line, versioned

__all__ = ["CopyOutcome", "CopySummary", "copy_scope"]


@dataclass(frozen=True)
class CopyOutcome:
    """What happened to one artifact or run: ``copied``, ``skipped`` (same content already at the
    destination) or ``failed`` (``detail`` says why); ``detail`` may also carry a warning.
    """

    kind: Kind[Any]
    scope: Scope
    key: str
    status: Literal["copied", "skipped", "failed"]
    detail: str | None = None

    def __str__(self) -> str:
        text = f"{self.kind.label} {self.scope}/{self.key}: {self.status}"
        return f"{text}: {self.detail}" if self.detail else text


@dataclass
class CopySummary:
    copied: int = 0
    skipped: int = 0
    failed: int = 0
    failures: list[CopyOutcome] = field(default_factory=list)
    warnings: list[CopyOutcome] = field(default_factory=list)

    def add(self, outcome: CopyOutcome) -> None:
        if outcome.status == "copied":
            self.copied += 1
        elif outcome.status == "skipped":
            self.skipped += 1
        else:
            self.failed += 1
            self.failures.append(outcome)
        if outcome.detail and outcome.status != "failed":
            self.warnings.append(outcome)


def copy_scope(
    source: Stores,
    target: Stores,
    scope: Scope,
    *,
    source_hint: str = "the source's results_url",
    target_hint: str = "the destination's results_url",
    allow_references: bool = False,
) -> Iterator[CopyOutcome]:
    """Copy ``scope`` from ``source`` to ``target``: the current revision of every (id, version)
    of every versioned kind, then every job run with its result. Each item is skipped when the
    target holds the same content, else written (``create_only`` / ``if_match`` against the
    target's current etag, so a concurrent writer is not overwritten) and read back to verify its
    hash. A run with a result is written result first, record second, into the target's own
    results namespace (payloads are never shared between stores); if its result cannot be read
    from the source or written to the target, nothing of the run is written and it counts as
    failed (``source_hint`` / ``target_hint`` say which option gives the missing results
    location). A failing item is reported and the copy goes on, except when a store itself is
    gone or unreachable (``StoreNotFoundError``, ``BackendUnavailableError``): then it stops, since
    every further item would fail the same way. Revision history is not replayed.
    ``allow_references``: a run whose result the source cannot read is copied with its result
    reference as it is (no payload), with a warning, instead of failing.
    """
    for kind in VERSIONED_KINDS:
        for model in versioned(source, kind).iter_all(scope.tenant, scope.environment):
            yield _copyversioned(versioned(target, kind), kind, scope, model)
    for run in source.job_runs.list_by_tenant(scope.tenant, scope.environment):
        yield _copy_run(
            source.job_runs, target.job_runs, scope, run, source_hint, target_hint, allow_references
        )


_FATAL: tuple[type[StoreError], ...] = (StoreNotFoundError, BackendUnavailableError)
"""Errors about a store as a whole: the copy stops instead of failing every remaining item."""


def _copyversioned(target: VersionedStore[Any], kind: Kind[Any], scope: Scope, model: Any) -> CopyOutcome:
    key = f"{model.artifact_id}@{model.version}"
    wanted = sha256_hex(canonical_json(model))
    try:
        existing = target.get_entry(scope.tenant, scope.environment, model.artifact_id, model.version)
        if existing is not None and existing.content_hash == wanted:
            return CopyOutcome(kind, scope, key, "skipped")
        if existing is None:
            target.put(model, create_only=True)
        else:
            target.put(model, if_match=existing.etag)
        check = target.get_entry(scope.tenant, scope.environment, model.artifact_id, model.version)
    except _FATAL:
        raise
    except StoreError as exc:
        return CopyOutcome(kind, scope, key, "failed", one_line(exc))
    if check is None or check.content_hash != wanted:
        return CopyOutcome(kind, scope, key, "failed", "content hash differs after writing")
    return CopyOutcome(kind, scope, key, "copied")


def _run_identity(run: JobRun) -> str:
    """Content hash of a run for "already copied?": the result reference differs between stores
    only by where the payload lives, so compare what it holds, not where.
    """
    if run.result is None:
        return sha256_hex(canonical_json(run))
    doc: dict[str, Any] = json.loads(canonical_json(run))
    ref = run.result
    doc["result"] = {
        "sha256": ref.sha256,
        "size_bytes": ref.size_bytes,
        "content_type": ref.content_type,
        "result_type": ref.result_type,
    }
    return sha256_hex(canonical_json(doc))


def _copy_run(
    source: JobRunStore,
    target: JobRunStore,
    scope: Scope,
    run: JobRun,
    source_hint: str,
    target_hint: str,
    allow_references: bool,
) -> CopyOutcome:
    t, e, job_id = scope.tenant, scope.environment, run.job_id
    ref = run.result
    warning: str | None = None
    if ref is not None and allow_references and not source.result_readable(run):
        warning = f"copied with its result reference only ({redact(ref.uri or 'inline')}): no payload"
        ref = None  # the record, reference included, is copied as it is
    try:
        existing = target.get_entry(t, e, job_id)
        if existing is not None and _run_identity(existing.artifact) == _run_identity(run):
            return CopyOutcome(JOB_RUNS, scope, job_id, "skipped")
        write = {"create_only": True} if existing is None else {"if_match": existing.etag}
        if ref is None:
            target.put(run, **write)
        else:
            if not source.result_readable(run):
                return CopyOutcome(
                    JOB_RUNS,
                    scope,
                    job_id,
                    "failed",
                    f"its result lives at {redact(ref.uri or '?')}, which the source was not opened "
                    f"with; give {source_hint}; nothing of this run was copied",
                )
            if target.payloads is None and target.needs_results_location(ref.size_bytes):
                return CopyOutcome(
                    JOB_RUNS,
                    scope,
                    job_id,
                    "failed",
                    f"its result ({ref.size_bytes:,} bytes) needs a results location at the destination; "
                    f"give {target_hint}; nothing of this run was copied",
                )
            # Small results are read whole (they may go inline); large ones stream, hash-checked
            # by the source while the target writes them (a mismatch aborts the payload write).
            stream = source.iter_run_result(run)
            data: Any = b"".join(stream) if not target.needs_results_location(ref.size_bytes) else stream
            _, written = target.put_with_result(
                run.model_copy(update={"result": None}),
                data,
                content_type=ref.content_type,
                result_type=ref.result_type,
                **write,
            )
            if written.sha256 != ref.sha256 or written.size_bytes != ref.size_bytes:
                return CopyOutcome(
                    JOB_RUNS, scope, job_id, "failed", "result payload hash differs after writing"
                )
        check = target.get_entry(t, e, job_id)
    except _FATAL:
        raise
    except StoreError as exc:
        return CopyOutcome(
            JOB_RUNS, scope, job_id, "failed", one_line(exc) + "; nothing of this run was copied"
        )
    if check is None or _run_identity(check.artifact) != _run_identity(run):
        return CopyOutcome(JOB_RUNS, scope, job_id, "failed", "content hash differs after writing")
    return CopyOutcome(JOB_RUNS, scope, job_id, "copied", warning)
