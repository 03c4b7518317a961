"""What a DQ run is for, and which stored job definitions run: the pure core of the triggers.

* ``DQRunRequest``: tenant, environment, job definition, job types (and blob / scheduled time) of a
  run; it travels as run tags (``tags()`` / ``from_tags``), so every step, the UI and the action
  sensors see it.
* ``resolve_contract`` / ``resolve_job_definition`` / ``active_definitions``: which definitions
  run (per id, the highest ``active`` version) and the contract each names.
* ``PlannedRun`` / ``Evaluation``: what one sensor tick decided, and the cursor helpers.

No Dagster import here (``dq_dagster.triggers.sensors`` is the only Dagster-facing module of
the package).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dq_stores.errors import InvalidArtifactError, NotFoundError, StoreError
from dq_stores.models import (
    DataContract,
    DatasetContract,
    JobDefinition,
    JobDefinitionStatus,
    JobType,
    TriggerType,
)
from dq_stores.scope import Scope, validate_id
from dq_stores.secrets import redact
from dq_stores.stores import Stores
from dq_stores.versions import version_key

__all__ = [
    "ALL_JOB_TYPES",
    "TAG_BLOB_CONTAINER",
    "TAG_BLOB_ETAG",
    "TAG_BLOB_NAME",
    "TAG_BLOB_URI",
    "TAG_CONTRACT_ID",
    "TAG_CONTRACT_VERSION",
    "TAG_DATASET_CONTRACT_ID",
    "TAG_DATASET_TYPE",
    "TAG_ENVIRONMENT",
    "TAG_JOB_DEFINITION_ID",
    "TAG_JOB_DEFINITION_VERSION",
    "TAG_JOB_TYPES",
    "TAG_SCHEDULED_TIME",
    "TAG_TENANT",
    "TAG_TRIGGER",
    "DQRunRequest",
    "Evaluation",
    "PlannedRun",
    "ResolvedJobDefinition",
    "active_definitions",
    "default_job_definition",
    "definitions_per_tenant",
    "resolve_contract",
    "resolve_job_definition",
]

TAG_TENANT = "dq/tenant"
TAG_ENVIRONMENT = "dq/environment"
TAG_JOB_DEFINITION_ID = "dq/job_definition_id"
TAG_JOB_DEFINITION_VERSION = "dq/job_definition_version"
TAG_JOB_TYPES = "dq/job_types"
"""Comma-separated job types the run must perform (``validation,cleansing,profiling``)."""
TAG_TRIGGER = "dq/trigger"
TAG_SCHEDULED_TIME = "dq/scheduled_time"
TAG_CONTRACT_ID = "dq/contract_id"
TAG_CONTRACT_VERSION = "dq/contract_version"
TAG_DATASET_CONTRACT_ID = "dq/dataset_contract_id"
TAG_DATASET_TYPE = "dq/dataset_type"
TAG_BLOB_URI = "dq/blob_uri"
TAG_BLOB_ETAG = "dq/blob_etag"
TAG_BLOB_CONTAINER = "dq/blob_container"
TAG_BLOB_NAME = "dq/blob_name"

ALL_JOB_TYPES: tuple[JobType, ...] = (JobType.CLEANSING, JobType.PROFILING, JobType.VALIDATION)
"""What a definition without ``job_types`` runs."""

CURSOR_VERSION = 1


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_iso(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _state_key(tenant: str, environment: str, job_definition_id: str) -> str:
    # Ids cannot hold '/', so the key is unambiguous.
    return f"{tenant}/{environment}/{job_definition_id}"


# -- what a run is for --------------------------------------------------------------------------


@dataclass(frozen=True)
class DQRunRequest:
    """What a DQ run is for: the tenant, environment, job definition and job types (and, for a
    blob event, the blob). Travels as run tags (``tags()`` / ``from_tags``) so every op or asset
    of the run, the UI and the action sensor see it.
    """

    tenant: str
    environment: str
    job_definition_id: str
    job_definition_version: str | None = None
    job_types: tuple[JobType, ...] = ALL_JOB_TYPES
    trigger: str = TriggerType.MANUAL.value
    scheduled_time: datetime | None = None
    contract_id: str | None = None
    contract_version: str | None = None
    dataset_contract_id: str | None = None
    dataset_type: str | None = None
    blob_uri: str | None = None
    blob_etag: str | None = None
    blob_container: str | None = None
    blob_name: str | None = None

    def __post_init__(self) -> None:
        Scope(self.tenant, self.environment)
        validate_id(self.job_definition_id, "job_definition_id")
        if self.job_definition_version is not None:
            validate_id(self.job_definition_version, "job_definition_version")

    def runs(self, job_type: JobType | str) -> bool:
        """Whether this run must perform ``job_type`` (a profiling-only definition skips the rest)."""
        return JobType(job_type) in self.job_types

    def tags(self) -> dict[str, str]:
        tags = {
            TAG_TENANT: self.tenant,
            TAG_ENVIRONMENT: self.environment,
            TAG_JOB_DEFINITION_ID: self.job_definition_id,
            TAG_JOB_TYPES: ",".join(JobType(t).value for t in self.job_types),
            TAG_TRIGGER: self.trigger,
        }
        optional = {
            TAG_JOB_DEFINITION_VERSION: self.job_definition_version,
            TAG_SCHEDULED_TIME: _iso(self.scheduled_time) if self.scheduled_time else None,
            TAG_CONTRACT_ID: self.contract_id,
            TAG_CONTRACT_VERSION: self.contract_version,
            TAG_DATASET_CONTRACT_ID: self.dataset_contract_id,
            TAG_DATASET_TYPE: self.dataset_type,
            TAG_BLOB_URI: self.blob_uri,
            TAG_BLOB_ETAG: self.blob_etag,
            TAG_BLOB_CONTAINER: self.blob_container,
            TAG_BLOB_NAME: self.blob_name,
        }
        tags.update({k: v for k, v in optional.items() if v is not None})
        return tags

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> DQRunRequest | None:
        """The request a run's tags describe; ``None`` when they name no job definition.
        Raises ``InvalidArtifactError`` for tags that are present but invalid.
        """
        if TAG_JOB_DEFINITION_ID not in tags or TAG_TENANT not in tags or TAG_ENVIRONMENT not in tags:
            return None
        return cls(
            tenant=tags[TAG_TENANT],
            environment=tags[TAG_ENVIRONMENT],
            job_definition_id=tags[TAG_JOB_DEFINITION_ID],
            job_definition_version=tags.get(TAG_JOB_DEFINITION_VERSION),
            job_types=_parse_job_types(tags.get(TAG_JOB_TYPES)),
            trigger=tags.get(TAG_TRIGGER, TriggerType.MANUAL.value),
            scheduled_time=_parse_iso(tags.get(TAG_SCHEDULED_TIME)),
            contract_id=tags.get(TAG_CONTRACT_ID),
            contract_version=tags.get(TAG_CONTRACT_VERSION),
            dataset_contract_id=tags.get(TAG_DATASET_CONTRACT_ID),
            dataset_type=tags.get(TAG_DATASET_TYPE),
            blob_uri=tags.get(TAG_BLOB_URI),
            blob_etag=tags.get(TAG_BLOB_ETAG),
            blob_container=tags.get(TAG_BLOB_CONTAINER),
            blob_name=tags.get(TAG_BLOB_NAME),
        )


def _parse_job_types(value: str | None) -> tuple[JobType, ...]:
    if not value:
        return ALL_JOB_TYPES
    try:
        return tuple(sorted({JobType(part.strip()) for part in value.split(",") if part.strip()}))
    except ValueError as exc:
        raise InvalidArtifactError(
            f"tag {TAG_JOB_TYPES} {value!r} names an unknown job type", field=TAG_JOB_TYPES
        ) from exc


def _job_types(definition: JobDefinition) -> tuple[JobType, ...]:
    if not definition.job_types:
        return ALL_JOB_TYPES
    return tuple(sorted({JobType(t) for t in definition.job_types}))


# -- resolving definitions ----------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedJobDefinition:
    """A job definition with the contract (and dataset contract) it references, all found."""

    definition: JobDefinition
    contract: DataContract
    dataset: DatasetContract | None

    @property
    def job_types(self) -> tuple[JobType, ...]:
        return _job_types(self.definition)

    def request(self, trigger: str | None = None, **fields: Any) -> DQRunRequest:
        """The ``DQRunRequest`` of a run of this definition (``fields``: blob or scheduled time)."""
        d = self.definition
        return DQRunRequest(
            tenant=d.tenant_id,
            environment=d.environment,
            job_definition_id=d.job_definition_id,
            job_definition_version=d.version,
            job_types=self.job_types,
            trigger=trigger or TriggerType(d.trigger.trigger_type).value,
            contract_id=self.contract.contract_id,
            contract_version=self.contract.version,
            dataset_contract_id=self.dataset.dataset_contract_id if self.dataset else None,
            dataset_type=self.dataset.dataset_type if self.dataset else None,
            **fields,
        )


def resolve_contract(stores: Stores, definition: JobDefinition) -> ResolvedJobDefinition:
    """The contract (pinned version, else the latest) and dataset contract ``definition`` names.

    Raises ``NotFoundError`` with a message naming the definition and the missing reference.
    """
    ref = definition.data_contract
    what = f"job definition {definition.job_definition_id}@{definition.version}"
    scope = f"{definition.tenant_id}/{definition.environment}"
    contract = stores.contracts.get(
        definition.tenant_id, definition.environment, ref.contract_id, ref.version
    )
    if contract is None:
        pinned = f"@{ref.version}" if ref.version else " (latest)"
        raise NotFoundError(f"{what}: contract {ref.contract_id}{pinned} does not exist in {scope}")
    if contract.is_retired:
        raise NotFoundError(f"{what}: contract {ref.contract_id}@{contract.version} is retired in {scope}")
    dataset: DatasetContract | None = None
    if ref.dataset_contract_id is not None:
        dataset = next(
            (ds for ds in contract.datasets if ds.dataset_contract_id == ref.dataset_contract_id), None
        )
        if dataset is None:
            raise NotFoundError(
                f"{what}: contract {ref.contract_id}@{contract.version} has no dataset contract "
                f"{ref.dataset_contract_id}"
            )
    elif len(contract.datasets) == 1:
        dataset = contract.datasets[0]
    return ResolvedJobDefinition(definition, contract, dataset)


def resolve_job_definition(
    stores: Stores,
    tenant: str,
    environment: str,
    job_definition_id: str,
    version: str | None = None,
) -> ResolvedJobDefinition:
    """The job definition (``version``, else the latest) with its contract; ``NotFoundError`` when
    the definition or its contract is missing, or the definition is retired.
    """
    definition = stores.job_definitions.get(tenant, environment, job_definition_id, version)
    if definition is None:
        pinned = f"@{version}" if version else " (latest)"
        raise NotFoundError(
            f"job definition {job_definition_id}{pinned} does not exist in {tenant}/{environment}"
        )
    if definition.is_retired:
        raise NotFoundError(
            f"job definition {job_definition_id}@{definition.version} is retired in {tenant}/{environment}"
        )
    return resolve_contract(stores, definition)


def definitions_per_tenant(
    stores: Stores,
    tenants: Iterable[str],
    environment: str,
    trigger_type: TriggerType,
    *,
    old_cursor: Mapping[str, Any],
    new_cursor: dict[str, Any],
    warnings: list[str],
) -> Iterator[tuple[str, list[JobDefinition]]]:
    """``(tenant, active definitions with trigger_type)`` for each tenant whose definitions can be
    read. For one that cannot, a warning, and its entries of ``old_cursor`` (keys starting with
    ``<tenant>/<environment>/``) are kept in ``new_cursor``: its definitions resume where they
    were at the next tick.
    """
    for tenant in tenants:
        try:
            definitions = active_definitions(stores, tenant, environment, trigger_type)
        except StoreError as exc:
            warnings.append(
                f"tenant {tenant}/{environment}: cannot read job definitions ({redact(str(exc))})"
            )
            prefix = f"{tenant}/{environment}/"
            new_cursor.update({k: v for k, v in old_cursor.items() if k.startswith(prefix)})
            continue
        yield tenant, definitions


def active_definitions(
    stores: Stores, tenant: str, environment: str, trigger_type: TriggerType | None = None
) -> list[JobDefinition]:
    """Per job definition id, the highest version whose status is ``active`` (optionally only
    those whose trigger is ``trigger_type``), ordered by id.
    """
    best: dict[str, JobDefinition] = {}
    for definition in stores.job_definitions.iter_all(
        tenant, environment, status=JobDefinitionStatus.ACTIVE.value
    ):
        current = best.get(definition.job_definition_id)
        if current is None or version_key(definition.version) > version_key(current.version):
            best[definition.job_definition_id] = definition
    chosen = [best[k] for k in sorted(best)]
    if trigger_type is None:
        return chosen
    return [d for d in chosen if d.trigger.trigger_type == trigger_type]


# -- the outcome of one evaluation --------------------------------------------------------------


@dataclass(frozen=True)
class PlannedRun:
    """One run a sensor asks for: its run key (the same due time or blob always gives the same
    key, so Dagster never launches it twice) and what it is for.
    """

    run_key: str
    request: DQRunRequest


@dataclass
class Evaluation:
    """What one tick decided: runs to request, the new cursor, and messages for the tick log."""

    runs: list[PlannedRun]
    cursor: str
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _load_cursor(cursor: str | None, warnings: list[str]) -> dict[str, Any]:
    if not cursor:
        return {}
    try:
        data = json.loads(cursor)
    except ValueError:
        data = None
    if (
        not isinstance(data, dict)
        or data.get("v") != CURSOR_VERSION
        or not isinstance(data.get("defs"), dict)
    ):
        warnings.append(
            "the sensor cursor is not one this sensor wrote; starting afresh from now (no backfill)"
        )
        return {}
    defs: dict[str, Any] = data["defs"]
    return defs


def _dump_cursor(defs: Mapping[str, Any]) -> str:
    return json.dumps(
        {"v": CURSOR_VERSION, "defs": dict(sorted(defs.items()))}, separators=(",", ":"), sort_keys=True
    )


def default_job_definition(
    stores: Stores, tenant: str, environment: str, dataset_type: str
) -> tuple[JobDefinition | None, str]:
    """The job definition a run launched by hand (a partition, no ``dq/job_definition_id`` tag)
    serves: among the tenant's active definitions whose contract holds ``dataset_type``, the one
    MANUAL definition, else the only definition. Returns (definition or None, why none).
    """
    candidates: list[JobDefinition] = []
    for definition in active_definitions(stores, tenant, environment):
        try:
            resolved = resolve_contract(stores, definition)
        except NotFoundError:
            continue
        types = {d.dataset_type.lower() for d in resolved.contract.datasets}
        if resolved.dataset is not None:
            types = {resolved.dataset.dataset_type.lower()}
        if dataset_type.lower() in types:
            candidates.append(definition)
    manual = [d for d in candidates if d.trigger.trigger_type == TriggerType.MANUAL]
    if len(manual) == 1:
        return manual[0], ""
    if len(candidates) == 1:
        return candidates[0], ""
    if not candidates:
        return None, f"{tenant}/{environment} has no active job definition for dataset type {dataset_type}"
    ids = ", ".join(d.job_definition_id for d in candidates)
    return None, (
        f"{tenant}/{environment} has several active job definitions for {dataset_type} ({ids}): "
        f"launch with the tag {TAG_JOB_DEFINITION_ID}=<id> to choose one"
    )
