"""Data contracts and the dataset / column contracts inside them."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, get_args

from pydantic import Field, model_validator

from dq_stores.models.common import CanonicalModel, Id, JsonMap, JsonScalar, UtcDatetime

__all__ = [
    "DEFAULT_COLUMN_METRICS",
    "AnomalyColumnSettings",
    "AnomalyDetection",
    "ArtifactRef",
    "ColumnConstraint",
    "ColumnContract",
    "DataContract",
    "DataType",
    "DatasetContract",
    "IndexSpec",
    "Lifecycle",
    "LifecycleStatus",
    "ProfilingExpectation",
    "QualityMetric",
    "QualityRule",
    "QualitySLO",
    "RuleBinding",
    "RuleTemplate",
    "Severity",
    "ThresholdOperator",
]


class LifecycleStatus(StrEnum):
    DRAFT = "draft"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    RETIRED = "retired"


class Severity(StrEnum):
    """``hard`` rules fail a run (Dagster ERROR, blocking); ``soft`` rules warn."""

    HARD = "hard"
    SOFT = "soft"


class DataType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    DECIMAL = "decimal"
    FLOAT = "float"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"
    TIMESTAMP = "timestamp"
    JSON = "json"


class ColumnConstraint(CanonicalModel):
    """Rules on one column. Null and NaN are missing: not-null rules fail them, every value rule
    passes them (README "Rule semantics"). The engine refuses, when it compiles the contract, a
    numeric bound on a string column, any bound on a json column, min > max and a regex outside
    the dialect, naming the column.
    """

    required: bool = Field(default=False, description="The column must be present and never missing.")
    unique: bool = Field(
        default=False, description="No value occurs twice (every copy fails); missing values are ignored."
    )
    disallow_nulls: bool = Field(default=False, description="No value is missing (null or NaN).")
    min_value: JsonScalar | None = Field(
        default=None,
        description="Inclusive lower bound in the declared type (text: code-point order; "
        "a numeric bound on a string column is refused).",
    )
    max_value: JsonScalar | None = Field(
        default=None, description="Inclusive upper bound in the declared type; must not be below min_value."
    )
    regex: str | None = Field(
        default=None,
        description="Rust regex crate dialect (as polars runs it), searched anywhere in the value: "
        "anchor with ^...$; $ does not match before a trailing newline; . does not match a newline; "
        "\\d \\s \\w are Unicode classes; look-around and backreferences are refused.",
    )
    allowed_values: list[JsonScalar] | None = Field(
        default=None, description="Exact (case-sensitive) values allowed, in the declared type."
    )
    min_length: int | None = Field(default=None, ge=0, description="Minimum length in Unicode code points.")
    max_length: int | None = Field(
        default=None, ge=0, description="Maximum length in Unicode code points; not below min_length."
    )
    severity: Severity = Severity.HARD


class ProfilingExpectation(CanonicalModel):
    """A bound on a profiled metric, e.g. ``null_ratio <= 0.01``; breaching one is an anomaly."""

    metric: Literal[
        "null_ratio",
        "null_count",
        "distinct_count",
        "distinct_ratio",
        "min",
        "max",
        "mean",
        "stddev",
        "row_count",
    ]
    min_threshold: float | None = None
    max_threshold: float | None = None
    severity: Severity = Severity.SOFT


class ColumnContract(CanonicalModel):
    column_id: str = Field(min_length=1, max_length=256)
    data_type: DataType
    required: bool = False
    description: str | None = None
    format: str | None = None
    sensitivity_tags: list[str] = Field(default_factory=list)
    constraints: ColumnConstraint | None = None
    profiling_expectations: list[ProfilingExpectation] = Field(default_factory=list)
    metadata: JsonMap = Field(default_factory=dict)

    @property
    def is_pii(self) -> bool:
        """True when any sensitivity tag marks personal data (``pii``, ``gdpr:*``, ...)."""
        return any(
            t.lower() == "pii" or t.lower().startswith(("pii:", "gdpr:")) for t in self.sensitivity_tags
        )


class IndexSpec(CanonicalModel):
    name: str | None = None
    columns: list[str] = Field(min_length=1)
    unique: bool = False


class QualitySLO(CanonicalModel):
    metric: str
    target: float
    period_days: int | None = Field(default=None, ge=1)


AnomalyMetric = Literal["null_ratio", "distinct_ratio", "mean", "min", "max", "stddev"]
"""A column metric the anomaly detector can follow (``row_count`` is the table metric)."""

DEFAULT_COLUMN_METRICS: dict[str, tuple[str, ...]] = {
    "numeric": ("null_ratio", "mean"),
    "other": ("null_ratio",),
}
"""Column metrics followed when an ``anomaly_detection`` block names no ``metrics``: the null ratio
of every column, and the mean of integer / decimal / float columns (``row_count`` always)."""


class AnomalyColumnSettings(CanonicalModel):
    """Per-column overrides of a dataset's ``anomaly_detection`` block (unset: the dataset's)."""

    enabled: bool = True
    metrics: list[AnomalyMetric] | None = None
    sensitivity: float | None = Field(default=None, gt=0)
    direction: Literal["up", "down", "both"] | None = None
    min_history: int | None = Field(default=None, ge=3)
    seasonality: Literal["auto", "weekly", "none"] | None = None


class AnomalyDetection(CanonicalModel):
    """Anomaly detection on the dataset's stored history (README "Anomaly detection").

    Each followed metric of a profiling run is compared with the band learned from the previous
    runs of the same tenant and dataset: trend (Theil-Sen) + weekly profile + ``sensitivity``
    robust standard deviations (1.4826 x MAD) either side. ``metrics`` lists metric keys:
    ``row_count``, ``<column>.<metric>`` and ``rule:<rule_id>.failure_rate``; ``None`` follows the
    defaults (``row_count`` and ``DEFAULT_COLUMN_METRICS``).
    """

    enabled: bool = True
    metrics: list[str] | None = None
    sensitivity: float = Field(default=4.0, gt=0)
    """Half-width of the band in robust standard deviations (Elementary's anomaly_sensitivity);
    lower flags more."""
    direction: Literal["up", "down", "both"] = "both"
    min_history: int = Field(default=7, ge=3)
    """Runs of history needed before a metric is judged; shorter history is never an alarm."""
    max_history: int = Field(default=56, ge=3, le=500)
    """Newest runs the band is learned from (the one history query's limit)."""
    seasonality: Literal["auto", "weekly", "none"] = "auto"
    """``weekly``: a per-weekday profile once every weekday seen has 3 runs; ``auto``: that, only
    when it narrows the band; ``none``: never."""
    columns: dict[str, AnomalyColumnSettings] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _keys_are_metrics(self) -> AnomalyDetection:
        for key in self.metrics or []:
            table = key == "row_count"
            rule = key.startswith("rule:") and key.endswith(".failure_rate") and len(key) > 18
            column, _, metric = key.rpartition(".")
            if not (table or rule or (column and metric in _ANOMALY_METRICS)):
                raise ValueError(
                    f"metrics: {key!r} is not row_count, <column>.<{'|'.join(sorted(_ANOMALY_METRICS))}> "
                    "or rule:<rule_id>.failure_rate"
                )
        if self.min_history > self.max_history:
            raise ValueError("min_history must not exceed max_history")
        return self


_ANOMALY_METRICS = frozenset(get_args(AnomalyMetric))


class QualityMetric(StrEnum):
    """What a ``QualityRule`` measures (ODCS v3 ``library`` metrics, ``sql``, ``custom``, ``text``)."""

    NULL_VALUES = "null_values"
    MISSING_VALUES = "missing_values"
    INVALID_VALUES = "invalid_values"
    DUPLICATE_VALUES = "duplicate_values"
    ROW_COUNT = "row_count"
    SQL = "sql"
    CUSTOM = "custom"
    TEXT = "text"


class ThresholdOperator(StrEnum):
    """How a measured value is compared with a rule's threshold (ODCS ``mustBe...``)."""

    MUST_BE = "must_be"
    MUST_NOT_BE = "must_not_be"
    MUST_BE_GREATER_THAN = "must_be_greater_than"
    MUST_BE_GREATER_OR_EQUAL_TO = "must_be_greater_or_equal_to"
    MUST_BE_LESS_THAN = "must_be_less_than"
    MUST_BE_LESS_OR_EQUAL_TO = "must_be_less_or_equal_to"
    MUST_BE_BETWEEN = "must_be_between"
    MUST_NOT_BE_BETWEEN = "must_not_be_between"


_COLUMN_METRICS = (QualityMetric.NULL_VALUES, QualityMetric.MISSING_VALUES, QualityMetric.INVALID_VALUES)
_UNJUDGED = (QualityMetric.CUSTOM, QualityMetric.TEXT)


class QualityRule(CanonicalModel):
    """A measured metric judged against a threshold: "fewer than 5 % nulls in email", "between
    100 and 120 rows", "no duplicate (tenant_id, order_id)". Counts are of rows (``unit`` rows)
    or of rows in percent of all rows (``unit`` percent). ``custom`` rules are kept for another
    engine and reported as not evaluated; ``text`` rules are documentation, never checked.
    """

    rule_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="Stable id of the rule (its check); default <column>.<metric> or <metric>.",
    )
    metric: QualityMetric
    columns: list[str] = Field(
        default_factory=list,
        description="One column for null/missing/invalid values; one or more for duplicates; "
        "none for row_count; for sql the column {property} stands for.",
    )
    operator: ThresholdOperator | None = Field(
        default=None, description="Required except for custom and text rules."
    )
    threshold: JsonScalar | list[int | float] | None = Field(
        default=None,
        description="A number (a value for must_be / must_not_be), or [low, high] for the between operators.",
    )
    unit: Literal["rows", "percent"] = "rows"
    missing_values: list[JsonScalar | None] | None = Field(
        default=None, description="missing_values: the values counted as missing (null for null)."
    )
    valid_values: list[JsonScalar | None] | None = Field(
        default=None, description="invalid_values: the values that are valid (missing values never count)."
    )
    pattern: str | None = Field(
        default=None,
        description="invalid_values: a regex a valid value matches (searched; anchor with ^...$), "
        "Rust regex dialect; one the dialect cannot run is reported as not evaluated.",
    )
    query: str | None = Field(
        default=None,
        description="sql: a polars SQL query giving one value; {object} is the dataset, {property} the column.",
    )
    engine: str | None = Field(default=None, description="custom: the engine that runs it (soda, ...).")
    implementation: str | JsonMap | None = None
    severity: Severity = Severity.HARD
    dimension: str | None = None
    name: str | None = None
    description: str | None = None
    metadata: JsonMap = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> QualityRule:
        m = self.metric
        if m in _COLUMN_METRICS and len(self.columns) != 1:
            raise ValueError(f"columns: metric {m.value} takes exactly one column")
        if m == QualityMetric.DUPLICATE_VALUES and not self.columns:
            raise ValueError("columns: metric duplicate_values needs at least one column")
        if m == QualityMetric.ROW_COUNT and self.columns:
            raise ValueError("columns: metric row_count takes no column")
        if m == QualityMetric.MISSING_VALUES and not self.missing_values:
            raise ValueError("missing_values: metric missing_values needs the list of missing values")
        if m == QualityMetric.INVALID_VALUES and self.valid_values is None and self.pattern is None:
            raise ValueError("valid_values: metric invalid_values needs valid_values or pattern")
        if m == QualityMetric.SQL and not self.query:
            raise ValueError("query: metric sql needs a query")
        if m == QualityMetric.CUSTOM and not self.engine:
            raise ValueError("engine: metric custom needs the engine that runs it")
        if m in _UNJUDGED:
            return self
        if self.operator is None:
            raise ValueError(f"operator: metric {m.value} needs an operator and a threshold")
        between = self.operator in (ThresholdOperator.MUST_BE_BETWEEN, ThresholdOperator.MUST_NOT_BE_BETWEEN)
        if between:
            if not isinstance(self.threshold, list) or len(self.threshold) != 2:
                raise ValueError(f"threshold: operator {self.operator.value} takes [low, high]")
            if self.threshold[0] > self.threshold[1]:
                raise ValueError(f"threshold: low {self.threshold[0]} > high {self.threshold[1]}")
        elif self.threshold is None or isinstance(self.threshold, list):
            raise ValueError(f"threshold: operator {self.operator.value} takes one value")
        elif self.operator not in (ThresholdOperator.MUST_BE, ThresholdOperator.MUST_NOT_BE) and (
            isinstance(self.threshold, bool) or not isinstance(self.threshold, int | float)
        ):
            raise ValueError(f"threshold: operator {self.operator.value} takes a number")
        return self


class DatasetContract(CanonicalModel):
    dataset_contract_id: Id
    dataset_type: str = Field(min_length=1, max_length=128)
    tenant_id: Id
    environment: Id
    version: Id
    owner: str | None = None
    description: str | None = None
    classification: str | None = None
    retention_policy_id: str | None = None
    primary_keys: list[str] = Field(default_factory=list)
    indexes: list[IndexSpec] = Field(default_factory=list)
    columns: list[ColumnContract] = Field(default_factory=list)
    quality_slos: list[QualitySLO] = Field(default_factory=list)
    quality_rules: list[QualityRule] = Field(default_factory=list)
    metadata: JsonMap = Field(default_factory=dict)
    anomaly_detection: AnomalyDetection | None = None
    """Follow metrics on the stored history and warn when one leaves its band (None: off)."""

    @model_validator(mode="after")
    def _keys_are_columns(self) -> DatasetContract:
        names = {c.column_id for c in self.columns}
        if len(names) != len(self.columns):
            raise ValueError("columns: column_id values must be unique")
        missing = [k for k in self.primary_keys if names and k not in names]
        if missing:
            raise ValueError(f"primary_keys: {missing} are not columns of the dataset")
        for i, rule in enumerate(self.quality_rules):
            unknown = [c for c in rule.columns if names and c not in names]
            if unknown and rule.metric != QualityMetric.SQL:
                raise ValueError(f"quality_rules.{i}.columns: {unknown} are not columns of the dataset")
        return self

    def column(self, column_id: str) -> ColumnContract:
        for col in self.columns:
            if col.column_id == column_id:
                return col
        raise KeyError(column_id)


class RuleTemplate(CanonicalModel):
    template_id: str
    name: str | None = None
    rule_type: str
    description: str | None = None
    severity: Severity = Severity.HARD
    parameters: JsonMap = Field(default_factory=dict)


class RuleBinding(CanonicalModel):
    template_id: str
    binding_id: str | None = None
    dataset_contract_id: str | None = None
    column_id: str | None = None
    severity: Severity | None = None
    parameters: JsonMap = Field(default_factory=dict)


class ArtifactRef(CanonicalModel):
    """A reference to a schema, rule set, infrastructure or governance document elsewhere."""

    ref_id: str
    version: str | None = None
    uri: str | None = None


class Lifecycle(CanonicalModel):
    status: LifecycleStatus = LifecycleStatus.DRAFT
    created_by: str | None = None
    approved_by: str | None = None
    approved_at: UtcDatetime | None = None
    retired_at: UtcDatetime | None = None
    notes: str | None = None


class DataContract(CanonicalModel):
    contract_id: Id
    tenant_id: Id
    environment: Id
    version: Id
    name: str = Field(min_length=1, max_length=512)
    description: str | None = None
    datasets: list[DatasetContract] = Field(default_factory=list)
    rule_templates: list[RuleTemplate] = Field(default_factory=list)
    rule_bindings: list[RuleBinding] = Field(default_factory=list)
    schema_ref: ArtifactRef | None = None
    rule_set_ref: ArtifactRef | None = None
    infra_ref: ArtifactRef | None = None
    governance_ref: ArtifactRef | None = None
    metadata: JsonMap = Field(default_factory=dict)
    lifecycle: Lifecycle = Field(default_factory=Lifecycle)
    created_at: UtcDatetime | None = None
    updated_at: UtcDatetime | None = None

    @model_validator(mode="after")
    def _datasets_in_scope(self) -> DataContract:
        for i, ds in enumerate(self.datasets):
            if ds.tenant_id != self.tenant_id or ds.environment != self.environment:
                raise ValueError(
                    f"datasets.{i}: dataset contract scope {ds.tenant_id}/{ds.environment} "
                    f"differs from the contract's {self.tenant_id}/{self.environment}"
                )
        return self

    # -- generic artifact protocol used by the stores --------------------------------------
    @property
    def artifact_id(self) -> str:
        return self.contract_id

    @property
    def is_retired(self) -> bool:
        return self.lifecycle.status == LifecycleStatus.RETIRED

    @property
    def status_value(self) -> str:
        return LifecycleStatus(self.lifecycle.status).value

    @property
    def dataset_types(self) -> list[str]:
        """Dataset types of this contract, lower-cased (lookups are case-insensitive)."""
        return sorted({ds.dataset_type.lower() for ds in self.datasets})

    def dataset(self, dataset_type: str) -> DatasetContract:
        """The dataset contract of ``dataset_type`` (case-insensitive); ``KeyError`` if absent."""
        wanted = dataset_type.lower()
        for ds in self.datasets:
            if ds.dataset_type.lower() == wanted:
                return ds
        raise KeyError(dataset_type)
