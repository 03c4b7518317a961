"""A contract compiled into rules: stable ids, severities and polars expressions.

``compile_rules`` reads a ``DataContract`` (or a bare ``DatasetContract``) once and returns a
``RulePlan``: one ``RuleSpec`` per rule, in contract order. Rules come from

- primary keys: ``primary_key.not_null``, ``primary_key.unique`` (composite keys allowed);
- unique indexes: ``index.<name>.unique``;
- column contracts: ``<col>.present`` and ``<col>.not_null`` (required), ``<col>.not_null``
  (disallow_nulls), ``<col>.data_type`` (values castable to the declared type), ``<col>.unique``,
  ``<col>.min_value``, ``<col>.max_value``, ``<col>.regex``, ``<col>.allowed_values``,
  ``<col>.min_length``, ``<col>.max_length``;
- rule bindings of the contract's rule templates, with rule_type ``expression`` (a polars SQL
  boolean expression that holds for a good row) or one of the column rule types above (plus
  ``range`` and ``length``). Their id is the binding id, else ``<column>.<template_id>``.

A spec holds no expression until ``build`` is given the columns of an actual frame, because the
expression depends on the column's dtype (a string column declared decimal is parsed first). A
broken contract (bad regex, unparsable expression, min_value that is not a number, unknown
rule type, duplicate rule id) raises ``ContractRuleError`` naming the field, before any data is
read; so do contracts that could never mean what they say: a numeric bound on a column declared
string (it would be compared as text, ``"2" > "10"``), a bound on a json column, bounds with
min > max (values or lengths), and a regex outside the contract's dialect (Rust's ``regex``
crate: no look-around, no backreferences).

Missing values (rule semantics, the same in every engine): null **and NaN** are missing.
``prepare_frame`` turns NaN into null once (float columns, and text that parses as NaN in a
column declared numeric), so every rule sees one kind of missing value: not-null rules fail it,
value rules (bounds, allowed values, regex, lengths, types) pass it, uniqueness ignores it.
Each spec also carries its rule in declarative form (``kind`` + ``params``) for engines that do
not run polars (``dq_dagster.engine.sql``).

Evaluation, reports and masking live elsewhere (validate.py, masking.py). The module is long
(~920 lines, with the quality rules of ODCS) because the compiler and the polars expression of
each rule type belong together: splitting them would put a rule's meaning in two files.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import date, datetime
from typing import Any

import polars as pl

from dq_dagster.engine.types import literal, python_value, typed_column
from dq_stores.errors import InvalidArtifactError
from dq_stores.models import (
    ColumnConstraint,
    ColumnContract,
    DataContract,
    DatasetContract,
    DataType,
    QualityMetric,
    QualityRule,
    RuleBinding,
    RuleTemplate,
    Severity,
    ThresholdOperator,
)

__all__ = [
    "RAW_PREFIX",
    "ColumnRef",
    "ContractRuleError",
    "PreparedFrame",
    "RuleExprs",
    "RulePlan",
    "RuleSpec",
    "Threshold",
    "compile_rules",
    "prepare_frame",
    "regex_problem",
    "resolve_dataset",
]

RAW_PREFIX = "__dq_raw__"
"""Prefix of the column that keeps a parsed column's original values during evaluation."""


class ContractRuleError(InvalidArtifactError):
    """The contract cannot be turned into rules; ``field`` is the dotted path at fault."""


@dataclass(frozen=True)
class ColumnRef:
    """One contract column inside the evaluation frame: original and typed values."""

    name: str
    raw: pl.Expr
    typed: pl.Expr
    raw_dtype: pl.DataType
    typed_dtype: pl.DataType
    type_may_fail: bool

    @property
    def text(self) -> pl.Expr:
        """The original values as strings (what regex and length rules look at)."""
        return self.raw if isinstance(self.raw_dtype, pl.String) else self.raw.cast(pl.String)


@dataclass(frozen=True)
class RuleExprs:
    """``fail`` is True where a row fails (never null; None: the rule cannot fail on this
    frame), ``checked`` counts the rows the rule looked at, ``sample`` gives the values to show
    for failing rows (None: show none).
    """

    fail: pl.Expr | None
    checked: pl.Expr
    sample: pl.Expr | None = None
    condition: pl.Expr | None = None
    """For expression rules: the user's expression, whose dtype must be boolean."""


Builder = Callable[[Mapping[str, ColumnRef]], RuleExprs]

_OP_TEXT = {
    ThresholdOperator.MUST_BE: "=",
    ThresholdOperator.MUST_NOT_BE: "!=",
    ThresholdOperator.MUST_BE_GREATER_THAN: ">",
    ThresholdOperator.MUST_BE_GREATER_OR_EQUAL_TO: ">=",
    ThresholdOperator.MUST_BE_LESS_THAN: "<",
    ThresholdOperator.MUST_BE_LESS_OR_EQUAL_TO: "<=",
    ThresholdOperator.MUST_BE_BETWEEN: "between",
    ThresholdOperator.MUST_NOT_BE_BETWEEN: "not between",
}


