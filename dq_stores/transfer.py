"""Import, export, copy and retention of store contents, as plain functions over ``Stores``.

This is the logic behind the ``dq-stores`` command (``dq_stores.cli``) and is usable without it:

* ``load_artifacts`` reads JSON / YAML files (a folder is searched recursively), detects each
  document's kind from its id field and validates every document, collecting *every* problem;
  ``plan_import`` compares the valid ones with a store and ``apply_import`` writes them. A caller
  validates all before writing any.
* ``export_scope`` writes one scope as canonical JSON files in the filesystem layout
  ``<dir>/<tenant>/<environment>/<kind>/<id>/<version>.json`` (job runs:
  ``<dir>/<tenant>/<environment>/job_runs/<job_id>.json``), so equal stores export byte-identically.
* ``copy_scope`` copies the current revision of every artifact and every job run (with its result
  payload where both stores can hold one) between any two backends, skipping what is already
  there with the same content hash and verifying the hash after each write.
* ``purge_runs`` deletes job runs older than a cutoff (record first, then its result payload).

Nothing here prints, parses command-line options or knows about click; progress is reported by
yielding one outcome per item, so a caller can drive a progress bar. Nothing here reaches behind
the public Store API (no backend primitives).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pydantic
import yaml

from dq_stores.base import JobRunStore, VersionedStore
from dq_stores.canonical import canonical_json, format_timestamp, sha256_hex
from dq_stores.errors import (
    BackendUnavailableError,
    InvalidArtifactError,
    StoreError,
    StoreNotFoundError,
)
from dq_stores.kinds import ACTION_PROFILES, CONTRACTS, JOB_DEFINITIONS, JOB_RUNS, KINDS, Kind
from dq_stores.models import JobRun, JobRunStatus, ResultRef
from dq_stores.models.common import CanonicalModel
from dq_stores.models.job_runs import check_transition
from dq_stores.registry import Stores
from dq_stores.scope import Scope

__all__ = [
    "ARTIFACT_SUFFIXES",
    "MAX_JSON_FILE_BYTES",
    "MAX_YAML_FILE_BYTES",
    "MAX_YAML_VALUES",
    "VERSIONED_KINDS",
    "CopyOutcome",
    "CopySummary",
    "ExportTargetError",
    "ImportAction",
    "ImportWriteError",
    "LoadedArtifact",
    "Problem",
    "PurgeOutcome",
    "apply_import",
    "available_scopes",
    "check_export_target",
    "copy_scope",
    "detect_kind",
    "export_path",
    "export_scope",
    "find_artifact_files",
    "load_artifacts",
    "parse_duration",
    "plan_import",
    "purge_runs",
    "read_documents",
    "reference_note",
    "remove_stale_exports",
    "unexportable_results",
]

ARTIFACT_SUFFIXES = (".json", ".yaml", ".yml")
VERSIONED_KINDS: tuple[Kind[Any], ...] = (CONTRACTS, ACTION_PROFILES, JOB_DEFINITIONS)
"""Versioned kinds in the order they are imported and copied (referenced before referencing)."""
_KIND_BY_ID_FIELD: dict[str, Kind[Any]] = {k.id_field: k for k in KINDS.values()}
_DETECTION_ORDER = ("job_id", "job_definition_id", "action_profile_id", "contract_id")


# -- reading and validating files ----------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one input document: where it is, the field at fault, what is wrong."""

    where: str
    message: str
    field: str | None = None
    file: str = ""
    """The file the problem is in (``where`` may add a line, a list index, a document id)."""

    def __str__(self) -> str:
        return (
            f"{self.where}: {self.field}: {self.message}" if self.field else f"{self.where}: {self.message}"
        )


