"""ODCS v3 (Open Data Contract Standard, by Bitol) documents in and out of ``DataContract``.

``from_odcs`` validates a v3.0.x / v3.1.0 document against the standard's own JSON schema (v3.1.0
from the ``open-data-contract-standard`` package, v3.0.x from the schema files the standard
publishes, kept beside this module) and maps it; ``to_odcs`` writes ODCS v3.1.0. The mapping
table is in the README ("ODCS"). Nothing of the source is lost: what has no native field is kept
under the ``metadata["odcs"]`` of the object it belongs to (the contract, a dataset, a column, a
quality rule) and written back on export, so import -> export -> import gives the same contract
and exporting an imported document gives its source back (as v3.1.0). Native parts ODCS cannot
say (rule templates, indexes, allowed values, ...) travel in a ``customProperties`` entry named
``dqStores`` and come back on import.

No Dagster here, and no rule evaluation: the engine (``dq_dagster.engine``) compiles what this
module produces. The ``odcs`` extra (``open-data-contract-standard``, ``jsonschema``) is imported
lazily, on the first validation.

Why one module of ~960 lines: import and export are the two directions of one mapping table
(README "ODCS"); kept side by side so a field cannot be mapped one way only.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import pydantic
import yaml

from dq_stores.errors import InvalidArtifactError
from dq_stores.models import DataContract, DataType, LifecycleStatus, QualityMetric, Severity
from dq_stores.scope import Scope
from dq_stores.stores import Stores

__all__ = [
    "ODCS_API_VERSION",
    "OdcsError",
    "export_odcs_scope",
    "from_odcs",
    "is_odcs",
    "load_odcs",
    "to_odcs",
    "to_odcs_yaml",
    "validate_odcs",
]

ODCS_API_VERSION = "v3.1.0"
"""The version ``to_odcs`` writes."""

_EXTRA = "odcs"
"""Key, in a native ``metadata`` map, of the ODCS fields without a native field."""
_ABSENT = "_absent"
"""Inside the extras: ODCS fields the source did not state although export would derive them."""
_NATIVE = "dqStores"
"""``customProperties`` entry carrying native fields ODCS has no place for."""
_STABLE_ID = re.compile(r"^[A-Za-z0-9_-]+$")


class OdcsError(InvalidArtifactError):
    """An ODCS document is invalid or cannot be mapped; ``field`` is the path inside it."""


# -- reading -----------------------------------------------------------------------------------


def is_odcs(document: Any) -> bool:
    """An ODCS v3 data contract: ``kind: DataContract`` and ``apiVersion: v3.*``."""
    return (
        isinstance(document, dict)
        and document.get("kind") == "DataContract"
        and str(document.get("apiVersion", "")).startswith("v3")
    )


class _NoTimestampLoader(yaml.SafeLoader):
    pass


# Dates stay text, as ODCS means them (``examples: [2022-10-03]`` is a string in the schema).
_NoTimestampLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}


def load_odcs(source: str | Path) -> dict[str, Any]:
    """The document in an ODCS YAML or JSON file (a ``Path``), or in YAML / JSON text (a ``str``)."""
    text = source.read_text(encoding="utf-8") if isinstance(source, Path) else source
    document = yaml.load(text, Loader=_NoTimestampLoader)
    if not isinstance(document, dict):
        raise OdcsError("an ODCS document is a mapping", field="<document>")
    return document


@cache
def _validator(api_version: str) -> Any:
    try:
        # No type stubs are installed for jsonschema; the validator is used as ``Any`` here.
        import jsonschema  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - the odcs extra is in dev
        raise OdcsError(
            "ODCS needs the odcs extra: pip install 'dq-stores[odcs]'", field="apiVersion"
        ) from exc
    if api_version.startswith("v3.0."):
        path = resources.files("dq_stores.transfer") / "odcs_schemas" / f"odcs-json-schema-{api_version}.json"
    else:
        path = resources.files("open_data_contract_standard") / "schema.json"
    schema = json.loads(path.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


_KNOWN_VERSIONS = ("v3.0.0", "v3.0.1", "v3.0.2", "v3.1.0")


def validate_odcs(document: Mapping[str, Any]) -> None:
    """Check ``document`` against the official schema of its ``apiVersion``; the error names the
    path inside the document (``schema[0].properties[2].logicalType``).
    """
    version = str(document.get("apiVersion", ""))
    if version not in _KNOWN_VERSIONS:
        raise OdcsError(
            f"apiVersion {version!r}: ODCS versions read are {', '.join(_KNOWN_VERSIONS)}", field="apiVersion"
        )
    errors = sorted(_validator(version).iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors and version != ODCS_API_VERSION and not any(_validator(ODCS_API_VERSION).iter_errors(document)):
        # The standard's own examples labelled v3.0.x use fields of later schemas (team as an
        # object, exclusive bounds as values): what the latest schema accepts is read too.
        return
    if errors:
        first = errors[0]
        path = first.json_path.removeprefix("$").removeprefix(".") or "<document>"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise OdcsError(f"{path}: {first.message} (ODCS {version} schema){more}", field=path)


_STATUS_IN = {
    "proposed": LifecycleStatus.PENDING_APPROVAL,
    "draft": LifecycleStatus.DRAFT,
    "active": LifecycleStatus.APPROVED,
    "deprecated": LifecycleStatus.APPROVED,
    "retired": LifecycleStatus.RETIRED,
}
_STATUS_OUT = {
    LifecycleStatus.DRAFT: "draft",
    LifecycleStatus.PENDING_APPROVAL: "proposed",
    LifecycleStatus.APPROVED: "active",
    LifecycleStatus.RETIRED: "retired",
}
_METRICS_IN = {
    "nullValues": QualityMetric.NULL_VALUES,
    "missingValues": QualityMetric.MISSING_VALUES,
    "invalidValues": QualityMetric.INVALID_VALUES,
    "duplicateValues": QualityMetric.DUPLICATE_VALUES,
    "rowCount": QualityMetric.ROW_COUNT,
}
_METRICS_OUT = {v: k for k, v in _METRICS_IN.items()}
_OPERATORS = {
    "mustBe": "must_be",
    "mustNotBe": "must_not_be",
    "mustBeGreaterThan": "must_be_greater_than",
    "mustBeGreaterOrEqualTo": "must_be_greater_or_equal_to",
    "mustBeLessThan": "must_be_less_than",
    "mustBeLessOrEqualTo": "must_be_less_or_equal_to",
    "mustBeBetween": "must_be_between",
    "mustNotBeBetween": "must_not_be_between",
}
_OPERATORS_OUT = {v: k for k, v in _OPERATORS.items()}
_HARD_SEVERITIES = {"error", "critical", "fatal", "blocker", "high", "hard"}
_PERSONAL = {"pii", "personal", "personal_data", "personal-data", "sensitive_personal", "gdpr", "phi"}
# Contract-level ODCS fields that land in named native metadata keys.
_NAMED_META = {
    "domain": "domain",
    "dataProduct": "data_product",
    "team": "team",
    "slaProperties": "sla_properties",
    "tags": "tags",
}


def _marks_personal(tag: str) -> bool:
    t = tag.lower()
    return t in _PERSONAL or t.startswith(("pii:", "gdpr:"))


def _data_type(prop: Mapping[str, Any]) -> DataType:
    logical = str(prop.get("logicalType") or "").lower()
    physical = str(prop.get("physicalType") or "").lower()
    if logical == "string":
        return DataType.STRING
    if logical == "integer":
        return DataType.INTEGER
    if logical == "number":
        return DataType.DECIMAL if re.search(r"decimal|numeric", physical) else DataType.FLOAT
    if logical == "boolean":
        return DataType.BOOLEAN
    if logical in ("date", "timestamp"):
        if "datetime" in physical:
            return DataType.DATETIME
        if "timestamp" in physical or logical == "timestamp":
            return DataType.TIMESTAMP
        return DataType.DATE
    if logical in ("object", "array"):
        return DataType.JSON
    if logical:  # time and other text-like types
        return DataType.STRING
    # No logical type: the physical one says what it can.
    for pattern, dtype in (
        (r"^(big|small|tiny)?int|integer|long", DataType.INTEGER),
        (r"decimal|numeric", DataType.DECIMAL),
        (r"float|double|real", DataType.FLOAT),
        (r"bool", DataType.BOOLEAN),
        (r"datetime", DataType.DATETIME),
        (r"timestamp", DataType.TIMESTAMP),
        (r"^date$", DataType.DATE),
        (r"json|struct|array|object|map", DataType.JSON),
    ):
        if re.search(pattern, physical):
            return dtype
    return DataType.STRING


def _logical_out(dtype: DataType) -> str:
    return {
        DataType.STRING: "string",
        DataType.INTEGER: "integer",
        DataType.DECIMAL: "number",
        DataType.FLOAT: "number",
        DataType.BOOLEAN: "boolean",
        DataType.DATE: "date",
        DataType.DATETIME: "timestamp",
        DataType.TIMESTAMP: "timestamp",
        DataType.JSON: "object",
    }[dtype]


_PHYSICAL_OUT = {
    DataType.DECIMAL: "decimal",
    DataType.FLOAT: "double",
    DataType.DATETIME: "datetime",
}
"""Physical types written where the logical type alone would lose the native one."""


def _severity_in(value: Any) -> Severity:
    return Severity.HARD if value is None or str(value).lower() in _HARD_SEVERITIES else Severity.SOFT


def _custom_native(node: Mapping[str, Any]) -> tuple[dict[str, Any], list[Any] | None]:
    """The ``dqStores`` custom property's value, and the other custom properties."""
    props = node.get("customProperties")
    if not isinstance(props, list):
        return {}, None
    native: dict[str, Any] = {}
    rest = []
    for p in props:
        if isinstance(p, dict) and p.get("property") == _NATIVE and isinstance(p.get("value"), dict):
            native = dict(p["value"])
        else:
            rest.append(p)
    return native, rest


