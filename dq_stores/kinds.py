"""The four artifact kinds and the index fields each backend keeps beside the canonical JSON.

Index fields are what list filters and "latest" lookups use (status, retired, version sort key,
dataset types, tags, action types, trigger type, run columns). They are derived from the model in
one place, here, so that every backend filters on exactly the same values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from dq_stores.models import (
    ActionProfile,
    DataContract,
    JobDefinition,
    JobRun,
    JobRunStatus,
    JobType,
    TriggerType,
)
from dq_stores.models.common import CanonicalModel
from dq_stores.versions import version_key

__all__ = [
    "ACTION_PROFILES",
    "CONTRACTS",
    "JOB_DEFINITIONS",
    "JOB_RUNS",
    "KINDS",
    "ArtifactIndex",
    "Kind",
    "RunIndex",
]

M = TypeVar("M", bound=CanonicalModel)


@dataclass(frozen=True)
class Kind(Generic[M]):
    name: str
    """Plural, snake_case; also the folder / blob-name segment of the kind."""
    model: type[M]
    id_field: str
    versioned: bool
    label: str
    """Singular, for messages: 'contract', 'job run', ..."""


CONTRACTS: Kind[DataContract] = Kind("contracts", DataContract, "contract_id", True, "contract")
JOB_DEFINITIONS: Kind[JobDefinition] = Kind(
    "job_definitions", JobDefinition, "job_definition_id", True, "job definition"
)
ACTION_PROFILES: Kind[ActionProfile] = Kind(
    "action_profiles", ActionProfile, "action_profile_id", True, "action profile"
)
JOB_RUNS: Kind[JobRun] = Kind("job_runs", JobRun, "job_id", False, "job run")
KINDS: dict[str, Kind[Any]] = {k.name: k for k in (CONTRACTS, JOB_DEFINITIONS, ACTION_PROFILES, JOB_RUNS)}


@dataclass(frozen=True)
class ArtifactIndex:
    """Index fields of a versioned artifact (contract, job definition, action profile)."""

    artifact_id: str
    version: str
    version_key: str
    name: str
    status: str
    retired: bool
    tags: list[str] = field(default_factory=list)
    dataset_types: list[str] = field(default_factory=list)
    action_types: list[str] = field(default_factory=list)
    trigger_type: str | None = None

    @classmethod
    def of(cls, artifact: DataContract | JobDefinition | ActionProfile) -> ArtifactIndex:
        common: dict[str, Any] = {
            "artifact_id": artifact.artifact_id,
            "version": artifact.version,
            "version_key": version_key(artifact.version),
            "name": artifact.name,
            "status": artifact.status_value,
            "retired": artifact.is_retired,
        }
        if isinstance(artifact, DataContract):
            return cls(**common, dataset_types=artifact.dataset_types)
        if isinstance(artifact, JobDefinition):
            return cls(
                **common,
                tags=sorted(set(artifact.tags)),
                trigger_type=TriggerType(artifact.trigger.trigger_type).value,
            )
        return cls(**common, tags=sorted(set(artifact.tags)), action_types=artifact.action_types)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class RunIndex:
    """Index fields of a job run."""

    job_id: str
    job_type: str
    status: str
    job_definition_id: str | None
    dataset_type: str | None
    contract_id: str | None
    contract_version: str | None
    dagster_run_id: str | None
    asset_key: str | None
    partition_key: str | None
    run_time: datetime | None

    @classmethod
    def of(cls, run: JobRun) -> RunIndex:
        orch = run.orchestrator
        return cls(
            job_id=run.job_id,
            job_type=JobType(run.job_type).value,
            status=JobRunStatus(run.status).value,
            job_definition_id=run.job_definition_id,
            dataset_type=run.dataset_type.lower() if run.dataset_type else None,
            contract_id=run.contract.contract_id if run.contract else None,
            contract_version=run.contract.version if run.contract else None,
            dagster_run_id=orch.run_id if orch else None,
            asset_key=orch.asset_key if orch else None,
            partition_key=orch.partition_key if orch else None,
            run_time=run.sort_time,
        )