@dataclass(frozen=True)
class LoadedArtifact:
    """A valid document read from a file, with its canonical JSON and content hash."""

    kind: Kind[Any]
    model: Any
    document: bytes
    content_hash: str
    where: str
    file: str

    @property
    def scope(self) -> Scope:
        return Scope(self.model.tenant_id, self.model.environment)

    @property
    def version(self) -> str | None:
        return str(self.model.version) if self.kind.versioned else None

    @property
    def key(self) -> tuple[str, str, str, str, str | None]:
        return (
            self.kind.name,
            self.model.tenant_id,
            self.model.environment,
            self.model.artifact_id,
            self.version,
        )

    def describe(self) -> str:
        at = f"@{self.version}" if self.version is not None else ""
        return f"{self.kind.label} {self.scope}/{self.model.artifact_id}{at}"


MAX_JSON_FILE_BYTES = 32 * 1024 * 1024
"""Largest JSON file ``load_artifacts`` reads (32 MiB: up to ~10 s and ~1 GB to parse and
validate a contract with 100,000 columns). A bigger file is refused with a message naming it,
before it is read, so a stray dump cannot take minutes and gigabytes. An artifact is rarely over a
few MB; split a list of many documents into several files."""
MAX_YAML_FILE_BYTES = 8 * 1024 * 1024
"""Largest YAML file ``load_artifacts`` reads (8 MiB, up to ~15 s): YAML parses far slower."""
MAX_YAML_VALUES = 2_000_000
"""Most values a YAML file may expand to through aliases (a "billion laughs" file is small on
disk and endless in memory)."""

_YamlBase: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 4x faster, depth-bounded


class _NoTimestampLoader(_YamlBase):  # type: ignore[misc]
    """YAML without implicit timestamps: ``2024-05-01`` stays a string, as it would in JSON, so
    free-form ``metadata`` keeps its text and typed fields are parsed by the models.
    """


_NoTimestampLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}


def _expands_beyond(root: Any, limit: int) -> str | None:
    """Why a parsed YAML document is too big once aliases are expanded (it expands to more than
    ``limit`` values, or refers to itself), or ``None``. Iterative and memoised: linear in the
    distinct containers, whatever the nesting depth.
    """
    sizes: dict[int, int] = {}
    active: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        if not isinstance(node, dict | list):
            continue
        key = id(node)
        children = [*node.keys(), *node.values()] if isinstance(node, dict) else node
        if finished:
            total = 1 + sum(sizes.get(id(c), 1) for c in children)
            if total > limit:
                return f"it expands to more than {limit:,} values through YAML aliases"
            sizes[key] = total
            active.discard(key)
            continue
        if key in sizes:
            continue
        if key in active:
            return "it refers to itself through a YAML alias"
        active.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if isinstance(c, dict | list))
    return None


def _too_big(path: Path, limit: int) -> Problem | None:
    try:
        size = path.stat().st_size
    except OSError:
        return None  # reading it reports the problem
    if size <= limit:
        return None
    mib = 1024 * 1024
    return Problem(
        str(path),
        f"the file is {size / mib:,.1f} MiB; {path.suffix.lower()} files over {limit / mib:g} MiB are "
        "not imported (split it into smaller files)",
        file=str(path),
    )


def find_artifact_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The files to import: files given as they are, folders searched recursively for
    ``*.json``/``*.yaml``/``*.yml`` (hidden files and folders skipped), in a stable order.

    Raises ``FileNotFoundError`` for a path that does not exist.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            matches = [
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in ARTIFACT_SUFFIXES
                and not is_exported_result(p)
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            ]
            found.extend(sorted(matches))
        elif path.exists():
            found.append(path)
        else:
            raise FileNotFoundError(2, "no such file or folder", str(path))
    unique: dict[Path, None] = dict.fromkeys(found)
    return list(unique)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in canonical JSON")