def _split(node: Mapping[str, Any], known: set[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(native fields carried in ``dqStores``, the extras: unknown keys kept as they are)."""
    native, custom = _custom_native(node)
    extras = {k: v for k, v in node.items() if k not in known and k != "customProperties"}
    if custom:
        extras["customProperties"] = custom
    return native, extras


def _with_extras(metadata: dict[str, Any], extras: dict[str, Any]) -> dict[str, Any]:
    if extras:
        metadata[_EXTRA] = extras
    return metadata


def from_odcs(
    document: Mapping[str, Any] | str | Path,
    *,
    tenant: str | None = None,
    environment: str | None = None,
) -> DataContract:
    """The native ``DataContract`` an ODCS v3 document states.

    ``tenant`` is used when the document has none (ODCS ``tenant`` wins); ``environment`` is
    required (ODCS has no environment). Raises ``OdcsError`` naming the path inside the document.
    """
    doc = dict(load_odcs(document) if isinstance(document, str | Path) else document)
    validate_odcs(doc)
    if environment is None:
        raise OdcsError("ODCS states no environment: give one (--env)", field="environment")
    native, extras = _split(
        doc,
        {
            "apiVersion",
            "kind",
            "id",
            "version",
            "status",
            "tenant",
            "name",
            "description",
            "schema",
            *_NAMED_META,
        },
    )
    absent = [k for k in ("name", "status") if k not in doc]
    contract_id = _native_id(str(doc["id"]))
    if contract_id != doc["id"]:
        extras["id"] = doc["id"]  # e.g. a URN: ':' is not allowed in a native id
    if doc.get("schema") == []:
        extras["schema"] = []
    the_tenant = doc.get("tenant") or tenant
    if not the_tenant:
        raise OdcsError("ODCS states no tenant: give one (--tenant)", field="tenant")
    status_text = doc.get("status")
    status = _STATUS_IN.get(str(status_text).lower(), LifecycleStatus.DRAFT)
    if status_text is not None and _STATUS_OUT[status] != status_text:
        extras["status"] = status_text
    metadata: dict[str, Any] = {native_key: doc[key] for key, native_key in _NAMED_META.items() if key in doc}
    if isinstance(metadata.get("team"), list):
        metadata["team"] = [_member_v31(m) for m in metadata["team"]]
    out: dict[str, Any] = {
        "contract_id": contract_id,
        "tenant_id": the_tenant,
        "environment": environment,
        "version": str(doc["version"]),
        "name": str(doc.get("name") or contract_id),
    }
    description = doc.get("description")
    if isinstance(description, dict):
        if "purpose" in description:
            out["description"] = description["purpose"]
        rest = {k: v for k, v in description.items() if k != "purpose"}
        if rest or "purpose" not in description:
            extras["description"] = rest
    elif description is not None:
        out["description"] = str(description)
    if status_text is not None or native.get("lifecycle"):
        out["lifecycle"] = {**native.pop("lifecycle", {}), "status": status.value}
    datasets = [
        _dataset(obj, i, contract_id, out["tenant_id"], environment, out["version"])
        for i, obj in enumerate(doc.get("schema") or [])
    ]
    if datasets:
        out["datasets"] = datasets
    if absent:
        extras[_ABSENT] = absent
    metadata = _with_extras({**metadata, **native.pop("metadata", {})}, extras)
    if metadata:
        out["metadata"] = metadata
    out.update(native)
    try:
        return DataContract.model_validate(out)
    except pydantic.ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"])
        raise OdcsError(f"mapped to the native field {where}: {err['msg']}", field=where) from exc


def _member_v31(member: Any) -> Any:
    """A v3.0 team member in v3.1 terms: its ``comment`` is the v3.1 ``description``."""
    if isinstance(member, dict) and "comment" in member and "description" not in member:
        member = {("description" if k == "comment" else k): v for k, v in member.items()}
    return member


def _native_id(value: str) -> str:
    """``value`` as a native id: characters outside ``[A-Za-z0-9._-]`` become ``_``; a long one
    is cut and given a hash suffix so that two long ids stay apart.
    """
    clean = re.sub(r"[^A-Za-z0-9._-]", "_", value)
    if len(clean) > 128:
        clean = f"{clean[:111]}-{hashlib.sha256(value.encode()).hexdigest()[:16]}"
    return clean


def _dataset(
    obj: Mapping[str, Any], i: int, contract_id: str, tenant: str, env: str, version: str
) -> dict[str, Any]:
    path = f"schema[{i}]"
    native, extras = _split(obj, {"id", "name", "physicalName", "description", "properties", "quality"})
    name = obj.get("name") or obj.get("physicalName")
    if not name:
        raise OdcsError("a schema object needs a name or physicalName", field=f"{path}.name")
    absent = []
    ds_id = obj.get("id")
    if ds_id is None:
        absent.append("id")
        ds_id = _native_id(str(name))
    if "name" not in obj:
        absent.append("name")
    out: dict[str, Any] = {
        "dataset_contract_id": ds_id,
        "dataset_type": str(name),
        "tenant_id": tenant,
        "environment": env,
        "version": version,
    }
    metadata: dict[str, Any] = {}
    if "physicalName" in obj:
        metadata["physical_name"] = obj["physicalName"]
    if "description" in obj:
        out["description"] = obj["description"]
    columns: list[dict[str, Any]] = []
    keys: list[tuple[float, int, str]] = []
    rules: list[dict[str, Any]] = []
    taken: set[str] = set()
    for j, prop in enumerate(obj.get("properties") or []):
        col, col_rules = _column(prop, f"{path}.properties[{j}]", taken)
        columns.append(col)
        rules += col_rules
        if prop.get("primaryKey") is True:
            pos = prop.get("primaryKeyPosition")
            keys.append(
                (pos if isinstance(pos, int | float) and pos >= 0 else float("inf"), j, col["column_id"])
            )
    for k, q in enumerate(obj.get("quality") or []):
        rules.append(_rule(q, f"{path}.quality[{k}]", None, taken))
    if keys:
        ordered = sorted(keys)
        out["primary_keys"] = [c for _, _, c in ordered]
        # Where the source's positions are not 1, 2, ... keep them as written (export derives those).
        for n, (pos, j, _) in enumerate(ordered):
            col = columns[j]
            if pos != n + 1:
                extra = col.setdefault("metadata", {}).setdefault(_EXTRA, {})
                if pos == float("inf"):
                    extra.setdefault(_ABSENT, []).append("primaryKeyPosition")
                else:
                    extra["primaryKeyPosition"] = obj["properties"][j]["primaryKeyPosition"]
    if columns:
        out["columns"] = columns
    if rules:
        out["quality_rules"] = rules
    if absent:
        extras[_ABSENT] = absent
    metadata = _with_extras({**metadata, **native.pop("metadata", {})}, extras)
    if metadata:
        out["metadata"] = metadata
    out.update(native)
    return out


def _column(
    prop: Mapping[str, Any], path: str, taken: set[str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    native, extras = _split(
        prop,
        {
            "name",
            "logicalType",
            "physicalType",
            "required",
            "unique",
            "primaryKey",
            "primaryKeyPosition",
            "logicalTypeOptions",
            "classification",
            "tags",
            "description",
            "quality",
        },
    )
    name = prop.get("name")
    if not name:
        raise OdcsError("a property needs a name", field=f"{path}.name")
    dtype = _data_type(prop)
    if "logicalType" in prop and prop["logicalType"] != _logical_out(dtype):
        extras["logicalType"] = prop["logicalType"]
    elif "logicalType" not in prop:
        extras.setdefault(_ABSENT, []).append("logicalType")
    if "physicalType" in prop and prop["physicalType"] != _PHYSICAL_OUT.get(dtype):
        extras["physicalType"] = prop["physicalType"]
    elif "physicalType" not in prop and dtype in _PHYSICAL_OUT:
        extras.setdefault(_ABSENT, []).append("physicalType")
    if "primaryKey" in prop and prop["primaryKey"] is not True:
        extras["primaryKey"] = prop["primaryKey"]
        if "primaryKeyPosition" in prop:
            extras["primaryKeyPosition"] = prop["primaryKeyPosition"]
    col: dict[str, Any] = {"column_id": str(name), "data_type": dtype.value}
    if prop.get("required") is True:
        col["required"] = True
    elif "required" in prop:
        extras["required"] = prop["required"]
    if "description" in prop:
        col["description"] = prop["description"]
    constraints: dict[str, Any] = {}
    if prop.get("unique") is True:
        constraints["unique"] = True
    elif "unique" in prop:
        extras["unique"] = prop["unique"]
    rules: list[dict[str, Any]] = []
    options = _options_v31(dict(prop.get("logicalTypeOptions") or {}))
    if options:
        kept: dict[str, Any] = {}
        for key, value in options.items():
            native_key = {
                "minimum": "min_value",
                "maximum": "max_value",
                "minLength": "min_length",
                "maxLength": "max_length",
            }.get(key)
            if native_key:
                constraints[native_key] = value
            elif key == "pattern" and _regex_ok(str(value)):
                constraints["regex"] = value
            elif key == "format":
                col["format"] = value
            else:
                kept[key] = value
            # Exclusive bounds have no native field: a generated SQL rule checks them (numbers);
            # any other bound (a date, a timestamp) is a rule reported as not evaluated, so an
            # unchecked bound never reads as a passed one.
            bound = value if key in ("exclusiveMinimum", "exclusiveMaximum") else None
            if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int | float)):
                rules.append(
                    {
                        "rule_id": f"{name}.{key}",
                        "metric": "custom",
                        "engine": "odcs",
                        "columns": [str(name)],
                        "implementation": {f"logicalTypeOptions.{key}": bound},
                        "description": f"{name} {'>' if key.endswith('inimum') else '<'} {bound} "
                        f"(logicalTypeOptions.{key}; not evaluated: only numeric exclusive bounds are)",
                        "metadata": {_EXTRA: {"generated": f"logicalTypeOptions.{key}"}},
                    }
                )
            elif isinstance(bound, int | float):
                op = "<=" if key.endswith("inimum") else ">="
                rules.append(
                    {
                        "rule_id": f"{name}.{key}",
                        "metric": "sql",
                        "columns": [str(name)],
                        "query": f"SELECT COUNT(*) FROM {{object}} WHERE {{property}} {op} {bound}",
                        "operator": "must_be",
                        "threshold": 0,
                        "description": f"{name} {'>' if op == '<=' else '<'} {bound} (logicalTypeOptions.{key})",
                        "metadata": {_EXTRA: {"generated": f"logicalTypeOptions.{key}"}},
                    }
                )
            if key == "pattern" and "regex" not in constraints:
                # A pattern outside the engine's regex dialect: kept, and reported as not evaluated.
                rules.append(
                    {
                        "rule_id": f"{name}.pattern",
                        "metric": "invalid_values",
                        "columns": [str(name)],
                        "pattern": str(value),
                        "operator": "must_be",
                        "threshold": 0,
                        "metadata": {_EXTRA: {"generated": "logicalTypeOptions.pattern"}},
                    }
                )
        if kept:
            extras["logicalTypeOptions"] = kept
    constraints.update(native.pop("constraints", {}))
    if constraints:
        col["constraints"] = constraints
    metadata: dict[str, Any] = {}
    tags = prop.get("tags")
    classification = prop.get("classification")
    if classification is not None:
        metadata["classification"] = classification
    sensitive = [t for t in tags or [] if isinstance(t, str) and _marks_personal(t)]
    if tags is not None and (tags != sensitive or not tags):
        metadata["tags"] = tags  # export derives tags that only mark personal data
    if isinstance(classification, str) and _marks_personal(classification) and "pii" not in sensitive:
        sensitive.append("pii")
    if sensitive:
        col["sensitivity_tags"] = sensitive
    for k, q in enumerate(prop.get("quality") or []):
        rules.append(_rule(q, f"{path}.quality[{k}]", str(name), taken))
    metadata = _with_extras({**metadata, **native.pop("metadata", {})}, extras)
    if metadata:
        col["metadata"] = metadata
    col.update(native)
    return col, rules


_OUTSIDE_DIALECT = re.compile(r"\(\?<?[=!]|\(\?>|\\[1-9]|\\k<|\\Z|(?<!\\)[*+?}]\+")
"""Constructs Rust's regex crate (the engine's dialect, what polars runs) refuses: look-around,
atomic groups, backreferences, ``\\Z``, possessive quantifiers. This module cannot ask polars
(``dq_stores`` does not depend on it); a pattern caught here becomes a rule reported as not
evaluated instead of a contract the engine refuses."""


def _regex_ok(pattern: str) -> bool:
    return _OUTSIDE_DIALECT.search(pattern) is None


def _options_v31(options: dict[str, Any]) -> dict[str, Any]:
    """v3.0 exclusive bounds in v3.1 terms: ``maximum: 100, exclusiveMaximum: true`` is
    ``exclusiveMaximum: 100`` (v3.1 gives the bound itself).
    """
    for bound, flag in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        # ``pop`` in the condition: a false flag is dropped, a true one takes the bound's value.
        if isinstance(options.get(flag), bool) and options.pop(flag) and bound in options:
            options[flag] = options.pop(bound)
    return options


def _rule(q: Mapping[str, Any], path: str, column: str | None, taken: set[str]) -> dict[str, Any]:
    native, extras = _split(
        q,
        {
            "id",
            "type",
            "metric",
            "rule",
            "arguments",
            "unit",
            "severity",
            "dimension",
            "name",
            "description",
            "query",
            "engine",
            "implementation",
            *_OPERATORS,
        },
    )
    kind = q.get("type") or "library"
    metric_name = q.get("metric") or q.get("rule")
    out: dict[str, Any] = {}
    args = dict(q.get("arguments") or {})
    cols = [column] if column else []
    if kind == "text":
        out["metric"] = "text"
    elif kind == "sql":
        out["metric"] = "sql"
        out["query"] = q["query"]
    elif kind == "custom":
        out["metric"] = "custom"
        out["engine"] = q["engine"]
        out["implementation"] = q["implementation"]
    elif metric_name in _METRICS_IN and q.get("unit", "rows") in ("rows", "percent"):
        metric = _METRICS_IN[metric_name]
        out["metric"] = metric.value
        # A deprecated v3.0 ``rule`` is written back as ``metric``, its v3.1 name.
        if metric == QualityMetric.MISSING_VALUES:
            out["missing_values"] = args.pop("missingValues", [None])
        elif metric == QualityMetric.INVALID_VALUES:
            if "validValues" in args:
                out["valid_values"] = args.pop("validValues")
            if "pattern" in args:
                out["pattern"] = args.pop("pattern")
        elif metric == QualityMetric.DUPLICATE_VALUES and "properties" in args:
            cols = [str(p) for p in args.pop("properties")]
            if column is None and len(cols) == 1:
                extras["level"] = "schema"
        if args:
            extras["arguments"] = args
        if metric == QualityMetric.ROW_COUNT:
            cols = []
    library = {m.value for m in _METRICS_IN.values()}
    if "metric" not in out or (out["metric"] in library and out["metric"] != "row_count" and not cols):
        # A library metric this engine does not know (a v3.0 rule name, another unit), or a
        # property-level metric on an object with no property named: kept as it is, reported as
        # not evaluated.
        return {
            **({"rule_id": _rule_id(q, column, taken)} if "id" in q else {}),
            "metric": "custom",
            "engine": "odcs",
            "columns": cols,
            "implementation": json.loads(json.dumps(dict(q))),
            "severity": _severity_in(q.get("severity")).value,
            "metadata": {_EXTRA: {"verbatim": True}},
        }
    if cols:
        out["columns"] = cols
    if kind == "library" and "type" in q:
        extras["type"] = "library"  # the default, stated: written back as stated
    ops = [k for k in _OPERATORS if k in q]
    if ops and out["metric"] not in ("text", "custom"):
        out["operator"] = _OPERATORS[ops[0]]
        out["threshold"] = q[ops[0]]
    elif ops:
        extras.update({k: q[k] for k in ops})
    if "unit" in q and out["metric"] not in ("text", "custom", "sql"):
        out["unit"] = q["unit"]
    elif "unit" in q:
        extras["unit"] = q["unit"]
    if "id" in q:
        out["rule_id"] = _rule_id(q, column, taken)
        if out["rule_id"] != q["id"]:
            extras["id"] = q["id"]
    severity = _severity_in(q.get("severity"))
    out["severity"] = severity.value
    if "severity" in q and q["severity"] != ("error" if severity == Severity.HARD else "warning"):
        extras["severity"] = q["severity"]
    elif "severity" not in q:
        extras.setdefault(_ABSENT, []).append("severity")
    for key in ("dimension", "name", "description"):
        if key in q:
            out[key] = q[key]
    metadata = _with_extras(dict(native.pop("metadata", {})), extras)
    if metadata:
        out["metadata"] = metadata
    out.update(native)
    return out


def _rule_id(q: Mapping[str, Any], column: str | None, taken: set[str]) -> str:
    # ODCS ids are unique within their list only; rule ids are unique in the dataset.
    rid = str(q["id"])
    if rid in taken and column:
        rid = f"{column}.{rid}"
    taken.add(rid)
    return rid


# -- writing -----------------------------------------------------------------------------------


def _absent(extras: Mapping[str, Any]) -> set[str]:
    return set(extras.get(_ABSENT) or ())


def _merge(node: dict[str, Any], extras: Mapping[str, Any], native: Mapping[str, Any]) -> dict[str, Any]:
    for key in _absent(extras):
        node.pop(key, None)
    for key, value in extras.items():
        if key not in (_ABSENT, "level", "generated", "verbatim"):
            node[key] = value
    if native:
        props = list(node.get("customProperties") or [])
        props.append({"property": _NATIVE, "value": native})
        node["customProperties"] = props
    return node


def _dump(model: pydantic.BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_unset=True)


def _split_meta(meta: Mapping[str, Any], named: set[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    extras = dict(meta.get(_EXTRA) or {})
    rest = {k: v for k, v in meta.items() if k != _EXTRA and k not in named}
    return extras, rest


def to_odcs(contract: DataContract) -> dict[str, Any]:
    """The ODCS v3.1.0 document of ``contract`` (a plain mapping; ``to_odcs_yaml`` for text)."""
    data = _dump(contract)
    extras, rest_meta = _split_meta(contract.metadata, set(_NAMED_META.values()))
    doc: dict[str, Any] = {
        "apiVersion": ODCS_API_VERSION,
        "kind": "DataContract",
        "id": contract.contract_id,
        "version": contract.version,
        "name": contract.name,
        "status": _STATUS_OUT[LifecycleStatus(contract.lifecycle.status)],
        "tenant": contract.tenant_id,
    }
    if contract.description is not None or "description" in extras:
        description = dict(extras.pop("description", {}) or {})
        if contract.description is not None:
            description["purpose"] = contract.description
        doc["description"] = description
    for key, native_key in _NAMED_META.items():
        if native_key in contract.metadata:
            doc[key] = contract.metadata[native_key]
    native: dict[str, Any] = {
        k: v
        for k, v in data.items()
        if k
        not in {
            "contract_id",
            "tenant_id",
            "environment",
            "version",
            "name",
            "description",
            "datasets",
            "metadata",
            "lifecycle",
        }
    }
    lifecycle = {k: v for k, v in data.get("lifecycle", {}).items() if k != "status"}
    if lifecycle:
        native["lifecycle"] = lifecycle
    if rest_meta:
        native["metadata"] = rest_meta
    if contract.datasets:
        doc["schema"] = [_object_out(ds) for ds in contract.datasets]
    return _merge(doc, extras, native)


def _object_out(ds: Any) -> dict[str, Any]:
    data = _dump(ds)
    extras, rest_meta = _split_meta(ds.metadata, {"physical_name"})
    node: dict[str, Any] = {"name": ds.dataset_type}
    native: dict[str, Any] = {}
    if _STABLE_ID.match(ds.dataset_contract_id):
        node["id"] = ds.dataset_contract_id
    else:
        native["dataset_contract_id"] = ds.dataset_contract_id
    if "physical_name" in ds.metadata:
        node["physicalName"] = ds.metadata["physical_name"]
    if ds.description is not None:
        node["description"] = ds.description
    by_column: dict[str, list[dict[str, Any]]] = {}
    schema_rules: list[dict[str, Any]] = []
    for rule in ds.quality_rules:
        r_extras = (rule.metadata or {}).get(_EXTRA) or {}
        if r_extras.get("generated"):
            continue  # comes back from the option it was generated from
        out = _rule_out(rule)
        level = r_extras.get("level")
        if (
            level != "schema"
            and len(rule.columns) == 1
            and rule.metric != QualityMetric.ROW_COUNT
            and (rule.metric != QualityMetric.DUPLICATE_VALUES or level is None)
        ):
            by_column.setdefault(rule.columns[0], []).append(out)
        else:
            schema_rules.append(out)
    keys = list(ds.primary_keys)
    node["properties"] = [_property_out(c, keys, by_column.get(c.column_id, [])) for c in ds.columns]
    if not ds.columns:
        node.pop("properties")
    if schema_rules:
        node["quality"] = schema_rules
    covered = {
        "dataset_contract_id",
        "dataset_type",
        "tenant_id",
        "environment",
        "version",
        "description",
        "primary_keys",
        "columns",
        "quality_rules",
        "metadata",
    }
    return _finish(node, extras, native, data, covered, rest_meta)


def _finish(
    node: dict[str, Any],
    extras: dict[str, Any],
    native: dict[str, Any],
    data: dict[str, Any],
    covered: set[str],
    rest_meta: dict[str, Any],
) -> dict[str, Any]:
    """What the ODCS node does not say natively travels in ``native`` (the ``dqStores`` custom
    property): every field of ``data`` outside ``covered``, and the metadata left over.
    """
    native.update({k: v for k, v in data.items() if k not in covered})
    if rest_meta:
        native["metadata"] = rest_meta
    return _merge(node, extras, native)


def _property_out(col: Any, keys: list[str], rules: list[dict[str, Any]]) -> dict[str, Any]:
    data = _dump(col)
    extras, rest_meta = _split_meta(col.metadata, {"classification", "tags"})
    node: dict[str, Any] = {"name": col.column_id, "logicalType": _logical_out(col.data_type)}
    if col.data_type in _PHYSICAL_OUT:
        node["physicalType"] = _PHYSICAL_OUT[col.data_type]
    if col.column_id in keys:
        node["primaryKey"] = True
        node["primaryKeyPosition"] = keys.index(col.column_id) + 1
    native: dict[str, Any] = {}
    if col.required:
        node["required"] = True
    elif "required" in data:
        native["required"] = False  # stated in the native contract: kept as stated
    if col.description is not None:
        node["description"] = col.description
    cons = _dump(col.constraints) if col.constraints is not None else {}
    if cons.pop("unique", False):
        node["unique"] = True
    options: dict[str, Any] = {}
    for native_key, key in (
        ("min_value", "minimum"),
        ("max_value", "maximum"),
        ("min_length", "minLength"),
        ("max_length", "maxLength"),
        ("regex", "pattern"),
    ):
        if native_key in cons:
            options[key] = cons.pop(native_key)
    if col.format is not None:
        options["format"] = col.format
    options.update(extras.pop("logicalTypeOptions", {}) or {})
    if options:
        node["logicalTypeOptions"] = options
    if cons:
        native["constraints"] = cons
    if "classification" in col.metadata:
        node["classification"] = col.metadata["classification"]
    tags = list(col.metadata.get("tags") or [])
    personal_class = isinstance(col.metadata.get("classification"), str) and _marks_personal(
        col.metadata["classification"]
    )
    for t in col.sensitivity_tags:
        if t not in tags and not (t == "pii" and personal_class):
            tags.append(t)
    if tags or "tags" in col.metadata:
        node["tags"] = tags
    if rules:
        node["quality"] = rules
    covered = {
        "column_id",
        "data_type",
        "required",
        "description",
        "format",
        "sensitivity_tags",
        "constraints",
        "metadata",
    }
    return _finish(node, extras, native, data, covered, rest_meta)


def _rule_out(rule: Any) -> dict[str, Any]:
    extras, rest_meta = _split_meta(rule.metadata, set())
    if extras.get("verbatim") and isinstance(rule.implementation, dict):
        return dict(rule.implementation)
    node: dict[str, Any] = {}
    native: dict[str, Any] = {}
    if rule.rule_id is not None:
        if _STABLE_ID.match(rule.rule_id):
            node["id"] = rule.rule_id
        else:
            native["rule_id"] = rule.rule_id
    m = rule.metric
    if m == QualityMetric.TEXT:
        node["type"] = "text"
    elif m == QualityMetric.SQL:
        node["type"] = "sql"
        node["query"] = rule.query
    elif m == QualityMetric.CUSTOM:
        node["type"] = "custom"
        node["engine"] = rule.engine
        node["implementation"] = rule.implementation
    else:
        node["metric"] = _METRICS_OUT[m]
        args: dict[str, Any] = dict(extras.pop("arguments", {}) or {})
        if m == QualityMetric.MISSING_VALUES:
            args["missingValues"] = rule.missing_values
        elif m == QualityMetric.INVALID_VALUES:
            if rule.valid_values is not None:
                args["validValues"] = rule.valid_values
            if rule.pattern is not None:
                args["pattern"] = rule.pattern
        elif m == QualityMetric.DUPLICATE_VALUES and (
            len(rule.columns) > 1 or extras.get("level") == "schema"
        ):
            args["properties"] = rule.columns
        if args:
            node["arguments"] = args
        if "unit" in rule.model_fields_set:
            node["unit"] = rule.unit
    if rule.operator is not None:
        node[_OPERATORS_OUT[rule.operator.value]] = rule.threshold
    node["severity"] = "error" if rule.severity == Severity.HARD else "warning"
    for key in ("dimension", "name", "description"):
        if getattr(rule, key) is not None:
            node[key] = getattr(rule, key)
    if rest_meta:
        native["metadata"] = rest_meta
    return _merge(node, extras, native)


def to_odcs_yaml(contract: DataContract) -> str:
    """``to_odcs`` as YAML text (keys in the standard's order, as written)."""
    return yaml.safe_dump(to_odcs(contract), sort_keys=False, allow_unicode=True, width=100)


def export_odcs_scope(stores: Stores, scope: Scope, out_dir: Path) -> Iterator[Path]:
    """Write every version of every data contract of ``scope`` as ODCS v3.1.0 YAML,
    ``out_dir/TENANT/ENV/contracts/ID/VERSION.odcs.yaml``, and yield each path.
    """
    from dq_stores.fsio import atomic_write_stream

    for contract in stores.contracts.iter_all(scope.tenant, scope.environment):
        path = out_dir / scope.tenant / scope.environment / "contracts" / contract.contract_id
        path = path / f"{contract.version}.odcs.yaml"
        atomic_write_stream(path, (to_odcs_yaml(contract).encode("utf-8"),), durable=False)
        yield path