@dataclass(frozen=True)
class Threshold:
    """A quality rule's judgement: the measured value ``op`` ``value`` (in ``unit``)."""

    op: ThresholdOperator
    value: Any
    unit: str = "rows"

    def holds(self, measured: Any) -> bool:
        op, v = self.op, self.value
        if op == ThresholdOperator.MUST_BE:
            return bool(measured == v)
        if op == ThresholdOperator.MUST_NOT_BE:
            return bool(measured != v)
        if measured is None or isinstance(measured, bool | str):
            return False  # a comparison needs a number
        if op == ThresholdOperator.MUST_BE_GREATER_THAN:
            return bool(measured > v)
        if op == ThresholdOperator.MUST_BE_GREATER_OR_EQUAL_TO:
            return bool(measured >= v)
        if op == ThresholdOperator.MUST_BE_LESS_THAN:
            return bool(measured < v)
        if op == ThresholdOperator.MUST_BE_LESS_OR_EQUAL_TO:
            return bool(measured <= v)
        inside = bool(v[0] <= measured <= v[1])
        return inside if op == ThresholdOperator.MUST_BE_BETWEEN else not inside

    @property
    def zero_tolerance(self) -> bool:
        """No counted row is allowed: the counted rows are failing rows (``rows_failed``)."""
        return self.unit == "rows" and (
            (self.op == ThresholdOperator.MUST_BE and self.value == 0)
            or (self.op == ThresholdOperator.MUST_BE_LESS_THAN and self.value in (0.5, 1))
            or (self.op == ThresholdOperator.MUST_BE_LESS_OR_EQUAL_TO and self.value == 0)
        )

    def text(self) -> str:
        v = self.value
        shown = f"[{v[0]}, {v[1]}]" if isinstance(v, list | tuple) else f"{v}"
        return f"{_OP_TEXT[self.op]} {shown} {self.unit}".strip()


@dataclass(frozen=True)
class RuleSpec:
    rule_id: str
    rule_type: str
    column: str | None
    severity: Severity
    description: str
    columns: tuple[str, ...]
    """Frame columns the rule reads; if one is missing the rule is not evaluated."""
    pii: bool
    """Samples come from a PII column and are masked."""
    vacuous_if_missing: bool
    """A missing column makes the rule pass (optional column) instead of fail."""
    build: Builder | None
    """None for the presence rule, which only looks at the schema."""
    kind: str = ""
    """What the rule checks, for engines other than polars: ``present``, ``not_null``,
    ``unique``, ``data_type``, ``compare``, ``regex``, ``allowed``, ``length``, ``expression``."""
    params: Mapping[str, Any] = dc_field(default_factory=dict)
    """The rule's parameters in that form (``keys``, ``op`` + ``value``, ``pattern``, ...)."""
    threshold: Threshold | None = None
    """Quality rules: the rule passes when the measured value (the count of rows ``fail``
    marks, in rows or percent; the row count; the SQL result) meets it. Without one, any
    failing row fails the rule."""
    not_evaluated: str | None = None
    """Why no engine can run this rule (a custom rule, a regex outside the dialect)."""


@dataclass(frozen=True)
class RulePlan:
    contract: DataContract | None
    dataset: DatasetContract
    rules: tuple[RuleSpec, ...]

    def header(self) -> dict[str, Any]:
        """The scope and contract fields every report of this plan carries."""
        ds = self.dataset
        return {
            "tenant_id": ds.tenant_id,
            "environment": ds.environment,
            "contract_id": self.contract.contract_id if self.contract else None,
            "contract_version": self.contract.version if self.contract else ds.version,
            "dataset_type": ds.dataset_type,
        }


def resolve_dataset(
    contract: DataContract | DatasetContract, dataset_type: str | None = None
) -> tuple[DataContract | None, DatasetContract, int]:
    """The data contract (if any), the dataset contract to apply and its index in the contract."""
    if isinstance(contract, DatasetContract):
        if dataset_type is not None and dataset_type.lower() != contract.dataset_type.lower():
            raise ContractRuleError(
                f"dataset contract is for {contract.dataset_type!r}, not {dataset_type!r}",
                field="dataset_type",
            )
        return None, contract, 0
    if dataset_type is None:
        if len(contract.datasets) != 1:
            raise ContractRuleError(
                f"contract {contract.contract_id!r} has {len(contract.datasets)} datasets: pass dataset_type",
                field="datasets",
            )
        return contract, contract.datasets[0], 0
    wanted = dataset_type.lower()
    for i, ds in enumerate(contract.datasets):
        if ds.dataset_type.lower() == wanted:
            return contract, ds, i
    raise ContractRuleError(
        f"contract {contract.contract_id!r} has no dataset of type {dataset_type!r}",
        field="datasets",
    )


