"""Exporting stores as canonical JSON files (``<dir>/<tenant>/<environment>/<kind>/<id>/<version>.json``,
job runs ``.../job_runs/<job_id>.json``) with each run's result payload beside its record, so that
equal stores export byte-identically whatever their backends and an export imports again whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from dq_stores.canonical import canonical_json
from dq_stores.errors import StoreError
from dq_stores.fsio import atomic_write_stream
from dq_stores.kinds import JOB_RUNS, Kind
from dq_stores.models import JobRun, result_extension
from dq_stores.scope import Scope
from dq_stores.secrets import redact
from dq_stores.stores import Stores
from dq_stores.transfer.common import VERSIONED_KINDS, versioned

__all__ = [
    "ExportTargetError",
    "check_export_target",
    "export_path",
    "export_scope",
    "portable_run",
    "remove_stale_exports",
    "unexportable_results",
]


class ExportTargetError(StoreError):
    """The export folder already holds a scope and overwriting was not asked for."""


def export_path(out_dir: Path, kind: Kind[Any], model: Any) -> Path:
    """Where an artifact goes in the export layout (ids are validated: safe path segments)."""
    base: Path = out_dir / str(model.tenant_id) / str(model.environment) / kind.name
    if kind.versioned:
        return base / str(model.artifact_id) / f"{model.version}.json"
    return base / f"{model.artifact_id}.json"


def check_export_target(out_dir: Path, scopes: Iterable[Scope], *, overwrite: bool) -> None:
    """Refuse to export into a scope folder that already has files, unless ``overwrite``."""
    if overwrite:
        return
    for scope in scopes:
        folder = out_dir / scope.tenant / scope.environment
        if folder.is_dir() and any(folder.iterdir()):
            raise ExportTargetError(
                f"{folder} is not empty; export to an empty folder or pass --overwrite "
                "(which replaces the files of the exported scopes)"
            )


def _write_atomic(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` atomically; return False if it held exactly them already (an
    unchanged file keeps its mtime, so re-exports touch only what changed).
    """
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    # Not fsynced: an export is a copy that can be made again, and thousands of fsyncs would
    # dominate it; the rename still means a reader sees old or new bytes, never a mix.
    atomic_write_stream(path, (data,), durable=False)
    return True


def portable_run(run: JobRun) -> JobRun:
    """The run as an export holds it: its result reference names the payload file beside the
    record (``<job_id>.result.<ext>``), not where one backend keeps it, so exports of equal stores
    are byte-identical whatever the backend.
    """
    ref = run.result
    if ref is None:
        return run
    suffix = result_extension(ref.content_type)
    portable = ref.model_copy(update={"location": "external", "uri": f"{run.job_id}.result.{suffix}"})
    return run.model_copy(update={"result": portable})


def unexportable_results(stores: Stores, scope: Scope, *, results_hint: str = "results_url=...") -> list[str]:
    """Why some run results of ``scope`` could not be exported (one line per run whose result
    lives where these stores cannot read it); empty when every payload can be. No payload is
    read: checked from the records, before an export writes anything.
    """
    problems: list[str] = []
    for run in stores.job_runs.list_by_tenant(scope.tenant, scope.environment):
        if run.result is not None and not stores.job_runs.result_readable(run):
            problems.append(
                f"job run {scope}/{run.job_id}: its result lives at {redact(run.result.uri or '?')}, a "
                f"location these stores were not opened with (give {results_hint})"
            )
    return problems


def export_scope(
    stores: Stores, scope: Scope, out_dir: Path, *, allow_references: bool = False
) -> Iterator[Path]:
    """Write every artifact (each id and version, current revision) and every job run of ``scope``
    under ``out_dir``, with each run's result payload beside it (streamed and hash-verified), and
    yield each file's path. Bytes are the canonical JSON and the result references are
    backend-independent (``portable_run``), so two exports of equal stores are byte-identical,
    whichever backends hold them. A payload that cannot be read raises (``NotFoundError``,
    ``PayloadIntegrityError``): an export holds every payload or fails; check first with
    ``unexportable_results``. ``allow_references``: a run whose result these stores cannot read
    (a reference to a location they were not opened with) is exported with that reference as it
    is, and no payload.
    """
    for kind in VERSIONED_KINDS:
        for model in versioned(stores, kind).iter_all(scope.tenant, scope.environment):
            path = export_path(out_dir, kind, model)
            _write_atomic(path, canonical_json(model))
            yield path
    for run in stores.job_runs.list_by_tenant(scope.tenant, scope.environment):
        path = export_path(out_dir, JOB_RUNS, run)
        record = run
        if run.result is not None and (not allow_references or stores.job_runs.result_readable(run)):
            record = portable_run(run)
            assert record.result is not None
            payload = path.parent / str(record.result.uri)
            atomic_write_stream(payload, stores.job_runs.iter_run_result(run), durable=False)
            yield payload
        _write_atomic(path, canonical_json(record))
        yield path


def remove_stale_exports(out_dir: Path, scope: Scope, written: set[Path]) -> list[Path]:
    """After an ``--overwrite`` export: remove ``*.json`` files of the layout in ``scope`` that
    this export did not write (artifacts deleted since the last export); return them.
    """
    removed: list[Path] = []
    root = out_dir / scope.tenant / scope.environment
    for kind in (*VERSIONED_KINDS, JOB_RUNS):
        folder = root / kind.name
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*.json")):
            if path not in written:
                path.unlink()
                removed.append(path)
        for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), reverse=True):
            if not any(sub.iterdir()):
                sub.rmdir()
    return removed
