"""Importing documents into stores: plan against what the stores hold (checking everything that
can be checked, exported result payloads included), then write - each run result first, record
second - so that an import is refused whole or done item by item, never half an item.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from dq_stores.base import JobRunStore
from dq_stores.canonical import canonical_json, sha256_hex
from dq_stores.errors import InvalidArtifactError, StoreError
from dq_stores.kinds import JOB_RUNS
from dq_stores.models import JobRunStatus, ResultRef
from dq_stores.models.job_runs import check_transition
from dq_stores.secrets import redact
from dq_stores.stores import Stores
from dq_stores.transfer.common import VERSIONED_KINDS, versioned
from dq_stores.transfer.exporting import portable_run
from dq_stores.transfer.files import LoadedArtifact, Problem

__all__ = ["ImportAction", "ImportWriteError", "apply_import", "plan_import", "reference_note"]


@dataclass(frozen=True)
class ImportAction:
    """What importing one artifact does: ``create``, ``update`` (a new revision / run update) or
    ``unchanged`` (identical content is stored already); ``etag`` is the current one, if any.
    """

    artifact: LoadedArtifact
    action: Literal["create", "update", "unchanged"]
    etag: str | None = None


class ImportWriteError(StoreError):
    """A write failed part-way through an import; ``written`` artifacts were stored before it."""

    def __init__(self, message: str, written: int) -> None:
        super().__init__(message)
        self.written = written


def plan_import(
    stores: Stores, artifacts: Sequence[LoadedArtifact], *, results_hint: str = "results_url=..."
) -> tuple[list[ImportAction], list[Problem]]:
    """Compare each artifact with what ``stores`` hold and check, before anything is written,
    everything that can be checked: job-run status changes the store would refuse (a terminal run
    cannot change status); for runs exported with their result, that the payload file is there
    with the size and sha256 its record names and that these stores can hold it (a results
    location for a result that must be offloaded; ``results_hint`` names how to give one); for
    runs whose result reference names a location, that these stores can read it.
    """
    order = {k.name: i for i, k in enumerate((*VERSIONED_KINDS, JOB_RUNS))}
    actions: list[ImportAction] = []
    problems: list[Problem] = []
    for item in sorted(artifacts, key=lambda a: (order[a.kind.name], a.key)):
        scope = item.scope
        if item.kind is JOB_RUNS:
            entry: Any = stores.job_runs.get_entry(scope.tenant, scope.environment, item.model.job_id)
        else:
            entry = versioned(stores, item.kind).get_entry(
                scope.tenant, scope.environment, item.model.artifact_id, item.version
            )
        if entry is not None and (
            entry.content_hash == item.content_hash
            or (
                _exported_result_file(item) is not None
                and sha256_hex(canonical_json(portable_run(entry.artifact))) == item.content_hash
            )
        ):
            actions.append(ImportAction(item, "unchanged", entry.etag))
            continue
        if item.kind is JOB_RUNS:
            where = f"{item.where} ({item.describe()})"
            if entry is not None:
                old, new = JobRunStatus(entry.artifact.status), JobRunStatus(item.model.status)
                if not check_transition(old, new):
                    problems.append(
                        Problem(
                            where,
                            f"the stored run is {old.value} and cannot change to {new.value}",
                            "status",
                            item.file,
                        )
                    )
                    continue
            problem = _check_run_result(stores.job_runs, item, where, results_hint)
            if problem is not None:
                problems.append(problem)
                continue
        actions.append(
            ImportAction(item, "create" if entry is None else "update", entry.etag if entry else None)
        )
    return actions, problems


def _check_run_result(
    store: JobRunStore, item: LoadedArtifact, where: str, results_hint: str
) -> Problem | None:
    ref: ResultRef | None = item.model.result
    if ref is None:
        return None
    payload = _exported_result_file(item)
    if payload is None:
        return None  # a reference only: imported as it is (see ``reference_note``)
    try:
        size = payload.stat().st_size
    except OSError:
        return Problem(where, f"its result payload {payload} is missing", "result.uri", item.file)
    if size != ref.size_bytes:
        return Problem(
            where,
            f"its result payload {payload} has {size} bytes, the record says {ref.size_bytes}",
            "result.size_bytes",
            item.file,
        )
    if _file_sha256(payload) != ref.sha256:
        return Problem(
            where,
            f"its result payload {payload} does not match the sha256 its record holds",
            "result.sha256",
            item.file,
        )
    if store.payloads is None and store.needs_results_location(size):
        return Problem(
            where,
            f"its result ({size:,} bytes) must go to a results location and the destination store has "
            f"none: give {results_hint}",
            "result",
            item.file,
        )
    return None


def reference_note(stores: Stores, action: ImportAction) -> str | None:
    """A warning for a run imported with a result *reference* (not an exported payload) that
    these stores cannot read: the record is imported as it is, its payload is not.
    """
    item = action.artifact
    ref: ResultRef | None = item.model.result if item.kind is JOB_RUNS else None
    if action.action == "unchanged" or ref is None or _exported_result_file(item) is not None:
        return None
    if stores.job_runs.result_readable(item.model) and ref.location != "inline":
        return None
    what = "an inline result" if ref.location == "inline" else f"a result at {redact(ref.uri or '?')}"
    return (
        f"{item.describe()} refers to {what} that this store cannot read: the record is imported "
        "with its reference, no payload (an export made by `dq-stores export` carries payloads)"
    )


def _file_sha256(path: Path) -> str:

    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(4 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def apply_import(stores: Stores, actions: Iterable[ImportAction]) -> Iterator[ImportAction]:
    """Write the planned changes, yielding each action once done; a run with a result is written
    payload first, record second (``put_with_result``), so no record lands without its result. A
    write that finds the store changed since the plan (``if_match`` / ``create_only``) or fails
    raises ``ImportWriteError`` saying how many writes were done before it.
    """
    written = 0
    for act in actions:
        if act.action != "unchanged":
            item = act.artifact
            payload = _exported_result_file(item)
            try:
                if payload is not None:
                    _import_run_with_result(stores, act, payload)
                else:
                    store: Any = stores.job_runs if item.kind is JOB_RUNS else versioned(stores, item.kind)
                    if act.action == "create":
                        store.put(item.model, create_only=True)
                    else:
                        store.put(item.model, if_match=act.etag)
            except StoreError as exc:
                raise ImportWriteError(
                    f"writing {item.describe()} from {item.where} failed after {written} write(s): {exc}",
                    written,
                ) from exc
            written += 1
        yield act


def _exported_result_file(item: LoadedArtifact) -> Path | None:
    """The payload file an exported run record points to (a bare file name beside it), if any."""
    if item.kind is not JOB_RUNS:
        return None
    ref: ResultRef | None = item.model.result
    if ref is None or ref.uri is None or "/" in ref.uri or ":" in ref.uri:
        return None
    return Path(item.file).parent / ref.uri


def _import_run_with_result(stores: Stores, act: ImportAction, payload: Path) -> None:
    item = act.artifact
    ref: ResultRef = item.model.result
    record = item.model.model_copy(update={"result": None})
    runs = stores.job_runs
    try:
        handle = payload.open("rb")
    except OSError as exc:
        raise InvalidArtifactError(
            f"result payload {payload} of {item.describe()} is missing", field="result.uri"
        ) from exc
    with handle:
        data: Any = handle if runs.needs_results_location(ref.size_bytes) else handle.read()
        runs.put_with_result(
            record,
            _verified(data, ref, str(payload)),
            create_only=act.action == "create",
            if_match=act.etag if act.action == "update" else None,
            content_type=ref.content_type,
            result_type=ref.result_type,
        )


def _verified(data: Any, ref: ResultRef, what: str) -> Any:
    """``data`` (bytes or a binary file) checked against ``ref``'s sha256 and size: bytes at once,
    a file while it streams (a mismatch raises inside the payload write, so nothing is stored).
    """
    from dq_stores.errors import PayloadIntegrityError

    if isinstance(data, bytes):
        if sha256_hex(data) != ref.sha256 or len(data) != ref.size_bytes:
            raise PayloadIntegrityError(f"{what} does not match the sha256/size its record holds")
        return data

    def chunks() -> Iterator[bytes]:
        digest = hashlib.sha256()
        size = 0
        while chunk := data.read(4 * 1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
            yield chunk
        if digest.hexdigest() != ref.sha256 or size != ref.size_bytes:
            raise PayloadIntegrityError(f"{what} does not match the sha256/size its record holds")

    return chunks()
