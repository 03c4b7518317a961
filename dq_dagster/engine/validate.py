"""Validation of a frame against its contract, producing a ``ValidationReport``.

One lazy query evaluates every rule: each distinct failure mask is computed once, as a boolean
column (a bitmap), and a single ``select`` reads them for every rule's failure count, checked
count and bounded, de-duplicated sample of failing values, and for the number of rows failing
any hard rule (``any_horizontal`` over the hard masks). Only one row of aggregates leaves polars.
Samples of PII columns are masked before they enter the report.

A missing column is a failed ``<col>.present`` rule (required columns), never an exception; the
other rules on it are reported as not evaluated. Rule compilation is in rules.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

from dq_dagster.engine.frames import FrameLike, to_json_scalar, to_lazy
from dq_dagster.engine.masking import mask_values
from dq_dagster.engine.rules import RuleExprs, RulePlan, RuleSpec, compile_rules, prepare_frame
from dq_stores.models import (
    DataContract,
    DatasetContract,
    ReportStatus,
    RuleResult,
    Severity,
    ValidationReport,
)
from dq_stores.models.common import JsonScalar, utcnow
from dq_stores.models.reports import MAX_SAMPLE

__all__ = ["report_status", "validate"]

# Rows scanned for distinct sample values: bounds the cost of de-duplicating a rule's failures.
_SAMPLE_SCAN = MAX_SAMPLE * 10
_MASK = "__dq_mask_"
_NO_CSE = pl.QueryOptFlags(comm_subexpr_elim=False)


@dataclass(frozen=True)
class _Evaluated:
    spec: RuleSpec
    exprs: RuleExprs
    key: int


def _sample_values(raw: Any, pii: bool) -> list[JsonScalar | None]:
    values = [to_json_scalar(v) for v in (raw or [])][:MAX_SAMPLE]
    return mask_values(values) if pii else values


def _result(
    spec: RuleSpec,
    checked: int,
    failed: int,
    *,
    passed: bool | None = None,
    sample: list[JsonScalar | None] | None = None,
    rate: float | None = None,
    note: str | None = None,
    measured: JsonScalar | None = None,
) -> RuleResult:
    if rate is None:
        rate = failed / checked if checked else 0.0
    extra: dict[str, Any] = {}
    if note is not None and note.startswith("not evaluated"):
        extra["evaluated"] = False
    if spec.threshold is not None:
        extra["threshold"] = spec.threshold.text()
        if "evaluated" not in extra:
            extra["measured_value"] = measured
    return RuleResult(
        rule_id=spec.rule_id,
        rule_type=spec.rule_type,
        column=spec.column,
        severity=spec.severity,
        checked_count=checked,
        failed_count=failed,
        failure_rate=min(1.0, rate),
        passed=failed == 0 if passed is None else passed,
        sample=sample or [],
        sample_masked=spec.pii,
        description=f"{spec.description} ({note})" if note else spec.description,
        **extra,
    )


def report_status(rules: list[RuleResult]) -> ReportStatus:
    """Failed if a hard rule failed, warning if only soft ones did, passed otherwise."""
    failed = [r for r in rules if not r.passed]
    if any(r.severity == Severity.HARD for r in failed):
        return ReportStatus.FAILED
    return ReportStatus.WARNING if failed else ReportStatus.PASSED


def validate(
    data: FrameLike,
    contract: DataContract | DatasetContract | RulePlan,
    *,
    dataset_type: str | None = None,
) -> ValidationReport:
    """Evaluate every rule of the contract on ``data`` (polars or pandas) in one pass.

    ``contract`` may be a compiled ``RulePlan`` to skip compiling it again on every run. Files
    and tables: ``dq_dagster.engine.validate_source``.
    """
    plan = contract if isinstance(contract, RulePlan) else compile_rules(contract, dataset_type)
    return validate_lazy(to_lazy(data), plan)


def validate_lazy(lf: pl.LazyFrame, plan: RulePlan, *, engine: str = "polars") -> ValidationReport:
    """``validate`` of a lazy frame (the in-memory engine)."""
    started = utcnow()
    prep = prepare_frame(lf, plan.dataset)
    schema = prep.schema

    evaluated: list[_Evaluated] = []
    pending: dict[str, tuple[str, bool]] = {}  # rule id -> (note, passed) for rules not evaluated
    sql_rules: list[RuleSpec] = []
    for spec in plan.rules:
        missing = [c for c in spec.columns if c not in schema]
        if spec.build is None:
            continue  # presence: decided from the schema below
        if spec.not_evaluated is not None:
            pending[spec.rule_id] = (f"not evaluated: {spec.not_evaluated}", False)
            continue
        if spec.kind == "sql":
            sql_rules.append(spec)
            continue
        if missing:
            names = ", ".join(missing)
            if spec.vacuous_if_missing:
                pending[spec.rule_id] = (f"optional column {names} absent: nothing to check", True)
            else:
                pending[spec.rule_id] = (f"not evaluated: column {names} missing", False)
            continue
        exprs = spec.build(prep.refs)
        if exprs.condition is not None:
            problem = _check_condition(prep.frame, exprs.condition)
            if problem is not None:
                pending[spec.rule_id] = (f"not evaluated: {problem}", False)
                continue
        evaluated.append(_Evaluated(spec, exprs, len(evaluated)))

    row = _aggregate(prep.frame, evaluated)
    keys = {ev.spec.rule_id: ev.key for ev in evaluated}
    measured: dict[str, JsonScalar | None] = {}
    if sql_rules:
        typed = prep.frame.select(schema.names())
        for spec in sql_rules:
            value, problem = _sql_value(typed, plan, spec)
            if problem is not None:
                pending[spec.rule_id] = (f"not evaluated: {problem}", False)
            else:
                measured[spec.rule_id] = value
    return assemble_report(
        plan, schema.names(), row, keys, pending, started, engine=engine, measured=measured
    )


_OBJECT = "dq_object"


def _sql_value(frame: pl.LazyFrame, plan: RulePlan, spec: RuleSpec) -> tuple[JsonScalar | None, str | None]:
    """The one value an ODCS ``sql`` rule's query gives on ``frame`` (polars SQL), or why not.

    ``{object}`` names the dataset, ``{property}`` the rule's column; the frame is also
    registered under the dataset type and its ``physical_name`` (metadata), which queries
    written for the source table use.
    """
    query = str(spec.params.get("query") or "")
    query = query.replace("{object}", _OBJECT)
    if spec.column is not None:
        query = query.replace("{property}", f'"{spec.column}"')
    ds = plan.dataset
    names = {_OBJECT, ds.dataset_type}
    physical = ds.metadata.get("physical_name")
    if isinstance(physical, str) and physical:
        names.add(physical)
    ctx = pl.SQLContext({n: frame for n in names})
    try:
        out = ctx.execute(query, eager=True)
    except (pl.exceptions.PolarsError, ValueError) as exc:
        return None, f"sql query does not run on this frame: {str(exc).splitlines()[0]}"
    if out.height < 1 or out.width < 1:
        return None, "sql query gave no value"
    if out.height != 1 or out.width != 1:
        return None, f"sql query gave {out.height} rows x {out.width} columns, not one value"
    return to_json_scalar(out.item()), None


def assemble_report(
    plan: RulePlan,
    columns: list[str],
    row: dict[str, Any],
    keys: dict[str, int],
    pending: dict[str, tuple[str, bool]],
    started: datetime,
    *,
    engine: str,
    measured: Mapping[str, JsonScalar | None] | None = None,
) -> ValidationReport:
    """The report of one evaluation, whatever engine computed it.

    ``columns``: the dataset's columns; ``row``: ``__rows``, ``__rows_failed`` and per evaluated
    rule (``keys``: rule id -> k) ``c<k>`` checked, ``f<k>`` failed, ``s<k>`` sample values;
    ``pending``: rule id -> (note, passed) for rules not evaluated. ``engine`` is recorded in the
    report's metadata (``engine``). ``measured``: rule id -> the value a ``sql`` quality rule's
    query gave. A rule with a threshold passes when its measured value (its failing rows, in rows
    or percent of all rows; the row count; the SQL value) meets the threshold.
    """
    present = set(columns)
    row_count = int(row["__rows"])
    rows_failed = int(row.get("__rows_failed") or 0)
    results: list[RuleResult] = []
    for spec in plan.rules:
        if spec.build is None:
            if all(c in present for c in spec.columns):
                results.append(_result(spec, row_count, 0))
            else:
                results.append(
                    _result(spec, row_count, row_count, passed=False, rate=1.0, note="column missing")
                )
                if spec.severity == Severity.HARD:
                    rows_failed = row_count  # every row lacks the column
            continue
        if spec.rule_id in pending:
            note, passed = pending[spec.rule_id]
            results.append(_result(spec, 0, 0, passed=passed, note=note))
            continue
        if spec.kind == "sql":
            sql_value = (measured or {}).get(spec.rule_id)
            ok = spec.threshold.holds(sql_value) if spec.threshold is not None else False
            results.append(_result(spec, row_count, 0, passed=ok, measured=sql_value))
            continue
        k = keys[spec.rule_id]
        failed = int(row.get(f"f{k}") or 0)
        sample = _sample_values(row.get(f"s{k}"), spec.pii) if failed else []
        checked = int(row[f"c{k}"])
        if spec.threshold is None:
            results.append(_result(spec, checked, failed, sample=sample))
            continue
        value: int | float
        if spec.kind == "row_count":
            value = row_count
        elif spec.threshold.unit == "percent":
            value = 100.0 * failed / row_count if row_count else 0.0
        else:
            value = failed
        ok = spec.threshold.holds(value)
        results.append(_result(spec, checked, failed, passed=ok, sample=sample, measured=value))

    dataset = plan.dataset
    contract_columns = {c.column_id for c in dataset.columns}
    unexpected = [c for c in columns if c not in contract_columns]
    metadata: dict[str, Any] = {"dataset_contract_id": dataset.dataset_contract_id, "engine": engine}
    if unexpected:
        metadata["unexpected_columns"] = unexpected[:50]
    return ValidationReport(
        **plan.header(),
        started_at=started,
        completed_at=utcnow(),
        status=report_status(results),
        row_count=row_count,
        rows_failed=rows_failed,
        pass_rate=1.0 - rows_failed / row_count if row_count else 1.0,
        rules=results,
        metadata=metadata,
    )


def _aggregate(
    frame: pl.LazyFrame, evaluated: list[_Evaluated], *, streaming: bool = False
) -> dict[str, Any]:
    """One row: ``__rows``, ``__rows_failed`` and per rule ``c<k>`` / ``f<k>`` / ``s<k>``."""
    # Each distinct failure mask becomes one boolean column (a bitmap: 1M rows cost 125 kB),
    # computed once and in parallel, then read by the count, the sample and the any-hard-rule
    # aggregate. Deduplicating here (a single-column primary key with a unique constraint gives
    # the same mask twice) beats polars' CSE, which serialises and re-plans these aggregates.
    masks: list[pl.Expr] = []
    mask_of: dict[int, str] = {}
    for ev in evaluated:
        fail = ev.exprs.fail
        if fail is None:
            continue
        same = next((i for i, m in enumerate(masks) if m.meta.eq(fail)), None)
        if same is None:
            same = len(masks)
            masks.append(fail)
        mask_of[ev.key] = f"{_MASK}{same}"

    aggs: list[pl.Expr] = [pl.len().alias("__rows")]
    hard: set[str] = set()
    for ev in evaluated:
        aggs.append(ev.exprs.checked.alias(f"c{ev.key}"))
        name = mask_of.get(ev.key)
        if name is None:
            continue
        mask = pl.col(name)
        aggs.append(mask.sum().alias(f"f{ev.key}"))
        if ev.exprs.sample is not None:
            sample = ev.exprs.sample.filter(mask).head(_SAMPLE_SCAN).unique(maintain_order=True)
            aggs.append(sample.head(MAX_SAMPLE).implode().alias(f"s{ev.key}"))
        # A thresholded metric's rows are failing rows only when it tolerates none of them.
        t = ev.spec.threshold
        if ev.spec.severity == Severity.HARD and (t is None or t.zero_tolerance):
            hard.add(name)
    if hard:
        aggs.append(pl.any_horizontal([pl.col(h) for h in sorted(hard)]).sum().alias("__rows_failed"))
    staged = frame.with_columns([m.alias(f"{_MASK}{i}") for i, m in enumerate(masks)]) if masks else frame
    out = staged.select(aggs).collect(optimizations=_NO_CSE, engine="streaming" if streaming else "auto")
    return out.row(0, named=True)


def _check_condition(frame: pl.LazyFrame, condition: pl.Expr) -> str | None:
    """Why an expression rule cannot run on this frame (None: it can)."""
    try:
        dtype = frame.select(condition.alias("__c")).collect_schema()["__c"]
    except pl.exceptions.PolarsError as exc:
        return f"expression does not apply to this frame: {str(exc).splitlines()[0]}"
    if not isinstance(dtype, pl.Boolean):
        return f"expression gives {dtype}, not a boolean"
    return None
