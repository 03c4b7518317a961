"""Canonical pydantic v2 models, one module per artifact family. No I/O here."""

from dq_stores.models.action_profiles import (
    ActionConfig as ActionConfig,
    ActionProfile as ActionProfile,
    ActionProfileStatus as ActionProfileStatus,
    ActionType as ActionType,
)
from dq_stores.models.common import CanonicalModel as CanonicalModel, UtcDatetime as UtcDatetime
from dq_stores.models.contracts import (
    ArtifactRef as ArtifactRef,
    ColumnConstraint as ColumnConstraint,
    ColumnContract as ColumnContract,
    DataContract as DataContract,
    DatasetContract as DatasetContract,
    DataType as DataType,
    IndexSpec as IndexSpec,
    Lifecycle as Lifecycle,
    LifecycleStatus as LifecycleStatus,
    ProfilingExpectation as ProfilingExpectation,
    QualitySLO as QualitySLO,
    RuleBinding as RuleBinding,
    RuleTemplate as RuleTemplate,
    Severity as Severity,
)
from dq_stores.models.job_definitions import (
    ActionProfileRef as ActionProfileRef,
    Checkpoint as Checkpoint,
    ContractRef as ContractRef,
    ExternalEventTrigger as ExternalEventTrigger,
    JobDefinition as JobDefinition,
    JobDefinitionStatus as JobDefinitionStatus,
    ManualTrigger as ManualTrigger,
    ScheduledTrigger as ScheduledTrigger,
    Trigger as Trigger,
    TriggerType as TriggerType,
)
from dq_stores.models.job_runs import (
    ALLOWED_TRANSITIONS as ALLOWED_TRANSITIONS,
    ActionOutcome as ActionOutcome,
    ActionOutcomeStatus as ActionOutcomeStatus,
    JobRun as JobRun,
    JobRunStatus as JobRunStatus,
    JobType as JobType,
    OrchestratorInfo as OrchestratorInfo,
    ResultRef as ResultRef,
    RunContractRef as RunContractRef,
    RunSummary as RunSummary,
)
from dq_stores.models.reports import (
    CleansingReport as CleansingReport,
    ColumnChange as ColumnChange,
    ColumnProfile as ColumnProfile,
    ExpectationResult as ExpectationResult,
    Histogram as Histogram,
    ProfilingSnapshot as ProfilingSnapshot,
    Report as Report,
    ReportStatus as ReportStatus,
    RuleResult as RuleResult,
    Transformation as Transformation,
    ValidationReport as ValidationReport,
    ValueCount as ValueCount,
)