def read_documents(
    path: Path, *, max_json_bytes: int | None = None, max_yaml_bytes: int | None = None
) -> tuple[list[tuple[str, Any]], list[Problem]]:
    """Parse one file into ``(where, document)`` pairs; a file may hold one document or a list
    (YAML: several ``---`` documents too). Unreadable, broken, too large (``MAX_JSON_FILE_BYTES``,
    ``MAX_YAML_FILE_BYTES``, ``MAX_YAML_VALUES``) or too deeply nested files become one
    ``Problem`` naming the file and, where the parser knows it, the line and column.
    """
    name = str(path)
    suffix = path.suffix.lower()
    limit = (
        (max_json_bytes or MAX_JSON_FILE_BYTES)
        if suffix == ".json"
        else (max_yaml_bytes or MAX_YAML_FILE_BYTES)
    )
    if (too_big := _too_big(path, limit)) is not None:
        return [], [too_big]
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return [], [Problem(name, f"not UTF-8 text (byte {exc.start})", file=name)]
    except OSError as exc:
        return [], [Problem(name, f"cannot read: {exc.strerror or exc}", file=name)]
    roots: list[Any]
    if suffix == ".json":
        try:
            roots = [json.loads(text, parse_constant=_refuse_constant)]
        except json.JSONDecodeError as exc:
            return [], [Problem(f"{name}:{exc.lineno}:{exc.colno}", f"invalid JSON: {exc.msg}", file=name)]
        except ValueError as exc:
            return [], [Problem(name, f"invalid JSON: {exc}", file=name)]
        except RecursionError:
            return [], [Problem(name, "invalid JSON: nested too deeply (objects or arrays)", file=name)]
    elif suffix in (".yaml", ".yml"):
        try:
            roots = [d for d in yaml.load_all(text, Loader=_NoTimestampLoader) if d is not None]
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark is not None else name
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            return [], [Problem(where, f"invalid YAML: {problem}", file=name)]
        except RecursionError:  # the pure-Python parser, without libyaml's depth limit
            return [], [Problem(name, "invalid YAML: nested too deeply", file=name)]
        for root in roots:
            if (why := _expands_beyond(root, MAX_YAML_VALUES)) is not None:
                return [], [Problem(name, f"YAML not imported: {why}", file=name)]
    else:
        return [], [Problem(name, f"not a {', '.join(ARTIFACT_SUFFIXES)} file", file=name)]
    out: list[tuple[str, Any]] = []
    for n, root in enumerate(roots, start=1):
        base = name if len(roots) == 1 else f"{name} (document {n})"
        if isinstance(root, list):
            out.extend((f"{base}[{i}]", item) for i, item in enumerate(root))
        else:
            out.append((base, root))
    if not out:
        return [], [Problem(name, "holds no document", file=name)]
    return out, []


def detect_kind(document: Any) -> Kind[Any]:
    """The kind of a document from its top-level id field.

    A document can also hold references to other kinds (a job run's ``job_definition_id``), so
    the first of ``job_id``, ``job_definition_id``, ``action_profile_id``, ``contract_id`` present
    wins: a run refers to definitions, a definition to profiles and contracts, never the reverse.
    Raises ``InvalidArtifactError`` when the document is not a mapping or has none of them.
    """
    if not isinstance(document, dict):
        raise InvalidArtifactError(
            f"expected an object (a mapping), got {type(document).__name__}", field="<document>"
        )
    for id_field in _DETECTION_ORDER:
        if id_field in document:
            return _KIND_BY_ID_FIELD[id_field]
    raise InvalidArtifactError(
        "cannot tell the artifact kind: the document has none of " + ", ".join(_DETECTION_ORDER),
        field="<document>",
    )