# -- expression builders, one per rule type ------------------------------------------------


def _not_null(col: str) -> Builder:
    def build(refs: Mapping[str, ColumnRef]) -> RuleExprs:
        return RuleExprs(refs[col].raw.is_null(), pl.len())

    return build


def _unique(col: str) -> Builder:
    def build(refs: Mapping[str, ColumnRef]) -> RuleExprs:
        t = refs[col].typed
        return RuleExprs(t.is_duplicated() & t.is_not_null(), t.count(), t)

    return build


def _keys_sample(refs: Mapping[str, ColumnRef], keys: Sequence[str]) -> pl.Expr:
    if len(keys) == 1:
        return refs[keys[0]].typed
    return pl.concat_str([refs[k].typed.cast(pl.String) for k in keys], separator="|")


def _unique_keys(keys: tuple[str, ...]) -> Builder:
    if len(keys) == 1:
        return _unique(keys[0])

    def build(refs: Mapping[str, ColumnRef]) -> RuleExprs:
        complete = pl.all_horizontal([refs[k].typed.is_not_null() for k in keys])
        dup = pl.struct([refs[k].typed.alias(k) for k in keys]).is_duplicated()
        return RuleExprs(dup & complete, complete.sum(), _keys_sample(refs, keys))

    return build


def _keys_not_null(keys: tuple[str, ...]) -> Builder:
    def build(refs: Mapping[str, ColumnRef]) -> RuleExprs:
        return RuleExprs(pl.any_horizontal([refs[k].raw.is_null() for k in keys]), pl.len())

    return build


def _data_type(col: str) -> Builder:
    def build(refs: Mapping[str, ColumnRef]) -> RuleExprs:
        ref = refs[col]
        if not ref.type_may_fail:
            return RuleExprs(None, ref.raw.count())
        return RuleExprs(ref.raw.is_not_null() & ref.typed.is_null(), ref.raw.count(), ref.raw)

    return build


def _compare(col: str, value: Any, op: str) -> Builder:
    def build(refs: Mapping[str, ColumnRef]) -> RuleExprs:
        ref = refs[col]
        lit = literal(value, ref.typed_dtype)
        bad = ref.typed < lit if op == "min" else ref.typed > lit
        return RuleExprs(bad.fill_null(False), ref.typed.count(), ref.typed)

    return build


def _regex(col: str, pattern: str) -> Builder:
    def build(refs: Mapping[str, ColumnRef]) -> RuleExprs:
        ref = refs[col]
        s = ref.text
        return RuleExprs(s.str.contains(pattern).not_().fill_null(False), s.count(), ref.raw)

    return build


def _allowed_series(values: Sequence[Any], dtype: pl.DataType) -> pl.Series:
    if dtype.is_integer():
        values = [int(v) for v in values if float(v).is_integer()]
    return pl.Series(values, strict=False).cast(dtype, strict=False).drop_nulls()


def _allowed(col: str, values: Sequence[Any]) -> Builder:
    def build(refs: Mapping[str, ColumnRef]) -> RuleExprs:
        ref = refs[col]
        t = ref.typed
        if isinstance(ref.typed_dtype, pl.String):
            allowed = pl.Series([str(v) for v in values], dtype=pl.String)
        else:
            allowed = _allowed_series(values, ref.typed_dtype)
        return RuleExprs(t.is_in(allowed.implode()).not_().fill_null(False), t.count(), ref.raw)

    return build


def _length(col: str, bound: int, op: str) -> Builder:
    def build(refs: Mapping[str, ColumnRef]) -> RuleExprs:
        ref = refs[col]
        s = ref.text
        n = s.str.len_chars()
        bad = n < bound if op == "min" else n > bound
        return RuleExprs(bad.fill_null(False), s.count(), ref.raw)

    return build


def _expression(expr: pl.Expr, sample: Callable[[Mapping[str, ColumnRef]], pl.Expr | None]) -> Builder:
    def build(refs: Mapping[str, ColumnRef]) -> RuleExprs:
        # A null result (a null operand) is not a failure, as in a SQL CHECK constraint.
        return RuleExprs(expr.not_().fill_null(False), expr.is_not_null().sum(), sample(refs), expr)

    return build


def _nulls(col: str) -> Builder:
    def build(refs: Mapping[str, ColumnRef]) -> RuleExprs:
        return RuleExprs(refs[col].raw.is_null(), pl.len())

    return build


def _value_in(ref: ColumnRef, values: Sequence[Any]) -> pl.Expr:
    """Where the column's value is one of ``values``: as the original text, or, in a column
    typed otherwise than string, as a typed value (``-1`` matches ``-1.0`` in a float column).
    """
    hit = ref.text.is_in(pl.Series([str(v) for v in values], dtype=pl.String).implode())
    dtype = ref.typed_dtype
    if not isinstance(dtype, pl.String):
        if dtype.is_numeric():
            series = _allowed_series([float(v) for v in values if _is_numeric_bound(v)], dtype)
        else:
            series = (
                pl.Series([str(v) for v in values], dtype=pl.String).cast(dtype, strict=False).drop_nulls()
            )
        if len(series):
            hit = hit | ref.typed.is_in(series.implode())
    return hit.fill_null(False)


