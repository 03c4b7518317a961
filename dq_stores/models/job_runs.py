"""Job runs of validation, cleansing and profiling, their status machine and result reference."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field, model_validator

from dq_stores.models.common import CanonicalModel, Id, JsonMap, UtcDatetime

__all__ = [
    "ALLOWED_TRANSITIONS",
    "ActionOutcome",
    "ActionOutcomeStatus",
    "JobRun",
    "JobRunStatus",
    "JobType",
    "OrchestratorInfo",
    "ResultRef",
    "RunContractRef",
    "RunSummary",
    "check_transition",
]


class JobType(StrEnum):
    VALIDATION = "validation"
    CLEANSING = "cleansing"
    PROFILING = "profiling"


class JobRunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    WARNING = "warning"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset(
    {JobRunStatus.SUCCEEDED, JobRunStatus.FAILED, JobRunStatus.WARNING, JobRunStatus.CANCELLED}
)

ALLOWED_TRANSITIONS: dict[JobRunStatus, frozenset[JobRunStatus]] = {
    # A run may be recorded late, so pending may jump straight to an outcome.
    JobRunStatus.PENDING: frozenset(JobRunStatus),
    JobRunStatus.RUNNING: frozenset(JobRunStatus) - {JobRunStatus.PENDING},
    # Terminal states are final; re-putting the same status (e.g. to add action outcomes) is fine.
    **{s: frozenset({s}) for s in _TERMINAL},
}


def check_transition(old: JobRunStatus, new: JobRunStatus) -> bool:
    return new in ALLOWED_TRANSITIONS[old]


def allowed_previous(new: JobRunStatus) -> list[JobRunStatus]:
    """Statuses from which a run may move to ``new`` (used by single-statement SQL upserts)."""
    return [old for old, nxt in ALLOWED_TRANSITIONS.items() if new in nxt]


class RunContractRef(CanonicalModel):
    contract_id: Id
    version: Id | None = None


class OrchestratorInfo(CanonicalModel):
    """Where the run came from; for Dagster: run id, asset key, partition and step."""

    system: str = "dagster"
    run_id: str | None = None
    asset_key: str | None = None
    partition_key: str | None = None
    step_key: str | None = None
    job_name: str | None = None


class RunSummary(CanonicalModel):
    row_count: int | None = Field(default=None, ge=0)
    rows_in: int | None = Field(default=None, ge=0)
    rows_out: int | None = Field(default=None, ge=0)
    rows_rejected: int | None = Field(default=None, ge=0)
    rules_total: int | None = Field(default=None, ge=0)
    rules_failed: int | None = Field(default=None, ge=0)
    pass_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    metrics: dict[str, float] = Field(default_factory=dict)


class ResultRef(CanonicalModel):
    """Where a run's result lives: inline in the metadata store, or at a URI (claim check)."""

    location: Literal["inline", "external"]
    uri: str | None = None
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=0)
    content_type: str = "application/json"
    result_type: str | None = None

    @model_validator(mode="after")
    def _uri_when_external(self) -> ResultRef:
        if self.location == "external" and not self.uri:
            raise ValueError("uri is required when location is 'external'")
        return self


class ActionOutcomeStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


class ActionOutcome(CanonicalModel):
    action_type: str
    action_profile_id: str | None = None
    status: ActionOutcomeStatus
    attempts: int = Field(default=0, ge=0)
    error: str | None = None
    started_at: UtcDatetime | None = None
    completed_at: UtcDatetime | None = None


class JobRun(CanonicalModel):
    job_id: Id
    tenant_id: Id
    environment: Id
    job_type: JobType
    status: JobRunStatus = JobRunStatus.PENDING
    job_definition_id: Id | None = None
    contract: RunContractRef | None = None
    dataset_type: str | None = Field(default=None, max_length=128)
    submitted_at: UtcDatetime | None = None
    started_at: UtcDatetime | None = None
    completed_at: UtcDatetime | None = None
    orchestrator: OrchestratorInfo | None = None
    summary: RunSummary | None = None
    result: ResultRef | None = None
    actions: list[ActionOutcome] = Field(default_factory=list)
    message: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    metadata: JsonMap = Field(default_factory=dict)

    @property
    def artifact_id(self) -> str:
        return self.job_id

    @property
    def sort_time(self) -> UtcDatetime | None:
        """The time runs are ordered by (newest first): submitted, else started, else completed."""
        return self.submitted_at or self.started_at or self.completed_at
