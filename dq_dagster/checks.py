"""Contract rules as Dagster asset checks, and contract columns as a Dagster table schema.

* ``build_check_specs`` declares one ``AssetCheckSpec`` per rule of a dataset contract (rule ids
  from ``dq_dagster.engine.compile_rules``): hard rules are blocking (a failure is ERROR and stops
  downstream assets of the run), soft rules are not (a failure is WARN).
* ``check_results`` turns a ``ValidationReport`` of the asset's data into one ``AssetCheckResult``
  per declared check: passed, severity, and metadata (failed_count, failure_rate, ...).
* ``quarantine_hard_failures`` splits a frame into the rows that pass every hard rule and the
  rows that do not, so that a pipeline whose hard checks block can keep going on the good rows
  while the bad ones are counted (and kept for repair).
* ``column_schema`` gives the ``dagster/column_schema`` definition metadata of a dataset.
* ``build_anomaly_check_specs`` / ``anomaly_check_results``: one WARN check per metric a
  contract's ``anomaly_detection`` block follows (``anomaly_<key>``), and its result from a
  profiling snapshot's ``anomaly_checks`` (judged by ``dq_dagster.engine.anomaly``).

Checks are declared when the code location loads, from a contract known then (e.g. a bundled
artifact); results come from the contract read at run time. The two are matched by rule id: a
declared rule the run-time contract no longer has is reported as a failed WARN "not evaluated"
(Dagster needs a result for every declared check of an asset), a run-time rule without a declared
check is returned in ``CheckOutcome.undeclared`` for the caller to log. Failing-value samples are
never put into check metadata (they may be personal data; the stored report keeps them, masked).
This module evaluates nothing itself: validation is ``dq_dagster.engine.validate``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    MetadataValue,
    TableColumn,
    TableColumnConstraints,
    TableConstraints,
    TableSchema,
)

from dq_dagster.engine import RulePlan, compile_rules
from dq_dagster.engine.frames import FrameLike, to_lazy
from dq_dagster.engine.rules import prepare_frame, resolve_dataset
from dq_stores.models import (
    AnomalyCheck,
    ColumnConstraint,
    ColumnContract,
    DataContract,
    DatasetContract,
    RuleResult,
    Severity,
    ValidationReport,
)

__all__ = [
    "ANOMALY_KEY",
    "QUARANTINE_REASON",
    "CheckOutcome",
    "Quarantine",
    "anomaly_check_name",
    "anomaly_check_results",
    "build_anomaly_check_specs",
    "build_check_specs",
    "check_name",
    "check_names",
    "check_results",
    "column_schema",
    "quarantine_hard_failures",
]

RULE_ID = "dq/rule_id"
"""Check-spec metadata key holding the contract rule id a check stands for."""
QUARANTINE_REASON = "_dq_quarantine_rule"
"""Column of quarantined rows naming the first hard rule (in contract order) the row fails."""

_INVALID = re.compile(r"[^A-Za-z0-9_]")

AssetKeyLike = AssetKey | str | Sequence[str]


def check_name(rule_id: str) -> str:
    """A Dagster-valid check name for a rule id: ``.`` becomes ``__``, any other character
    outside ``[A-Za-z0-9_]`` becomes ``_`` (``primary_key.not_null`` -> ``primary_key__not_null``).
    """
    return _INVALID.sub("_", rule_id.replace(".", "__"))


ANOMALY_KEY = "dq/anomaly_metric"
"""Check-spec metadata key holding the metric key (``row_count``, ``amount.null_ratio``) a check follows."""


def anomaly_check_name(key: str) -> str:
    """The WARN check of a followed metric: ``anomaly_`` + the key as a check name
    (``amount.null_ratio`` -> ``anomaly_amount__null_ratio``, ``rule:r1.failure_rate`` ->
    ``anomaly_rule_r1__failure_rate``).
    """
    return "anomaly_" + check_name(key)


def _plan(contract: DataContract | DatasetContract | RulePlan, dataset_type: str | None) -> RulePlan:
    return contract if isinstance(contract, RulePlan) else compile_rules(contract, dataset_type)


def check_names(rule_ids: Sequence[str]) -> dict[str, str]:
    """Rule id -> check name; ids whose names would collide get a short hash of the id appended."""
    by_name: dict[str, list[str]] = {}
    for rule_id in rule_ids:
        by_name.setdefault(check_name(rule_id), []).append(rule_id)
    names: dict[str, str] = {}
    for name, ids in by_name.items():
        for rule_id in ids:
            unique = len(ids) == 1
            names[rule_id] = name if unique else f"{name}_{hashlib.sha256(rule_id.encode()).hexdigest()[:8]}"
    return names


def _severity(severity: Severity | str) -> AssetCheckSeverity:
    return AssetCheckSeverity.ERROR if Severity(severity) is Severity.HARD else AssetCheckSeverity.WARN


def build_check_specs(
    contract: DataContract | DatasetContract | RulePlan,
    asset: AssetKeyLike,
    *,
    dataset_type: str | None = None,
    blocking_hard: bool = True,
) -> list[AssetCheckSpec]:
    """One ``AssetCheckSpec`` per rule of the dataset contract, in contract order.

    Hard rules are blocking when ``blocking_hard`` (their ERROR failure stops downstream assets
    of the same run); soft rules never block. Each spec's metadata names the rule
    (``dq/rule_id``), its type, column and severity. Raises ``ContractRuleError`` for a contract
    that cannot be compiled.
    """
    plan = _plan(contract, dataset_type)
    key = AssetKey.from_coercible(asset)
    names = check_names([r.rule_id for r in plan.rules])
    specs = []
    for rule in plan.rules:
        hard = Severity(rule.severity) is Severity.HARD
        metadata: dict[str, str] = {
            RULE_ID: rule.rule_id,
            "dq/rule_type": rule.rule_type,
            "dq/severity": Severity(rule.severity).value,
        }
        if rule.column is not None:
            metadata["dq/column"] = rule.column
        specs.append(
            AssetCheckSpec(
                names[rule.rule_id],
                asset=key,
                description=f"{rule.description} ({Severity(rule.severity).value} rule {rule.rule_id})",
                blocking=hard and blocking_hard,
                metadata=metadata,
            )
        )
    return specs


@dataclass(frozen=True)
class CheckOutcome:
    """The results for every declared check, and the mismatches between declaration and run."""

    results: list[AssetCheckResult]
    undeclared: list[str] = field(default_factory=list)
    """Rule ids the report has but no check was declared for (reload the code location)."""
    not_evaluated: list[str] = field(default_factory=list)
    """Rule ids of declared checks the report does not have (reported as failed WARN)."""

    @property
    def failed(self) -> list[AssetCheckResult]:
        return [r for r in self.results if not r.passed]


def _rule_metadata(rule: RuleResult, report: ValidationReport) -> dict[str, MetadataValue[Any]]:
    meta: dict[str, MetadataValue[Any]] = {
        "failed_count": MetadataValue.int(rule.failed_count),
        "failure_rate": MetadataValue.float(float(rule.failure_rate)),
        "checked_count": MetadataValue.int(rule.checked_count),
        "rule_id": MetadataValue.text(rule.rule_id),
        "rule_type": MetadataValue.text(rule.rule_type),
        "severity": MetadataValue.text(Severity(rule.severity).value),
        "row_count": MetadataValue.int(report.row_count),
    }
    if rule.column is not None:
        meta["column"] = MetadataValue.text(rule.column)
    # Thresholded quality rules (ODCS metrics): what was measured, against what.
    if rule.threshold is not None:
        meta["threshold"] = MetadataValue.text(rule.threshold)
    if rule.measured_value is not None:
        meta["measured_value"] = MetadataValue.text(str(rule.measured_value))
    if not rule.evaluated:
        meta["evaluated"] = MetadataValue.bool(False)
    if report.contract_id is not None:
        meta["dq/contract_id"] = MetadataValue.text(report.contract_id)
    if report.contract_version is not None:
        meta["dq/contract_version"] = MetadataValue.text(report.contract_version)
    return meta


def check_results(
    report: ValidationReport, specs: Iterable[AssetCheckSpec], *, missing: Literal["warn", "skip"] = "warn"
) -> CheckOutcome:
    """One ``AssetCheckResult`` per spec (built by ``build_check_specs``) from ``report``.

    A result's severity is the one the report's rule has (the run-time contract decides: a rule
    made soft since the code location loaded fails as WARN, which never blocks). A spec whose rule
    the report lacks is listed in ``not_evaluated`` and, with ``missing="warn"``, fails as WARN
    with ``evaluated: false``; with ``missing="skip"`` it gets no result, which Dagster records as
    a skipped check (never as passed): what ``DataQualityComponent`` does for a rule a tenant's
    contract does not have.
    """
    by_id = {r.rule_id: r for r in report.rules}
    results: list[AssetCheckResult] = []
    declared: set[str] = set()
    not_evaluated: list[str] = []
    for spec in specs:
        rule_id = spec.metadata.get(RULE_ID)
        if not isinstance(rule_id, str):
            raise ValueError(f"check {spec.name!r} was not built by build_check_specs (no {RULE_ID})")
        declared.add(rule_id)
        rule = by_id.get(rule_id)
        if rule is None:
            not_evaluated.append(rule_id)
            if missing == "skip":
                continue
            version = (
                f"{report.contract_id}@{report.contract_version}" if report.contract_id else "the contract"
            )
            results.append(
                AssetCheckResult(
                    asset_key=spec.asset_key,
                    check_name=spec.name,
                    passed=False,
                    severity=AssetCheckSeverity.WARN,
                    description=f"not evaluated: {version} has no rule {rule_id!r}",
                    metadata={"rule_id": rule_id, "evaluated": False},
                )
            )
            continue
        results.append(
            AssetCheckResult(
                asset_key=spec.asset_key,
                check_name=spec.name,
                passed=bool(rule.passed),
                severity=_severity(rule.severity),
                description=rule.description,
                metadata=_rule_metadata(rule, report),
            )
        )
    undeclared = [r.rule_id for r in report.rules if r.rule_id not in declared]
    return CheckOutcome(results, undeclared, not_evaluated)


# -- quarantine ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Quarantine:
    """``kept``: rows passing every hard rule (input order); ``rejected``: the others, with
    ``QUARANTINE_REASON``; ``reasons``: rejected rows per first failing rule id.
    """

    kept: pl.DataFrame
    rejected: pl.DataFrame
    reasons: dict[str, int]


def quarantine_hard_failures(
    data: FrameLike,
    contract: DataContract | DatasetContract | RulePlan,
    *,
    dataset_type: str | None = None,
) -> Quarantine:
    """Split ``data`` into rows passing every hard rule of the contract and rows failing one.

    Every hard rule that can be evaluated row by row takes part, uniqueness included (all rows
    sharing a value fail it: which one is right is not knowable here, so deduplicate first, as
    ``cleanse`` does). Presence rules and rules on missing columns or with an expression that
    does not apply to this frame are left to validation, which reports them. Values are returned
    as they came in (not cast); the input is read once and one query computes every mask.
    """
    plan = _plan(contract, dataset_type)
    frame = to_lazy(data).collect()
    prep = prepare_frame(frame.lazy(), plan.dataset)
    masks: list[tuple[str, pl.Expr]] = []
    for spec in plan.rules:
        if Severity(spec.severity) is not Severity.HARD or spec.build is None:
            continue
        if not all(c in prep.schema for c in spec.columns):
            continue
        exprs = spec.build(prep.refs)
        if exprs.fail is None:
            continue
        if exprs.condition is not None:
            try:
                dtype = prep.frame.select(exprs.condition.alias("c")).collect_schema()["c"]
            except pl.exceptions.PolarsError:
                continue
            if not isinstance(dtype, pl.Boolean):
                continue
        masks.append((spec.rule_id, exprs.fail))
    if not masks:
        return Quarantine(
            frame, frame.clear().with_columns(pl.lit(None, pl.String).alias(QUARANTINE_REASON)), {}
        )
    reason = pl.coalesce([pl.when(m).then(pl.lit(rule_id)) for rule_id, m in masks]).alias(QUARANTINE_REASON)
    reasons = prep.frame.select(reason).collect().to_series()
    bad = reasons.is_not_null()
    counts = reasons.drop_nulls().value_counts()
    by_rule = {str(row[0]): int(row[1]) for row in counts.iter_rows()}
    # Contract order, not count order, so reports read the same run after run.
    ordered = {rule_id: by_rule[rule_id] for rule_id, _ in masks if rule_id in by_rule}
    rejected = frame.filter(bad).with_columns(reasons.filter(bad).alias(QUARANTINE_REASON))
    return Quarantine(frame.filter(~bad), rejected, ordered)


# -- table schema -------------------------------------------------------------------------------


def _constraint_notes(cons: ColumnConstraint) -> list[str]:
    notes: list[str] = []
    if cons.min_value is not None:
        notes.append(f">= {cons.min_value}")
    if cons.max_value is not None:
        notes.append(f"<= {cons.max_value}")
    if cons.allowed_values is not None:
        notes.append("one of " + ", ".join(str(v) for v in cons.allowed_values))
    if cons.regex is not None:
        notes.append(f"matches {cons.regex}")
    if cons.min_length is not None:
        notes.append(f"length >= {cons.min_length}")
    if cons.max_length is not None:
        notes.append(f"length <= {cons.max_length}")
    if notes and Severity(cons.severity) is Severity.SOFT:
        notes = [f"{n} (soft)" for n in notes]
    return notes


def _column(col: ColumnContract, keys: Sequence[str]) -> TableColumn:
    cons = col.constraints or ColumnConstraint()
    nullable = not (col.required or cons.required or cons.disallow_nulls or col.column_id in keys)
    unique = cons.unique or list(keys) == [col.column_id]
    other = _constraint_notes(cons)
    if col.format:
        other.append(f"format {col.format}")
    tags = {"dq/sensitivity": ",".join(col.sensitivity_tags)} if col.sensitivity_tags else {}
    if col.is_pii:
        tags["dq/pii"] = "true"
    return TableColumn(
        name=col.column_id,
        type=col.data_type.value,
        description=col.description,
        constraints=TableColumnConstraints(nullable=nullable, unique=unique, other=other),
        tags=tags,
    )


def column_schema(dataset: DatasetContract | DataContract, dataset_type: str | None = None) -> TableSchema:
    """The dataset contract's columns as a Dagster ``TableSchema`` (for ``dagster/column_schema``):
    declared type, description, nullability, uniqueness, value constraints, sensitivity tags;
    primary key and unique indexes as table constraints.
    """
    _, ds, _ = resolve_dataset(dataset, dataset_type)
    keys = list(ds.primary_keys)
    table_notes = [f"primary key ({', '.join(keys)})"] if keys else []
    table_notes += [
        f"unique ({', '.join(ix.columns)})" + (f" [{ix.name}]" if ix.name else "")
        for ix in ds.indexes
        if ix.unique
    ]
    return TableSchema(
        columns=[_column(c, keys) for c in ds.columns],
        constraints=TableConstraints(other=table_notes) if table_notes else None,
    )


# -- anomaly detection on history ---------------------------------------------------------------


def build_anomaly_check_specs(
    keys: Sequence[str], asset: AssetKeyLike, *, tenants: dict[str, list[str]] | None = None
) -> list[AssetCheckSpec]:
    """One non-blocking (WARN) ``AssetCheckSpec`` per followed metric key, named
    ``anomaly_check_name(key)``; ``tenants`` (key -> tenants following it) goes in the description.
    Keys come from ``dq_dagster.engine.anomaly.monitors`` of the contracts known at load time.
    """
    specs = []
    for key in dict.fromkeys(keys):
        who = (tenants or {}).get(key)
        metadata: dict[str, Any] = {ANOMALY_KEY: key}
        if who is not None:
            metadata["dq/tenants"] = ",".join(who)
        specs.append(
            AssetCheckSpec(
                anomaly_check_name(key),
                asset=asset,
                description=(
                    f"{key} within the band learned from the previous profiling runs (anomaly detection"
                    + (f"; tenants: {', '.join(who)})" if who is not None else ")")
                ),
                blocking=False,
                metadata=metadata,
            )
        )
    return specs


def _anomaly_text(check: AnomalyCheck) -> str:
    if check.observed is None:
        return "not evaluated: this run has no value for the metric"
    if not check.evaluated:
        return f"not evaluated: only {check.history_size} earlier run(s) of history"
    low = "-inf" if check.expected_low is None else f"{check.expected_low:.6g}"
    high = "+inf" if check.expected_high is None else f"{check.expected_high:.6g}"
    where = "outside" if check.anomalous else "within"
    return f"{check.observed:.6g} {where} [{low}, {high}] learned from {check.history_size} runs"


def anomaly_check_results(
    checks: Sequence[AnomalyCheck], asset: AssetKeyLike, declared: Sequence[str], *, tenant: str | None = None
) -> list[AssetCheckResult]:
    """A WARN result for every ``declared`` key: failed when the snapshot's check is anomalous.
    A key without a check (the run's contract does not follow it) or without enough history
    passes, saying so: too little history is never an alarm.
    """
    key = AssetKey.from_coercible(asset)
    by_key = {c.key: c for c in checks}
    results = []
    for metric in dict.fromkeys(declared):
        check = by_key.get(metric)
        if check is None:
            whose = f"tenant {tenant}'s contract" if tenant else "the run's contract"
            results.append(
                AssetCheckResult(
                    asset_key=key,
                    check_name=anomaly_check_name(metric),
                    passed=True,
                    severity=AssetCheckSeverity.WARN,
                    description=f"not followed by {whose}",
                    metadata={"dq/evaluated": False},
                )
            )
            continue
        meta: dict[str, Any] = {
            "dq/observed": check.observed,
            "dq/expected_low": check.expected_low,
            "dq/expected_high": check.expected_high,
            "dq/history_size": check.history_size,
            "dq/evaluated": check.evaluated,
            "dq/seasonal": check.seasonal,
            "dq/method": check.method,
        }
        results.append(
            AssetCheckResult(
                asset_key=key,
                check_name=anomaly_check_name(metric),
                passed=not check.anomalous,
                severity=AssetCheckSeverity.WARN,
                description=_anomaly_text(check),
                metadata={k: v for k, v in meta.items() if v is not None},
            )
        )
    return results
