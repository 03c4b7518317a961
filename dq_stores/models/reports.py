"""Report models of the three run types: validation, cleansing and profiling.

Samples of failing values are bounded (``MAX_SAMPLE``) and masked for PII columns by whoever
builds the report (the DQ engine); the model only enforces the bound.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from dq_stores.models.common import CanonicalModel, JsonMap, JsonScalar, UtcDatetime
from dq_stores.models.contracts import Severity

__all__ = [
    "MAX_SAMPLE",
    "REPORT_MODELS",
    "RESULT_EXTENSIONS",
    "AnomalyCheck",
    "AnomalyDirection",
    "CleansingReport",
    "ColumnChange",
    "ColumnProfile",
    "ExpectationResult",
    "Histogram",
    "ProfilingSnapshot",
    "Report",
    "ReportStatus",
    "RuleResult",
    "Transformation",
    "ValidationReport",
    "ValueCount",
    "result_extension",
]

MAX_SAMPLE = 20


class ReportStatus(StrEnum):
    PASSED = "passed"
    WARNING = "warning"
    FAILED = "failed"


class _ReportBase(CanonicalModel):
    tenant_id: str | None = None
    environment: str | None = None
    contract_id: str | None = None
    contract_version: str | None = None
    dataset_type: str | None = None
    started_at: UtcDatetime | None = None
    completed_at: UtcDatetime | None = None
    metadata: JsonMap = Field(default_factory=dict)


class RuleResult(CanonicalModel):
    rule_id: str
    rule_type: str
    column: str | None = None
    severity: Severity = Severity.HARD
    checked_count: int = Field(ge=0)
    failed_count: int = Field(ge=0)
    failure_rate: float = Field(ge=0.0, le=1.0)
    passed: bool
    sample: list[JsonScalar | None] = Field(default_factory=list, max_length=MAX_SAMPLE)
    sample_masked: bool = False
    description: str | None = None
    evaluated: bool = True
    """False: the engine could not run the rule (a missing column, a regex or a metric it cannot
    compute, a custom rule for another engine); such a rule never counts as passed."""
    measured_value: JsonScalar | None = None
    """What a thresholded rule measured (a count, a percentage, a row count, a SQL result)."""
    threshold: str | None = None
    """The threshold the measured value was judged against, e.g. ``< 5 percent``."""


class ValidationReport(_ReportBase):
    report_type: Literal["validation"] = "validation"
    status: ReportStatus
    row_count: int = Field(ge=0)
    rows_failed: int = Field(default=0, ge=0)
    """Rows failing at least one hard rule."""
    pass_rate: float = Field(ge=0.0, le=1.0)
    """Share of rows passing every hard rule."""
    rules: list[RuleResult] = Field(default_factory=list)

    @property
    def failed_rules(self) -> list[RuleResult]:
        return [r for r in self.rules if not r.passed]


class Transformation(CanonicalModel):
    name: str
    column: str | None = None
    rows_affected: int = Field(ge=0)
    description: str | None = None


class ColumnChange(CanonicalModel):
    column: str
    values_changed: int = Field(default=0, ge=0)
    nulls_filled: int = Field(default=0, ge=0)
    values_nulled: int = Field(default=0, ge=0)


class CleansingReport(_ReportBase):
    report_type: Literal["cleansing"] = "cleansing"
    rows_in: int = Field(ge=0)
    rows_out: int = Field(ge=0)
    rows_rejected: int = Field(ge=0)
    rejection_reasons: dict[str, int] = Field(default_factory=dict)
    transformations: list[Transformation] = Field(default_factory=list)
    column_changes: list[ColumnChange] = Field(default_factory=list)


class ValueCount(CanonicalModel):
    value: JsonScalar | None
    count: int = Field(ge=0)


class Histogram(CanonicalModel):
    edges: list[float] = Field(min_length=2)
    counts: list[int]


class ColumnProfile(CanonicalModel):
    column: str
    data_type: str | None = None
    count: int = Field(ge=0)
    null_count: int = Field(ge=0)
    null_ratio: float = Field(ge=0.0, le=1.0)
    distinct_count: int = Field(ge=0)
    min: JsonScalar | None = None
    max: JsonScalar | None = None
    mean: float | None = None
    stddev: float | None = None
    top_values: list[ValueCount] = Field(default_factory=list)
    top_values_masked: bool = False
    histogram: Histogram | None = None


class ExpectationResult(CanonicalModel):
    column: str
    metric: str
    observed: float | None
    min_threshold: float | None = None
    max_threshold: float | None = None
    severity: Severity = Severity.SOFT
    passed: bool


class AnomalyDirection(StrEnum):
    UP = "up"
    DOWN = "down"
    BOTH = "both"


class AnomalyCheck(CanonicalModel):
    """One monitored metric of one run, checked against the band learned from its own history.

    ``metric`` is a profile metric (``row_count``, ``null_ratio``, ``distinct_ratio``, ``mean``,
    ``min``, ``max``, ...) of ``column`` (None for table metrics such as ``row_count``), or
    ``failure_rate`` of the validation rule ``rule_id``. ``expected_low`` / ``expected_high`` are
    None while the history is shorter than the configured minimum (``evaluated`` is then False and
    ``anomalous`` False: too little history is never an alarm).
    """

    metric: str
    column: str | None = None
    rule_id: str | None = None
    observed: float | None
    expected_low: float | None = None
    expected_high: float | None = None
    history_size: int = Field(ge=0)
    direction: AnomalyDirection = AnomalyDirection.BOTH
    sensitivity: float | None = None
    method: str = "mad"
    seasonal: bool = False
    evaluated: bool = True
    anomalous: bool = False

    @property
    def key(self) -> str:
        """Stable id of the monitored metric: ``row_count``, ``amount.null_ratio``, ``rule:r1``."""
        if self.rule_id is not None:
            return f"rule:{self.rule_id}.{self.metric}"
        return self.metric if self.column is None else f"{self.column}.{self.metric}"


class ProfilingSnapshot(_ReportBase):
    report_type: Literal["profiling"] = "profiling"
    row_count: int = Field(ge=0)
    columns: list[ColumnProfile] = Field(default_factory=list)
    expectations: list[ExpectationResult] = Field(default_factory=list)
    anomaly_checks: list[AnomalyCheck] = Field(default_factory=list)
    """Metrics monitored for anomalies on their history (empty when none is configured)."""

    @property
    def anomalies(self) -> list[ExpectationResult]:
        return [e for e in self.expectations if not e.passed]


Report = ValidationReport | CleansingReport | ProfilingSnapshot
"""Any report a DQ run produces."""

REPORT_MODELS: dict[str, type[Report]] = {
    "validation": ValidationReport,
    "cleansing": CleansingReport,
    "profiling": ProfilingSnapshot,
}
"""Report model by ``report_type`` (a stored result's ``result_type``)."""

RESULT_EXTENSIONS: dict[str, str] = {
    "application/json": "json",
    "application/vnd.apache.parquet": "parquet",
    "text/csv": "csv",
}
"""File extension of a stored result by content type (``bin`` for any other)."""


def result_extension(content_type: str) -> str:
    """``json``, ``parquet``, ``csv`` or ``bin``: the extension a result's file gets."""
    return RESULT_EXTENSIONS.get(content_type.split(";", 1)[0].strip(), "bin")
