"""The metric time series the stores hold: the metric keys of a report (what a job run's
``summary.metrics`` records) and the read of one dataset's history.

Keys match ``AnomalyCheck.key``: ``row_count``; ``<column>.null_ratio``, ``.distinct_ratio``,
``.mean``, ``.stddev``, ``.min``, ``.max`` of a profiling snapshot (min / max only when numeric:
masked or text bounds are no series); ``rule:<rule_id>.failure_rate`` of a validation report.
Finite floats only (canonical JSON has no NaN).

What must not live here: the detector (``dq_dagster.engine.anomaly``, pure) or anything Dagster.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from dq_stores.base import JobRunStore
from dq_stores.models import (
    CleansingReport,
    JobRun,
    JobType,
    ProfilingSnapshot,
    Report,
    ValidationReport,
)

__all__ = ["COLUMN_METRICS", "MetricPoint", "metric_history", "report_metrics", "rule_key"]

COLUMN_METRICS = ("null_ratio", "distinct_ratio", "mean", "stddev", "min", "max")
"""Per-column metrics a profiling run records, in this order."""


def rule_key(rule_id: str) -> str:
    """The series key of a validation rule's failure rate."""
    return f"rule:{rule_id}.failure_rate"


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def report_metrics(report: Report) -> dict[str, float]:
    """The time-series metrics of one report, by key (empty for a cleansing report)."""
    metrics: dict[str, float] = {}
    if isinstance(report, ProfilingSnapshot):
        metrics["row_count"] = float(report.row_count)
        for col in report.columns:
            values: dict[str, object] = {
                "null_ratio": col.null_ratio,
                "distinct_ratio": col.distinct_count / col.count if col.count else None,
                "mean": col.mean,
                "stddev": col.stddev,
                "min": col.min,
                "max": col.max,
            }
            for name in COLUMN_METRICS:
                number = _number(values[name])
                if number is not None:
                    metrics[f"{col.column}.{name}"] = number
    elif isinstance(report, ValidationReport):
        metrics["row_count"] = float(report.row_count)
        for rule in report.rules:
            metrics[rule_key(rule.rule_id)] = float(rule.failure_rate)
    elif isinstance(report, CleansingReport):
        pass
    return metrics


@dataclass(frozen=True)
class MetricPoint:
    """One past run of the series: when it ran, its job id, its metrics and its Dagster run."""

    at: datetime
    job_id: str
    metrics: dict[str, float]
    dagster_run_id: str | None = None


def metric_history(
    runs: JobRunStore,
    tenant: str,
    environment: str,
    dataset_type: str,
    job_type: JobType | str = JobType.PROFILING,
    *,
    limit: int = 56,
    before: datetime | None = None,
) -> list[MetricPoint]:
    """The newest ``limit`` runs of ``job_type`` for the dataset that recorded metrics, oldest
    first: ONE list call (served by the ``(tenant, environment, dataset_type, job_type, run_time)``
    index on SQL), never one read per run. ``before`` (exclusive) leaves out the run being judged.
    """
    page = runs.list(
        tenant, environment, dataset_type=dataset_type, job_type=job_type, until=before, limit=limit
    )
    points = [_point(run) for run in page.items]
    return sorted((p for p in points if p is not None), key=lambda p: (p.at, p.job_id))


def _point(run: JobRun) -> MetricPoint | None:
    at = run.sort_time
    if at is None or run.summary is None or not run.summary.metrics:
        return None
    run_id = run.orchestrator.run_id if run.orchestrator is not None else None
    return MetricPoint(at, run.job_id, dict(run.summary.metrics), run_id)