def _validate(file: str, where: str, document: Any) -> LoadedArtifact | list[Problem]:
    try:
        kind = detect_kind(document)
    except InvalidArtifactError as exc:
        return [Problem(where, str(exc), file=file)]
    ident = document.get(kind.id_field)
    label = f"{where} ({kind.label} {str(ident)[:60]!r})" if isinstance(ident, str) else where
    try:
        model: CanonicalModel = kind.model.model_validate(document)
        data = canonical_json(model)
    except pydantic.ValidationError as exc:
        error = InvalidArtifactError.from_pydantic(exc, what=kind.label)
        details = exc.errors(include_url=False, include_input=True)
        return [
            Problem(label, message + _hint(detail), field_name, file)
            for (field_name, message), detail in zip(error.errors, details, strict=False)
        ]
    except InvalidArtifactError as exc:  # NaN, a YAML value JSON cannot hold, too deep
        depth, path = _deepest(document)
        if depth > _DEEP:
            # The serialiser only says "depth exceeded": name where the nesting is instead.
            return [
                Problem(label, f"nested {depth} levels deep; stored documents hold at most ~250", path, file)
            ]
        return [Problem(label, str(exc), exc.field, file)]
    return LoadedArtifact(kind, model, data, sha256_hex(data), where, file)


_DEEP = 200


def _deepest(document: Any) -> tuple[int, str]:
    """Depth of the deepest value of ``document`` and a dotted path to it (first segments only)."""
    best: tuple[int, list[str]] = (0, [])
    stack: list[tuple[Any, int, list[str]]] = [(document, 0, [])]
    while stack:
        node, depth, path = stack.pop()
        if depth > best[0]:
            best = (depth, path)
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            if isinstance(value, dict | list):
                stack.append((value, depth + 1, [*path, str(key)] if len(path) < 4 else path))
    depth, segments = best
    return depth, ".".join(segments) + (".(...)" if depth > len(segments) else "")


def _hint(detail: Any) -> str:
    # YAML reads ``version: 1.0`` as a number; say how to fix it rather than only "not a string".
    value = detail.get("input")
    if detail.get("type") == "string_type" and isinstance(value, int | float) and not isinstance(value, bool):
        return " (got a number: quote it in YAML)"
    return ""


def load_artifacts(
    paths: Iterable[str | os.PathLike[str]],
    *,
    max_json_bytes: int | None = None,
    max_yaml_bytes: int | None = None,
) -> tuple[list[LoadedArtifact], list[Problem]]:
    """Read and validate every document under ``paths``; return the valid ones and every problem.

    The same (kind, scope, id, version) twice with equal content is loaded once; with different
    content it is a problem (importing both would not be idempotent). Files over the size limits
    (``MAX_JSON_FILE_BYTES`` / ``MAX_YAML_FILE_BYTES`` unless given) are problems, not read.
    """
    artifacts: dict[tuple[str, str, str, str, str | None], LoadedArtifact] = {}
    problems: list[Problem] = []
    for path in find_artifact_files(paths):
        documents, parse_problems = read_documents(
            path, max_json_bytes=max_json_bytes, max_yaml_bytes=max_yaml_bytes
        )
        problems.extend(parse_problems)
        for where, document in documents:
            result = _validate(str(path), where, document)
            if isinstance(result, list):
                problems.extend(result)
                continue
            first = artifacts.get(result.key)
            if first is None:
                artifacts[result.key] = result
            elif first.content_hash != result.content_hash:
                problems.append(
                    Problem(
                        where,
                        f"{result.describe()} is also in {first.where} with different content",
                        file=str(path),
                    )
                )
    return list(artifacts.values()), problems


# -- import -----------------------------------------------------------------------------------------


