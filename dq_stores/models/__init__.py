"""Canonical pydantic v2 models, one module per artifact family. No I/O here."""

from dq_stores.models.action_profiles import (
    ActionConfig as ActionConfig,
)
from dq_stores.models.action_profiles import (
    ActionProfile as ActionProfile,
)
from dq_stores.models.action_profiles import (
    ActionProfileStatus as ActionProfileStatus,
)
from dq_stores.models.action_profiles import (
    ActionType as ActionType,
)
from dq_stores.models.common import CanonicalModel as CanonicalModel
from dq_stores.models.common import UtcDatetime as UtcDatetime
from dq_stores.models.contracts import (
    DEFAULT_COLUMN_METRICS as DEFAULT_COLUMN_METRICS,
)
from dq_stores.models.contracts import (
    AnomalyColumnSettings as AnomalyColumnSettings,
)
from dq_stores.models.contracts import (
    AnomalyDetection as AnomalyDetection,
)
from dq_stores.models.contracts import (
    ArtifactRef as ArtifactRef,
)
from dq_stores.models.contracts import (
    ColumnConstraint as ColumnConstraint,
)
from dq_stores.models.contracts import (
    ColumnContract as ColumnContract,
)
from dq_stores.models.contracts import (
    DataContract as DataContract,
)
from dq_stores.models.contracts import (
    DatasetContract as DatasetContract,
)
from dq_stores.models.contracts import (
    DataType as DataType,
)
from dq_stores.models.contracts import (
    IndexSpec as IndexSpec,
)
from dq_stores.models.contracts import (
    Lifecycle as Lifecycle,
)
from dq_stores.models.contracts import (
    LifecycleStatus as LifecycleStatus,
)
from dq_stores.models.contracts import (
    ProfilingExpectation as ProfilingExpectation,
)
from dq_stores.models.contracts import (
    QualityMetric as QualityMetric,
)
from dq_stores.models.contracts import (
    QualityRule as QualityRule,
)
from dq_stores.models.contracts import (
    QualitySLO as QualitySLO,
)
from dq_stores.models.contracts import (
    RuleBinding as RuleBinding,
)
from dq_stores.models.contracts import (
    RuleTemplate as RuleTemplate,
)
from dq_stores.models.contracts import (
    Severity as Severity,
)
from dq_stores.models.contracts import (
    ThresholdOperator as ThresholdOperator,
)
from dq_stores.models.job_definitions import (
    ActionProfileRef as ActionProfileRef,
)
from dq_stores.models.job_definitions import (
    Checkpoint as Checkpoint,
)
from dq_stores.models.job_definitions import (
    ContractRef as ContractRef,
)
from dq_stores.models.job_definitions import (
    ExternalEventTrigger as ExternalEventTrigger,
)
from dq_stores.models.job_definitions import (
    JobDefinition as JobDefinition,
)
from dq_stores.models.job_definitions import (
    JobDefinitionStatus as JobDefinitionStatus,
)
from dq_stores.models.job_definitions import (
    ManualTrigger as ManualTrigger,
)
from dq_stores.models.job_definitions import (
    ScheduledTrigger as ScheduledTrigger,
)
from dq_stores.models.job_definitions import (
    Trigger as Trigger,
)
from dq_stores.models.job_definitions import (
    TriggerType as TriggerType,
)
from dq_stores.models.job_runs import (
    ALLOWED_TRANSITIONS as ALLOWED_TRANSITIONS,
)
from dq_stores.models.job_runs import (
    ActionOutcome as ActionOutcome,
)
from dq_stores.models.job_runs import (
    ActionOutcomeStatus as ActionOutcomeStatus,
)
from dq_stores.models.job_runs import (
    JobRun as JobRun,
)
from dq_stores.models.job_runs import (
    JobRunStatus as JobRunStatus,
)
from dq_stores.models.job_runs import (
    JobType as JobType,
)
from dq_stores.models.job_runs import (
    OrchestratorInfo as OrchestratorInfo,
)
from dq_stores.models.job_runs import (
    ResultRef as ResultRef,
)
from dq_stores.models.job_runs import (
    RunContractRef as RunContractRef,
)
from dq_stores.models.job_runs import (
    RunSummary as RunSummary,
)
from dq_stores.models.reports import (
    REPORT_MODELS as REPORT_MODELS,
)
from dq_stores.models.reports import (
    RESULT_EXTENSIONS as RESULT_EXTENSIONS,
)
from dq_stores.models.reports import (
    AnomalyCheck as AnomalyCheck,
)
from dq_stores.models.reports import (
    AnomalyDirection as AnomalyDirection,
)
from dq_stores.models.reports import (
    CleansingReport as CleansingReport,
)
from dq_stores.models.reports import (
    ColumnChange as ColumnChange,
)
from dq_stores.models.reports import (
    ColumnProfile as ColumnProfile,
)
from dq_stores.models.reports import (
    ExpectationResult as ExpectationResult,
)
from dq_stores.models.reports import (
    Histogram as Histogram,
)
from dq_stores.models.reports import (
    ProfilingSnapshot as ProfilingSnapshot,
)
from dq_stores.models.reports import (
    Report as Report,
)
from dq_stores.models.reports import (
    ReportStatus as ReportStatus,
)
from dq_stores.models.reports import (
    RuleResult as RuleResult,
)
from dq_stores.models.reports import (
    Transformation as Transformation,
)
from dq_stores.models.reports import (
    ValidationReport as ValidationReport,
)
from dq_stores.models.reports import (
    ValueCount as ValueCount,
)
from dq_stores.models.reports import (
    result_extension as result_extension,
)
