"""Job definitions (checkpoints): which contract a DQ job checks, when it runs, what follows."""

from __future__ import annotations

import re
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import Field, field_validator

from dq_stores.models.common import CanonicalModel, Id, JsonMap
from dq_stores.models.job_runs import JobType

__all__ = [
    "ActionProfileRef",
    "Checkpoint",
    "ContractRef",
    "ExternalEventTrigger",
    "JobDefinition",
    "JobDefinitionStatus",
    "ManualTrigger",
    "ScheduledTrigger",
    "Trigger",
    "TriggerType",
]

_CRON_FIELD = re.compile(r"[0-9*/,\-A-Za-z?LW#]+")


class JobDefinitionStatus(StrEnum):
    DRAFT = "draft"
    PENDING_APPROVAL = "pending_approval"
    ACTIVE = "active"
    RETIRED = "retired"


class TriggerType(StrEnum):
    MANUAL = "MANUAL"
    SCHEDULED = "SCHEDULED"
    EXTERNAL_EVENT = "EXTERNAL_EVENT"


class ContractRef(CanonicalModel):
    """Points at one data contract version (and optionally one dataset contract in it)."""

    contract_id: Id
    version: Id | None = None
    dataset_contract_id: Id | None = None


class ActionProfileRef(CanonicalModel):
    action_profile_id: Id
    version: Id | None = None


class ManualTrigger(CanonicalModel):
    trigger_type: Literal[TriggerType.MANUAL] = TriggerType.MANUAL
    description: str | None = None


_CRON_HORIZON_YEARS = 30
"""A real calendar pattern fires within 8 years (Feb 29); none in 30 years means never."""


@lru_cache(maxsize=1024)
def cron_problem(cron: str) -> str | None:
    """Why ``cron`` cannot schedule anything (not 5 fields, not parsable by croniter, never fires,
    e.g. ``0 0 31 2 *``), or ``None``. The one check every layer uses (model validation, the
    scheduler in ``dq_dagster.triggers.cron``).
    """
    from datetime import datetime, timedelta

    from croniter import CroniterBadCronError, CroniterBadDateError, CroniterError, croniter

    if not isinstance(cron, str) or len(cron.split()) != 5:
        return f"cron {cron!r} must have 5 fields (minute hour day-of-month month day-of-week)"
    try:
        croniter.expand(cron)
    except (CroniterBadCronError, CroniterError, ValueError) as exc:
        return f"cron {cron!r} is not a valid cron expression ({exc})"
    start = datetime(2000, 1, 1)
    try:
        first = croniter(cron, start, max_years_between_matches=_CRON_HORIZON_YEARS).get_next(datetime)
    except (CroniterBadDateError, CroniterError, ValueError):
        return f"cron {cron!r} never fires"
    if first - start > timedelta(days=366 * _CRON_HORIZON_YEARS):
        return f"cron {cron!r} never fires"
    return None


class ScheduledTrigger(CanonicalModel):
    trigger_type: Literal[TriggerType.SCHEDULED] = TriggerType.SCHEDULED
    cron: str
    timezone: str = "UTC"
    description: str | None = None

    @field_validator("cron")
    @classmethod
    def _five_fields(cls, value: str) -> str:
        fields = value.split()
        if len(fields) != 5 or not all(_CRON_FIELD.fullmatch(f) for f in fields):
            raise ValueError(f"cron {value!r} must have five fields (minute hour day month weekday)")
        problem = cron_problem(value)
        if problem is not None:
            # Refused here, at validation / import, rather than warned about at every sensor tick.
            raise ValueError(problem)
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {value!r}") from exc
        return value


class ExternalEventTrigger(CanonicalModel):
    trigger_type: Literal[TriggerType.EXTERNAL_EVENT] = TriggerType.EXTERNAL_EVENT
    event_source: str = Field(min_length=1)
    event_filter: JsonMap = Field(default_factory=dict)
    description: str | None = None


Trigger = Annotated[
    ManualTrigger | ScheduledTrigger | ExternalEventTrigger, Field(discriminator="trigger_type")
]


class JobDefinition(CanonicalModel):
    job_definition_id: Id
    name: str = Field(min_length=1, max_length=512)
    tenant_id: Id
    environment: Id
    version: Id
    description: str | None = None
    data_contract: ContractRef
    trigger: Trigger = Field(default_factory=ManualTrigger)
    job_types: list[JobType] | None = None
    """Which DQ steps the job runs; ``None`` means validation, cleansing and profiling."""
    on_success: ActionProfileRef | None = None
    on_failure: ActionProfileRef | None = None
    on_anomaly: ActionProfileRef | None = None
    severity_threshold: str | None = None
    idempotency_scope: str | None = None
    tags: list[str] = Field(default_factory=list)
    metadata: JsonMap = Field(default_factory=dict)
    status: JobDefinitionStatus = JobDefinitionStatus.DRAFT

    @property
    def artifact_id(self) -> str:
        return self.job_definition_id

    @property
    def is_retired(self) -> bool:
        return self.status == JobDefinitionStatus.RETIRED

    @property
    def status_value(self) -> str:
        return JobDefinitionStatus(self.status).value


Checkpoint = JobDefinition
"""The design note's other name for a job definition."""
