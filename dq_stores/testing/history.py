"""A synthetic run history for the data-docs tests and benchmarks: validation, cleansing and
profiling reports of one dataset over many runs, written through ``JobRunWriter`` exactly as the
IO manager writes them (summaries, results, contract versions), with known numbers.

Deterministic: run ``i`` of a history always has the same figures (``expected_*`` tell the tests
what a page must show).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dq_stores.models import CleansingReport, ProfilingSnapshot, ValidationReport
from dq_stores.models.reports import (
    AnomalyCheck,
    ColumnProfile,
    Histogram,
    Report,
    ReportStatus,
    RuleResult,
    Transformation,
    ValueCount,
)
from dq_stores.scope import Scope
from dq_stores.scoped import ScopedJobRunStore
from dq_stores.stores import Stores
from dq_stores.writer import JobRunWriter, OutputOrigin, WrittenRun

__all__ = ["HistorySpec", "pass_rate", "row_count", "rule_failure_rate", "write_history"]

START = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
KINDS = ("validation", "cleansing", "profiling")


@dataclass(frozen=True)
class HistorySpec:
    """``runs`` job runs of ``dataset`` in ``scope``, cycling validation, cleansing, profiling
    (one "batch" of three per hour). The contract version changes at the batches in ``versions``.
    """

    scope: Scope
    dataset: str = "billing"
    runs: int = 30
    first: int = 0
    """Index of the first run (to append to an existing history)."""
    versions: Sequence[tuple[int, str]] = ((0, "1.0.0"),)
    anomaly_at: frozenset[int] = frozenset()
    """Batches whose profiling snapshot flags its row count as an anomaly."""
    contract_id: str = "billing-contract"
    job_definition_id: str | None = None


def row_count(batch: int) -> int:
    return 1000 + 10 * batch


def rule_failure_rate(batch: int) -> float:
    """Failure rate of rule ``amount_positive`` in a batch (``email_format`` is a tenth of it)."""
    return round((batch % 7) / 100, 4)


def pass_rate(batch: int) -> float:
    return round(1 - rule_failure_rate(batch), 4)


def _version(spec: HistorySpec, batch: int) -> str:
    current = spec.versions[0][1]
    for start, version in spec.versions:
        if batch >= start:
            current = version
    return current


def _report(spec: HistorySpec, i: int) -> Report:
    batch, kind = divmod(i, 3)
    rows = row_count(batch)
    rate = rule_failure_rate(batch)
    common = {
        "tenant_id": spec.scope.tenant,
        "environment": spec.scope.environment,
        "contract_id": spec.contract_id,
        "contract_version": _version(spec, batch),
        "dataset_type": spec.dataset,
        "started_at": START + timedelta(hours=batch, minutes=kind),
        "completed_at": START + timedelta(hours=batch, minutes=kind, seconds=30),
    }
    if KINDS[kind] == "validation":
        failed = round(rows * rate)
        rules = [
            RuleResult(
                rule_id="amount_positive",
                rule_type="range",
                column="amount",
                checked_count=rows,
                failed_count=failed,
                failure_rate=rate,
                passed=failed == 0,
                sample=[-1.5, -20.0] if failed else [],
            ),
            RuleResult(
                rule_id="email_format",
                rule_type="regex",
                column="email",
                severity="soft",
                checked_count=rows,
                failed_count=round(rows * rate / 10),
                failure_rate=round(rate / 10, 6),
                passed=True,
                sample=["a***@***", "b***@***"] if failed else [],
                sample_masked=True,
            ),
        ]
        return ValidationReport(
            status=ReportStatus.FAILED if failed else ReportStatus.PASSED,
            row_count=rows,
            rows_failed=failed,
            pass_rate=pass_rate(batch),
            rules=rules,
            **common,
        )
    if KINDS[kind] == "cleansing":
        rejected = batch % 5
        return CleansingReport(
            rows_in=rows,
            rows_out=rows - rejected,
            rows_rejected=rejected,
            rejection_reasons={"amount_positive": rejected} if rejected else {},
            transformations=[Transformation(name="trim", column="email", rows_affected=batch % 3)],
            **common,
        )
    null_ratio = round(0.01 * (batch % 4), 4)
    checks: list[AnomalyCheck] = []
    if batch >= 3:
        anomalous = batch in spec.anomaly_at
        observed = float(rows * 3 if anomalous else rows)
        checks.append(
            AnomalyCheck(
                metric="row_count",
                observed=observed,
                expected_low=float(rows - 50),
                expected_high=float(rows + 50),
                history_size=batch,
                anomalous=anomalous,
            )
        )
        rows = int(observed)
    return ProfilingSnapshot(
        row_count=rows,
        columns=[
            ColumnProfile(
                column="amount",
                data_type="Float64",
                count=rows,
                null_count=round(rows * null_ratio),
                null_ratio=null_ratio,
                distinct_count=rows // 2,
                min=-20.0,
                max=500.0,
                mean=120.5,
                stddev=30.25,
                histogram=Histogram(
                    edges=[-20.0, 0.0, 100.0, 200.0, 500.0], counts=[3, 400, 500, rows - 903]
                ),
            ),
            ColumnProfile(
                column="country",
                data_type="String",
                count=rows,
                null_count=0,
                null_ratio=0.0,
                distinct_count=3,
                top_values=[ValueCount(value="DE", count=600), ValueCount(value="FR", count=300)],
            ),
        ],
        anomaly_checks=checks,
        **common,
    )


def _origins(spec: HistorySpec) -> Iterator[tuple[int, OutputOrigin]]:
    for i in range(spec.first, spec.first + spec.runs):
        batch, kind = divmod(i, 3)
        yield (
            i,
            OutputOrigin(
                run_id=f"{spec.dataset}-run-{batch:06d}",
                step_key=KINDS[kind],
                asset_key=f"{spec.dataset}_{KINDS[kind]}",
                output_name="result",
            ),
        )


def write_history(stores: Stores, spec: HistorySpec) -> list[WrittenRun]:
    """Write the history's runs (with their reports) and return what was written, in order."""
    job_runs = ScopedJobRunStore(stores.job_runs, spec.scope)
    written: list[WrittenRun] = []
    for i, origin in _origins(spec):
        batch, kind = divmod(i, 3)
        when = START + timedelta(hours=batch, minutes=kind)
        writer = JobRunWriter(job_runs, clock=lambda when=when: when)  # type: ignore[misc]
        written.append(writer.write(_report(spec, i), origin, job_definition_id=spec.job_definition_id))
    return written