def _missing_values(col: str, values: Sequence[Any]) -> Builder:
    listed = [v for v in values if v is not None]
    with_null = len(listed) != len(values)

    def build(refs: Mapping[str, ColumnRef]) -> RuleExprs:
        ref = refs[col]
        hit = _value_in(ref, listed) if listed else pl.lit(False)
        if with_null:
            hit = hit | ref.raw.is_null()
        return RuleExprs(hit, pl.len(), ref.raw)

    return build


def _invalid_values(col: str, values: Sequence[Any] | None, pattern: str | None) -> Builder:
    listed = [v for v in values or () if v is not None]

    def build(refs: Mapping[str, ColumnRef]) -> RuleExprs:
        ref = refs[col]
        bad = ref.raw.is_not_null()  # missing values are never invalid (nullValues counts them)
        if values is not None:
            bad = bad & (~_value_in(ref, listed) if listed else pl.lit(True))
        if pattern is not None:
            bad = bad & ~ref.text.str.contains(pattern).fill_null(True)
        return RuleExprs(bad.fill_null(False), pl.len(), ref.raw)

    return build


def _duplicate_values(keys: tuple[str, ...]) -> Builder:
    def build(refs: Mapping[str, ColumnRef]) -> RuleExprs:
        complete = pl.all_horizontal([refs[k].typed.is_not_null() for k in keys])
        value = refs[keys[0]].typed if len(keys) == 1 else pl.struct([refs[k].typed.alias(k) for k in keys])
        # Every copy after the first of a value counts once (n rows with one value: n - 1).
        extra = value.is_duplicated() & ~value.is_first_distinct()
        return RuleExprs(extra & complete, pl.len(), _keys_sample(refs, keys))

    return build


def _row_count() -> Builder:
    def build(refs: Mapping[str, ColumnRef]) -> RuleExprs:
        return RuleExprs(None, pl.len())

    return build


# -- compiling a contract ------------------------------------------------------------------

REGEX_DIALECT = "Rust regex crate (the one polars uses)"
"""The contract's regex dialect; see the README's "Rule semantics"."""