def _versioned(stores: Stores, kind: Kind[Any]) -> VersionedStore[Any]:
    store: VersionedStore[Any] = getattr(stores, kind.name)
    return store


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
            entry = _versioned(stores, item.kind).get_entry(
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
    what = "an inline result" if ref.location == "inline" else f"a result at {_redact(ref.uri or '?')}"
    return (
        f"{item.describe()} refers to {what} that this store cannot read: the record is imported "
        "with its reference, no payload (an export made by `dq-stores export` carries payloads)"
    )


def _file_sha256(path: Path) -> str:
    import hashlib

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
                    store: Any = stores.job_runs if item.kind is JOB_RUNS else _versioned(stores, item.kind)
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
    import hashlib

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


def _redact(text: str) -> str:
    from dq_stores.secrets import redact

    return redact(text)


# -- scopes -----------------------------------------------------------------------------------------


def available_scopes(stores: Stores) -> list[Scope] | None:
    """Every (tenant, environment) the stores hold (``Stores.list_scopes``, which every backend
    implements); ``None`` only for a third-party ``Stores`` without it.
    """
    lister = getattr(stores, "list_scopes", None)
    if not callable(lister):
        return None
    return list(lister())


# -- export -----------------------------------------------------------------------------------------


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
    """Write ``data`` to ``path`` (temp file + rename); return False if it held them already."""
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


_RESULT_SUFFIXES = {
    "application/json": "json",
    "application/vnd.apache.parquet": "parquet",
    "text/csv": "csv",
}


def portable_run(run: JobRun) -> JobRun:
    """The run as an export holds it: its result reference names the payload file beside the
    record (``<job_id>.result.<ext>``), not where one backend keeps it, so exports of equal stores
    are byte-identical whatever the backend.
    """
    ref = run.result
    if ref is None:
        return run
    suffix = _RESULT_SUFFIXES.get(ref.content_type, "bin")
    portable = ref.model_copy(update={"location": "external", "uri": f"{run.job_id}.result.{suffix}"})
    return run.model_copy(update={"result": portable})


def is_exported_result(path: Path) -> bool:
    """Payload files written by ``export_scope`` (skipped when importing documents)."""
    return ".result." in path.name and path.parent.name == JOB_RUNS.name


def _write_stream_atomic(path: Path, chunks: Iterable[bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def unexportable_results(stores: Stores, scope: Scope, *, results_hint: str = "results_url=...") -> list[str]:
    """Why some run results of ``scope`` could not be exported (one line per run whose result
    lives where these stores cannot read it); empty when every payload can be. No payload is
    read: checked from the records, before an export writes anything.
    """
    problems: list[str] = []
    for run in stores.job_runs.list_by_tenant(scope.tenant, scope.environment):
        if run.result is not None and not stores.job_runs.result_readable(run):
            problems.append(
                f"job run {scope}/{run.job_id}: its result lives at {_redact(run.result.uri or '?')}, a "
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
        for model in _versioned(stores, kind).iter_all(scope.tenant, scope.environment):
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
            _write_stream_atomic(payload, stores.job_runs.iter_run_result(run))
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


# -- copy -------------------------------------------------------------------------------------------


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
        for model in _versioned(source, kind).iter_all(scope.tenant, scope.environment):
            yield _copy_versioned(_versioned(target, kind), kind, scope, model)
    for run in source.job_runs.list_by_tenant(scope.tenant, scope.environment):
        yield _copy_run(
            source.job_runs, target.job_runs, scope, run, source_hint, target_hint, allow_references
        )


_FATAL: tuple[type[StoreError], ...] = (StoreNotFoundError, BackendUnavailableError)
"""Errors about a store as a whole: the copy stops instead of failing every remaining item."""


def _copy_versioned(target: VersionedStore[Any], kind: Kind[Any], scope: Scope, model: Any) -> CopyOutcome:
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
        return CopyOutcome(kind, scope, key, "failed", _one_line(exc))
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
        warning = f"copied with its result reference only ({_redact(ref.uri or 'inline')}): no payload"
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
                    f"its result lives at {_redact(ref.uri or '?')}, which the source was not opened "
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
            JOB_RUNS, scope, job_id, "failed", _one_line(exc) + "; nothing of this run was copied"
        )
    if check is None or _run_identity(check.artifact) != _run_identity(run):
        return CopyOutcome(JOB_RUNS, scope, job_id, "failed", "content hash differs after writing")
    return CopyOutcome(JOB_RUNS, scope, job_id, "copied", warning)


# -- retention --------------------------------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+)\s*([a-z]+)")
_UNITS = {
    "w": "weeks",
    "week": "weeks",
    "weeks": "weeks",
    "d": "days",
    "day": "days",
    "days": "days",
    "h": "hours",
    "hour": "hours",
    "hours": "hours",
    "min": "minutes",
    "mins": "minutes",
    "minute": "minutes",
    "minutes": "minutes",
    "s": "seconds",
    "sec": "seconds",
    "secs": "seconds",
    "second": "seconds",
    "seconds": "seconds",
}
_AMBIGUOUS = {
    "m": "'m' could mean minutes or months: write 'min' for minutes, or days (e.g. 180d)",
    "mo": "months have no fixed length: give days (e.g. 180d)",
    "month": "months have no fixed length: give days (e.g. 180d)",
    "months": "months have no fixed length: give days (e.g. 180d)",
    "y": "years have no fixed length: give days (e.g. 365d)",
    "year": "years have no fixed length: give days (e.g. 365d)",
    "years": "years have no fixed length: give days (e.g. 365d)",
}


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``90min``, ``2w``, ``45s`` or combinations (``1d12h``); must be positive.

    Every number needs an explicit unit; ``m`` (minutes or months?), months and years are refused
    rather than guessed: this feeds a delete command.
    """
    cleaned = text.strip().lower()
    parts = _DURATION_PART.findall(cleaned)
    if not parts or _DURATION_PART.sub("", cleaned).strip():
        raise InvalidArtifactError(
            f"invalid duration {text!r}: use numbers with units, e.g. 365d, 12h, 90min, 2w "
            "(units: w, d, h, min, s)",
            field="older_than",
        )
    total = timedelta()
    for number, unit in parts:
        if unit in _AMBIGUOUS:
            raise InvalidArtifactError(f"ambiguous duration {text!r}: {_AMBIGUOUS[unit]}", field="older_than")
        if unit not in _UNITS:
            raise InvalidArtifactError(
                f"invalid duration {text!r}: unknown unit {unit!r} (units: w, d, h, min, s)",
                field="older_than",
            )
        total += timedelta(**{_UNITS[unit]: int(number)})
    if total <= timedelta(0):
        raise InvalidArtifactError(f"duration {text!r} must be positive", field="older_than")
    return total


@dataclass(frozen=True)
class PurgeOutcome:
    """One job run older than the cutoff: deleted, or (dry run) would be deleted; ``result`` says
    what happened to its result (``None``: it had none).
    """

    scope: Scope
    job_id: str
    run_time: datetime | None
    had_result: bool
    deleted: bool
    result: str | None = None

    def __str__(self) -> str:
        when = format_timestamp(self.run_time) if self.run_time else "no run time"
        verb = "deleted" if self.deleted else "would delete"
        text = f"{verb} job run {self.scope}/{self.job_id} ({when})"
        if self.result is not None:
            text += f"; result: {self.result}"
        elif self.had_result:
            text += " with its result"
        return text


def purge_runs(
    store: JobRunStore, scope: Scope, cutoff: datetime, *, dry_run: bool = False
) -> Iterator[PurgeOutcome]:
    """Delete the runs of ``scope`` whose run time is before ``cutoff`` (the store's ``until``
    filter), page by page; yield each. Record first, then its result payload (``purge_run``), so
    no record ever points at a deleted payload; a crash in between leaves at most an orphan
    payload for ``gc_payloads``. A payload this store did not write is left in place, and the
    outcome says so.
    """
    cursor: str | None = None
    while True:
        page = store.list(scope.tenant, scope.environment, until=cutoff, limit=500, cursor=cursor)
        for run in page.items:
            if dry_run:
                yield PurgeOutcome(scope, run.job_id, run.sort_time, run.result is not None, False)
                continue
            purged = store.purge_run(scope.tenant, scope.environment, run.job_id)
            if not purged.deleted:
                continue  # removed by someone else meanwhile
            yield PurgeOutcome(scope, run.job_id, run.sort_time, run.result is not None, True, purged.result)
        # Keyset cursors stay valid after deleting the rows already passed.
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    from dq_stores.secrets import redact

    return redact(text)
