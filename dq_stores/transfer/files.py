"""Reading artifact documents from JSON / YAML files: find the files, parse them within size and
alias limits, tell each document's kind from its id field, validate every one and collect every
problem (file, line, field) - so a caller can refuse an import before writing anything.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic
import yaml

from dq_stores.canonical import canonical_json, sha256_hex
from dq_stores.errors import InvalidArtifactError
from dq_stores.kinds import KINDS, Kind
from dq_stores.models.common import CanonicalModel
from dq_stores.scope import Scope
from dq_stores.transfer.common import is_exported_result

__all__ = [
    "ARTIFACT_SUFFIXES",
    "MAX_JSON_FILE_BYTES",
    "MAX_YAML_FILE_BYTES",
    "MAX_YAML_VALUES",
    "LoadedArtifact",
    "Problem",
    "detect_kind",
    "find_artifact_files",
    "load_artifacts",
    "read_documents",
]

ARTIFACT_SUFFIXES = (".json", ".yaml", ".yml")
_KIND_BY_ID_FIELD: dict[str, Kind[Any]] = {k.id_field: k for k in KINDS.values()}
_DETECTION_ORDER = ("job_id", "job_definition_id", "action_profile_id", "contract_id")


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


def _validate(
    file: str, where: str, document: Any, odcs_scope: tuple[str | None, str | None] = (None, None)
) -> LoadedArtifact | list[Problem]:
    from dq_stores.transfer import odcs

    if odcs.is_odcs(document):
        # An ODCS v3 contract: mapped to the native contract, then checked like one.
        try:
            contract = odcs.from_odcs(document, tenant=odcs_scope[0], environment=odcs_scope[1])
        except odcs.OdcsError as exc:
            label = f"{where} (ODCS contract {str(document.get('id'))[:60]!r})"
            message = str(exc).removeprefix(f"{exc.field}: ") if exc.field else str(exc)
            return [Problem(label, message, exc.field, file)]
        document = contract.model_dump(mode="json", exclude_unset=True)
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
    odcs_tenant: str | None = None,
    odcs_environment: str | None = None,
) -> tuple[list[LoadedArtifact], list[Problem]]:
    """Read and validate every document under ``paths``; return the valid ones and every problem.

    ODCS v3 contracts (``kind: DataContract``, ``apiVersion: v3.*``) are read beside native
    documents (``dq_stores.transfer.odcs``): ``odcs_tenant`` is their tenant when they state
    none, ``odcs_environment`` their environment (ODCS has none).

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
            result = _validate(str(path), where, document, (odcs_tenant, odcs_environment))
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