_NUMBER_TEXT = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def _is_numeric_bound(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    return isinstance(value, str) and _NUMBER_TEXT.fullmatch(value) is not None


def _ordered(lo: Any, hi: Any) -> bool:
    """``lo <= hi`` for two bounds of one declared type (True when they do not compare)."""
    try:
        if isinstance(lo, datetime) != isinstance(hi, datetime) and isinstance(lo, date):
            return True
        return bool(lo <= hi)
    except TypeError:
        return True


def regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a regex of the contract's dialect (None: it is). For importers
    (e.g. an ODCS ``pattern``) that must keep such a rule as not evaluated instead of refusing
    the whole contract.
    """
    try:
        pl.select(pl.lit("").str.contains(pattern))
    except pl.exceptions.PolarsError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip().startswith("error:")]
        return lines[0].removeprefix("error:").strip() if lines else str(exc).splitlines()[0]
    return None


class _Compiler:
    def __init__(self, contract: DataContract | None, dataset: DatasetContract, ds_index: int) -> None:
        self.contract = contract
        self.dataset = dataset
        self.prefix = f"datasets.{ds_index}." if contract is not None else ""
        self.rules: list[RuleSpec] = []
        self.columns = {c.column_id: c for c in dataset.columns}

    def add(
        self,
        rule_id: str,
        rule_type: str,
        column: str | None,
        severity: Severity,
        description: str,
        columns: Sequence[str],
        build: Builder | None,
        *,
        pii: bool | None = None,
        vacuous_if_missing: bool = False,
        field: str,
        kind: str = "",
        params: Mapping[str, Any] | None = None,
        threshold: Threshold | None = None,
        not_evaluated: str | None = None,
    ) -> None:
        if any(r.rule_id == rule_id for r in self.rules):
            raise ContractRuleError(f"duplicate rule id {rule_id!r}", field=field)
        if pii is None:
            pii = any(self._is_pii(c) for c in columns)
        self.rules.append(
            RuleSpec(
                rule_id=rule_id,
                rule_type=rule_type,
                column=column,
                severity=severity,
                description=description,
                columns=tuple(columns),
                pii=pii,
                vacuous_if_missing=vacuous_if_missing,
                build=build,
                kind=kind or rule_type,
                params=dict(params or {}),
                threshold=threshold,
                not_evaluated=not_evaluated,
            )
        )

    def _is_pii(self, column: str) -> bool:
        col = self.columns.get(column)
        return col is not None and col.is_pii

    def _value(self, value: Any, declared: DataType, field: str) -> Any:
        try:
            return python_value(value, declared)
        except (TypeError, ValueError) as exc:
            raise ContractRuleError(
                f"{field}: {value!r} is not a valid {declared.value} value", field=field
            ) from exc

    def _bound(self, value: Any, column: str, declared: DataType, field: str) -> Any:
        """A min / max value, refused where it could never mean what it says."""
        if declared == DataType.JSON:
            raise ContractRuleError(
                f"{field}: column {column!r} is declared json, whose values have no order", field=field
            )
        if declared == DataType.STRING and _is_numeric_bound(value):
            raise ContractRuleError(
                f"{field}: numeric bound {value!r} on column {column!r} declared string would be "
                f"compared as text ('2' > '10'); declare the column numeric",
                field=field,
            )
        return self._value(value, declared, field)

    @staticmethod
    def _check_order(lo: Any, hi: Any, column: str, what: str, field: str) -> None:
        if lo is not None and hi is not None and not _ordered(lo, hi):
            raise ContractRuleError(
                f"{field}: column {column!r} has min_{what} {lo!r} > max_{what} {hi!r}: no value can pass",
                field=field,
            )

    def _pattern(self, pattern: str, field: str) -> str:
        why = regex_problem(pattern)
        if why is not None:
            raise ContractRuleError(
                f"{field}: invalid regex {pattern!r} in the contract's dialect ({REGEX_DIALECT}): {why}",
                field=field,
            )
        return pattern

    def keys(self) -> None:
        keys = tuple(self.dataset.primary_keys)
        if keys:
            field = f"{self.prefix}primary_keys"
            column = keys[0] if len(keys) == 1 else None
            names = ", ".join(keys)
            self.add("primary_key.not_null", "not_null", column, Severity.HARD,
                     f"primary key ({names}) is never null", keys, _keys_not_null(keys), field=field,
                     params={"keys": keys})  # fmt: skip
            self.add("primary_key.unique", "unique", column, Severity.HARD,
                     f"primary key ({names}) is unique", keys, _unique_keys(keys), field=field,
                     params={"keys": keys})  # fmt: skip
        for i, index in enumerate(self.dataset.indexes):
            if not index.unique:
                continue
            cols = tuple(index.columns)
            name = index.name or "+".join(cols)
            self.add(f"index.{name}.unique", "unique", cols[0] if len(cols) == 1 else None,
                     Severity.HARD, f"unique index {name} ({', '.join(cols)})", cols,
                     _unique_keys(cols), field=f"{self.prefix}indexes.{i}", params={"keys": cols})  # fmt: skip

    def column(self, j: int, col: ColumnContract) -> None:
        c = col.column_id
        cons = col.constraints or ColumnConstraint()
        sev = cons.severity
        field = f"{self.prefix}columns.{j}"
        cf = f"{field}.constraints"
        required = col.required or cons.required
        opt = not required  # rules of an absent optional column pass: there is nothing to check

        def add(
            rule: str, rule_type: str, desc: str, build: Builder | None, f: str, kind: str = "", **params: Any
        ) -> None:
            self.add(f"{c}.{rule}", rule_type, c, sev, desc, (c,), build,
                     vacuous_if_missing=opt, field=f, kind=kind, params=params)  # fmt: skip

        if required:
            self.add(f"{c}.present", "required_column", c, sev, f"column {c} is present", (c,),
                     None, field=f"{field}.required", kind="present")  # fmt: skip
        if required or cons.disallow_nulls:
            add("not_null", "not_null", f"{c} is never null", _not_null(c), cf, keys=(c,))
        if col.data_type not in (DataType.STRING, DataType.JSON):
            add("data_type", "data_type", f"{c} values are {col.data_type.value}",
                _data_type(c), f"{field}.data_type", declared=col.data_type)  # fmt: skip
        if cons.unique:
            add("unique", "unique", f"{c} is unique", _unique(c), f"{cf}.unique", keys=(c,))
        lo = hi = None
        if cons.min_value is not None:
            lo = self._bound(cons.min_value, c, col.data_type, f"{cf}.min_value")
        if cons.max_value is not None:
            hi = self._bound(cons.max_value, c, col.data_type, f"{cf}.max_value")
        self._check_order(lo, hi, c, "value", f"{cf}.min_value")
        if lo is not None:
            add("min_value", "min_value", f"{c} >= {cons.min_value}", _compare(c, lo, "min"),
                f"{cf}.min_value", kind="compare", op="min", value=lo)  # fmt: skip
        if hi is not None:
            add("max_value", "max_value", f"{c} <= {cons.max_value}", _compare(c, hi, "max"),
                f"{cf}.max_value", kind="compare", op="max", value=hi)  # fmt: skip
        if cons.regex is not None:
            p = self._pattern(cons.regex, f"{cf}.regex")
            add("regex", "regex", f"{c} matches {p}", _regex(c, p), f"{cf}.regex", pattern=p)
        if cons.allowed_values is not None:
            f = f"{cf}.allowed_values"
            vals = [self._value(v, col.data_type, f"{f}.{k}") for k, v in enumerate(cons.allowed_values)]
            shown = ", ".join(str(v) for v in cons.allowed_values)
            add("allowed_values", "allowed_values", f"{c} in [{shown}]", _allowed(c, vals), f,
                kind="allowed", values=tuple(vals))  # fmt: skip
        self._check_order(cons.min_length, cons.max_length, c, "length", f"{cf}.min_length")
        if cons.min_length is not None:
            add("min_length", "min_length", f"length of {c} >= {cons.min_length}",
                _length(c, cons.min_length, "min"), f"{cf}.min_length", kind="length", op="min",
                bound=cons.min_length)  # fmt: skip
        if cons.max_length is not None:
            add("max_length", "max_length", f"length of {c} <= {cons.max_length}",
                _length(c, cons.max_length, "max"), f"{cf}.max_length", kind="length", op="max",
                bound=cons.max_length)  # fmt: skip

    def quality(self) -> None:
        """The dataset's quality rules (ODCS metrics): one spec each, except ``text`` rules."""
        taken = {r.rule_id for r in self.rules}
        for i, rule in enumerate(self.dataset.quality_rules):
            if rule.metric == QualityMetric.TEXT:
                continue  # documentation: nothing to check
            field = f"{self.prefix}quality_rules.{i}"
            rule_id = rule.rule_id
            if rule_id is None:
                # Stable without an id: the column (or dataset) and metric, numbered on repeats.
                base = f"{'+'.join(rule.columns)}.{rule.metric.value}" if rule.columns else rule.metric.value
                rule_id, n = base, 1
                while rule_id in taken:
                    n += 1
                    rule_id = f"{base}.{n}"
            taken.add(rule_id)
            self.quality_rule(rule, rule_id, field)

    def quality_rule(self, rule: QualityRule, rule_id: str, field: str) -> None:
        m = rule.metric
        cols = tuple(rule.columns)
        column = cols[0] if len(cols) == 1 else None
        threshold = None
        if rule.operator is not None:
            value = tuple(rule.threshold) if isinstance(rule.threshold, list) else rule.threshold
            threshold = Threshold(rule.operator, value, rule.unit if m != QualityMetric.SQL else "")
        what = {
            QualityMetric.NULL_VALUES: f"null values in {column}",
            QualityMetric.MISSING_VALUES: f"missing values in {column} ({rule.missing_values})",
            QualityMetric.INVALID_VALUES: f"invalid values in {column}",
            QualityMetric.DUPLICATE_VALUES: f"duplicate values of ({', '.join(cols)})",
            QualityMetric.ROW_COUNT: "row count",
            QualityMetric.SQL: f"sql {rule.query!r}",
            QualityMetric.CUSTOM: f"custom rule for {rule.engine}",
        }[m]
        desc = rule.description or rule.name or what
        if threshold is not None:
            desc = (
                f"{desc} [{what} {threshold.text()}]"
                if rule.description or rule.name
                else f"{what} {threshold.text()}"
            )
        build: Builder | None
        note = None
        params: dict[str, Any] = {"keys": cols}
        if m == QualityMetric.NULL_VALUES:
            build = _nulls(cols[0])
        elif m == QualityMetric.MISSING_VALUES:
            build = _missing_values(cols[0], list(rule.missing_values or ()))
            params["values"] = tuple(rule.missing_values or ())
        elif m == QualityMetric.INVALID_VALUES:
            pattern = rule.pattern
            if pattern is not None and (why := regex_problem(pattern)) is not None:
                note = f"pattern {pattern!r} is outside the contract's regex dialect ({REGEX_DIALECT}): {why}"
                pattern = None
            build = _invalid_values(cols[0], rule.valid_values, pattern)
            params.update(values=tuple(rule.valid_values or ()), pattern=pattern)
        elif m == QualityMetric.DUPLICATE_VALUES:
            build = _duplicate_values(cols)
        elif m == QualityMetric.ROW_COUNT:
            build = _row_count()
        elif m == QualityMetric.SQL:
            build = _row_count()  # the SQL result is measured apart; this only counts rows
            params["query"] = rule.query
            cols = ()
        else:
            build = _row_count()
            note = f"custom rule for engine {rule.engine!r}: run by that engine, not by this one"
            cols = ()
        self.add(rule_id, m.value, column, rule.severity, desc, cols, build, field=field,
                 kind=m.value, params=params, threshold=threshold, not_evaluated=note)  # fmt: skip

    def bindings(self) -> None:
        if self.contract is None:
            return
        templates = {t.template_id: (i, t) for i, t in enumerate(self.contract.rule_templates)}
        for b_index, binding in enumerate(self.contract.rule_bindings):
            if binding.dataset_contract_id not in (None, self.dataset.dataset_contract_id):
                continue
            field = f"rule_bindings.{b_index}"
            if binding.template_id not in templates:
                raise ContractRuleError(
                    f"{field}.template_id: no rule template {binding.template_id!r}",
                    field=f"{field}.template_id",
                )
            t_index, template = templates[binding.template_id]
            self.binding(binding, field, template, f"rule_templates.{t_index}")

    def binding(self, binding: RuleBinding, field: str, template: RuleTemplate, t_field: str) -> None:
        params: dict[str, Any] = {**template.parameters, **binding.parameters}
        column = binding.column_id or params.get("column")
        if column is not None and not isinstance(column, str):
            raise ContractRuleError(
                f"{field}.parameters.column must be a string", field=f"{field}.parameters.column"
            )
        rule_id = binding.binding_id or (
            f"{column}.{template.template_id}" if column else template.template_id
        )
        severity = binding.severity or template.severity
        description = template.description or template.name or template.template_id
        rule_type = template.rule_type
        kw: dict[str, Any] = {"field": field}

        def need_column() -> str:
            if column is None:
                raise ContractRuleError(
                    f"{field}: rule type {rule_type!r} needs a column_id", field=f"{field}.column_id"
                )
            return column

        def param(name: str) -> Any:
            if name not in params:
                raise ContractRuleError(
                    f"{t_field}.parameters.{name}: required by rule type {rule_type!r}",
                    field=f"{t_field}.parameters.{name}",
                )
            return params[name]

        declared = self.columns[column].data_type if column in self.columns else DataType.STRING
        if rule_type == "expression":
            text = param("expression")
            expr = self._sql(text, params, column, f"{t_field}.parameters.expression")
            roots = tuple(dict.fromkeys(expr.meta.root_names()))
            keys = tuple(self.dataset.primary_keys)
            cols = (*roots, *([column] if column and column not in roots else []))
            pii = any(self._is_pii(c) for c in ([column] if column else keys))

            # Without a column to show, the failing rows' primary keys say which rows failed.
            def sample(refs: Mapping[str, ColumnRef]) -> pl.Expr | None:
                if column is not None:
                    return refs[column].raw
                if keys and all(k in refs for k in keys):
                    return _keys_sample(refs, keys)
                return None

            self.add(rule_id, "expression", column, severity,
                     f"{description}: {params['expression']}", cols, _expression(expr, sample),
                     pii=pii, params={"expr": expr, "sample": column or None, "keys": keys}, **kw)  # fmt: skip
        elif rule_type == "not_null":
            c = need_column()
            self.add(rule_id, rule_type, c, severity, description, (c,), _not_null(c),
                     params={"keys": (c,)}, **kw)  # fmt: skip
        elif rule_type == "unique":
            cols_param = params.get("columns")
            keys = tuple(cols_param) if isinstance(cols_param, list) and cols_param else (need_column(),)
            self.add(rule_id, rule_type, column, severity, description, keys, _unique_keys(keys),
                     params={"keys": keys}, **kw)  # fmt: skip
        elif rule_type == "regex":
            c = need_column()
            p = self._pattern(str(param("pattern")), f"{t_field}.parameters.pattern")
            self.add(rule_id, rule_type, c, severity, description, (c,), _regex(c, p),
                     params={"pattern": p}, **kw)  # fmt: skip
        elif rule_type == "allowed_values":
            c = need_column()
            raw = param("values")
            if not isinstance(raw, list):
                raise ContractRuleError(
                    f"{t_field}.parameters.values must be a list", field=f"{t_field}.parameters.values"
                )
            vals = [self._value(v, declared, f"{t_field}.parameters.values") for v in raw]
            self.add(rule_id, rule_type, c, severity, description, (c,), _allowed(c, vals),
                     kind="allowed", params={"values": tuple(vals)}, **kw)  # fmt: skip
        elif rule_type in ("range", "min_value", "max_value"):
            c = need_column()
            bounds = {
                b: self._bound(params[b], c, declared, f"{field}.parameters.{b}")
                for b in ("min_value", "max_value")
                if params.get(b) is not None
            }
            self._check_order(bounds.get("min_value"), bounds.get("max_value"), c, "value",
                              f"{field}.parameters.min_value")  # fmt: skip
            for bound, op in (("min_value", "min"), ("max_value", "max")):
                if bound not in bounds:
                    continue
                v = bounds[bound]
                rid = rule_id if rule_type != "range" else f"{rule_id}.{bound}"
                self.add(rid, bound, c, severity, description, (c,), _compare(c, v, op),
                         kind="compare", params={"op": op, "value": v}, **kw)  # fmt: skip
        elif rule_type in ("length", "min_length", "max_length"):
            c = need_column()
            lengths = {
                b: int(self._value(params[b], DataType.INTEGER, f"{field}.parameters.{b}"))
                for b in ("min_length", "max_length")
                if params.get(b) is not None
            }
            self._check_order(lengths.get("min_length"), lengths.get("max_length"), c, "length",
                              f"{field}.parameters.min_length")  # fmt: skip
            for bound, op in (("min_length", "min"), ("max_length", "max")):
                if bound not in lengths:
                    continue
                rid = rule_id if rule_type != "length" else f"{rule_id}.{bound}"
                n = lengths[bound]
                self.add(rid, bound, c, severity, description, (c,), _length(c, n, op),
                         kind="length", params={"op": op, "bound": n}, **kw)  # fmt: skip
        else:
            raise ContractRuleError(
                f"{t_field}.rule_type: unsupported rule type {rule_type!r}", field=f"{t_field}.rule_type"
            )

    def _sql(self, text: Any, params: Mapping[str, Any], column: str | None, field: str) -> pl.Expr:
        if not isinstance(text, str) or not text.strip():
            raise ContractRuleError(f"{field} must be a non-empty string", field=field)
        values = {k: v for k, v in params.items() if k != "expression"}
        if column is not None:
            values["column"] = column if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", column) else f'"{column}"'

        # {name} placeholders take template / binding parameters; unknown names stay as written.
        def sub(m: re.Match[str]) -> str:
            return str(values[m.group(1)]) if m.group(1) in values else m.group(0)

        resolved = re.sub(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", sub, text)
        try:
            return pl.sql_expr(resolved)
        except pl.exceptions.PolarsError as exc:
            raise ContractRuleError(f"{field}: cannot parse {resolved!r}: {exc}", field=field) from exc


def compile_rules(contract: DataContract | DatasetContract, dataset_type: str | None = None) -> RulePlan:
    """Every rule of the dataset contract (selected by ``dataset_type`` if several), in order."""
    data_contract, dataset, index = resolve_dataset(contract, dataset_type)
    comp = _Compiler(data_contract, dataset, index)
    comp.keys()
    for j, col in enumerate(dataset.columns):
        comp.column(j, col)
    comp.quality()
    comp.bindings()
    return RulePlan(data_contract, dataset, tuple(comp.rules))


# -- the evaluation frame ------------------------------------------------------------------


@dataclass(frozen=True)
class PreparedFrame:
    """The frame with every present contract column in its declared type (parsed columns keep
    their original values under ``RAW_PREFIX + name``), and a ``ColumnRef`` per column.
    """

    frame: pl.LazyFrame
    refs: dict[str, ColumnRef]
    schema: pl.Schema
    """Schema of the input frame."""


def _missing_nan(expr: pl.Expr, dtype: pl.DataType, column: ColumnContract | None) -> pl.Expr | None:
    """Where a value of ``expr`` is NaN (missing, like null); None when it can never be."""
    if dtype.is_float():
        return expr.is_nan()
    numeric = (DataType.INTEGER, DataType.DECIMAL, DataType.FLOAT)
    if column is not None and column.data_type in numeric and isinstance(dtype, pl.String):
        # Text a CSV gives for NaN ("NaN", "nan") in a column declared numeric.
        return expr.str.strip_chars().cast(pl.Float64, strict=False).is_nan().fill_null(False)
    return None


def prepare_frame(lf: pl.LazyFrame, dataset: DatasetContract) -> PreparedFrame:
    schema = lf.collect_schema()
    refs: dict[str, ColumnRef] = {}
    extra: list[pl.Expr] = []
    contract_cols = {c.column_id: c for c in dataset.columns}
    # NaN is missing: replaced by null once, before anything else reads the column.
    nan_free: dict[str, pl.Expr] = {}
    for c, dtype in schema.items():
        nan = _missing_nan(pl.col(c), dtype, contract_cols.get(c))
        if nan is not None:
            nan_free[c] = pl.col(c).fill_nan(None) if dtype.is_float() else pl.when(~nan).then(pl.col(c))
    if nan_free:
        lf = lf.with_columns([e.alias(c) for c, e in nan_free.items()])
    for col in dataset.columns:
        c = col.column_id
        if c not in schema:
            continue
        tc = typed_column(pl.col(c), schema[c], col)
        if tc.expr is None:
            refs[c] = ColumnRef(c, pl.col(c), pl.col(c), schema[c], schema[c], False)
        else:
            extra += [pl.col(c).alias(RAW_PREFIX + c), tc.expr.alias(c)]
            refs[c] = ColumnRef(c, pl.col(RAW_PREFIX + c), pl.col(c), schema[c], tc.dtype, tc.may_fail)
    for c, dtype in schema.items():
        # Columns outside the contract still serve expression rules and samples, untyped.
        if c not in refs:
            refs[c] = ColumnRef(c, pl.col(c), pl.col(c), dtype, dtype, False)
    return PreparedFrame(lf.with_columns(extra) if extra else lf, refs, schema)
