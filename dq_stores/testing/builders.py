"""Builders of valid artifacts and loaders of the canonical fixture documents, for tests.

``make_contract`` / ``make_job_definition`` / ``make_action_profile`` / ``make_run`` return small,
valid models whose interesting index fields (status, dataset types, tags, trigger and action types,
run columns) are arguments, so a test states exactly what it filters on. ``load_fixture`` returns
one of the canonical documents shipped in ``dq_stores/testing/fixtures`` as a plain dict, moved to
the scope a test asks for. Builders go through ``model_validate`` on a dict, so the models hold
exactly the fields a document would (canonical JSON writes set fields only). No I/O besides
reading the packaged fixtures; no store access.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any, Final, TypeVar

from dq_stores.models import ActionProfile, DataContract, JobDefinition, JobRun
from dq_stores.models.common import CanonicalModel

__all__ = [
    "BASE_TIME",
    "FIXTURE_FILES",
    "load_fixture",
    "make_action_profile",
    "make_contract",
    "make_job_definition",
    "make_run",
    "replace_fields",
    "run_times",
    "unique_id",
]

BASE_TIME: Final = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
"""A fixed instant tests build run times from (``BASE_TIME + timedelta(...)``)."""

FIXTURE_FILES: Final[Mapping[str, str]] = {
    "contracts": "data_contract.billing-contract.json",
    "job_definitions": "job_definition.billing-daily-checks.json",
    "action_profiles": "action_profile.alerts-critical-v1.json",
    "job_runs": "job_run.billing-validation-20240501.json",
}
"""Store kind -> canonical fixture document in ``dq_stores/testing/fixtures``."""

M = TypeVar("M", bound=CanonicalModel)


def unique_id(prefix: str = "t") -> str:
    """A fresh valid id (``prefix`` + 12 hex digits): tests isolate by unique tenants."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def _rescope(value: Any, tenant: str | None, environment: str | None) -> Any:
    # Every object holding a scope (the artifact and, for contracts, each dataset contract) moves
    # together: a contract whose datasets stay behind is refused by the model.
    if isinstance(value, dict):
        out = {k: _rescope(v, tenant, environment) for k, v in value.items()}
        if "tenant_id" in out and "environment" in out:
            if tenant is not None:
                out["tenant_id"] = tenant
            if environment is not None:
                out["environment"] = environment
        return out
    if isinstance(value, list):
        return [_rescope(v, tenant, environment) for v in value]
    return value


def load_fixture(kind: str, *, tenant: str | None = None, environment: str | None = None) -> dict[str, Any]:
    """The canonical fixture document of ``kind`` (see ``FIXTURE_FILES``) as a fresh dict, moved
    to ``tenant`` / ``environment`` when given.
    """
    try:
        name = FIXTURE_FILES[kind]
    except KeyError:
        raise KeyError(f"no fixture for {kind!r}; known: {sorted(FIXTURE_FILES)}") from None
    text = resources.files("dq_stores.testing").joinpath("fixtures", name).read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    rescoped: dict[str, Any] = _rescope(document, tenant, environment)
    return rescoped


def replace_fields(model: M, **changes: Any) -> M:
    """A validated copy of ``model`` with ``changes`` applied (top-level fields, JSON values)."""
    document = model.model_dump(mode="json", exclude_unset=True, by_alias=True)
    document.update(copy.deepcopy(changes))
    return type(model).model_validate(document)


def _with_extra(document: dict[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    document.update(copy.deepcopy(dict(fields)))
    return document


def make_contract(
    tenant: str,
    environment: str,
    contract_id: str = "contract-1",
    version: str = "1.0.0",
    *,
    name: str | None = None,
    dataset_types: Iterable[str] = ("orders",),
    status: str = "approved",
    metadata: Mapping[str, Any] | None = None,
    **fields: Any,
) -> DataContract:
    """A data contract with one small dataset contract per entry of ``dataset_types``."""
    datasets = [
        {
            "dataset_contract_id": f"{contract_id[:120]}-ds{i}",
            "dataset_type": dataset_type,
            "tenant_id": tenant,
            "environment": environment,
            "version": version,
            "primary_keys": ["id"],
            "columns": [
                {"column_id": "id", "data_type": "string", "required": True},
                {"column_id": "amount", "data_type": "decimal", "constraints": {"min_value": 0}},
            ],
        }
        for i, dataset_type in enumerate(dataset_types)
    ]
    document: dict[str, Any] = {
        "contract_id": contract_id,
        "tenant_id": tenant,
        "environment": environment,
        "version": version,
        "name": name or f"{contract_id} {version}",
        "datasets": datasets,
        "lifecycle": {"status": status},
        "metadata": dict(metadata or {}),
    }
    return DataContract.model_validate(_with_extra(document, fields))


def _trigger(trigger_type: str) -> dict[str, Any]:
    if trigger_type == "SCHEDULED":
        return {"trigger_type": "SCHEDULED", "cron": "0 6 * * *", "timezone": "Europe/Berlin"}
    if trigger_type == "EXTERNAL_EVENT":
        return {"trigger_type": "EXTERNAL_EVENT", "event_source": "azure_blob_event_grid"}
    return {"trigger_type": trigger_type}


def make_job_definition(
    tenant: str,
    environment: str,
    job_definition_id: str = "job-1",
    version: str = "1.0.0",
    *,
    name: str | None = None,
    tags: Iterable[str] = (),
    trigger_type: str = "MANUAL",
    status: str = "active",
    contract_id: str = "contract-1",
    metadata: Mapping[str, Any] | None = None,
    **fields: Any,
) -> JobDefinition:
    """A job definition checking ``contract_id`` with a trigger of ``trigger_type``."""
    document: dict[str, Any] = {
        "job_definition_id": job_definition_id,
        "name": name or f"{job_definition_id} {version}",
        "tenant_id": tenant,
        "environment": environment,
        "version": version,
        "data_contract": {"contract_id": contract_id},
        "trigger": _trigger(trigger_type),
        "tags": list(tags),
        "status": status,
        "metadata": dict(metadata or {}),
    }
    return JobDefinition.model_validate(_with_extra(document, fields))


def make_action_profile(
    tenant: str,
    environment: str,
    action_profile_id: str = "profile-1",
    version: str = "1.0.0",
    *,
    name: str | None = None,
    action_types: Iterable[str] = ("SEND_NOTIFICATION",),
    tags: Iterable[str] = (),
    status: str = "active",
    metadata: Mapping[str, Any] | None = None,
    **fields: Any,
) -> ActionProfile:
    """An action profile with one action per entry of ``action_types``."""
    document: dict[str, Any] = {
        "action_profile_id": action_profile_id,
        "name": name or f"{action_profile_id} {version}",
        "tenant_id": tenant,
        "environment": environment,
        "version": version,
        "actions": [{"action_type": t, "parameters": {"n": i}} for i, t in enumerate(action_types)],
        "tags": list(tags),
        "status": status,
        "metadata": dict(metadata or {}),
    }
    return ActionProfile.model_validate(_with_extra(document, fields))


def make_run(
    tenant: str,
    environment: str,
    job_id: str = "run-1",
    *,
    job_type: str = "validation",
    status: str = "succeeded",
    submitted_at: datetime | None = None,
    started_at: datetime | None = None,
    completed_at: datetime | None = None,
    job_definition_id: str | None = None,
    dataset_type: str | None = None,
    dagster_run_id: str | None = None,
    asset_key: str | None = None,
    partition_key: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    **fields: Any,
) -> JobRun:
    """A job run; only the given optional fields are set. Runs sort by ``submitted_at``, else
    ``started_at``, else ``completed_at``: pass one of them whenever order matters.
    """
    document: dict[str, Any] = {
        "job_id": job_id,
        "tenant_id": tenant,
        "environment": environment,
        "job_type": job_type,
        "status": status,
    }
    optional: dict[str, Any] = {
        "submitted_at": submitted_at,
        "started_at": started_at,
        "completed_at": completed_at,
        "job_definition_id": job_definition_id,
        "dataset_type": dataset_type,
    }
    document.update({k: v for k, v in optional.items() if v is not None})
    orchestrator = {
        "run_id": dagster_run_id,
        "asset_key": asset_key,
        "partition_key": partition_key,
    }
    if any(v is not None for v in orchestrator.values()):
        document["orchestrator"] = {k: v for k, v in orchestrator.items() if v is not None}
    if metadata is not None:
        document["metadata"] = dict(metadata)
    return JobRun.model_validate(_with_extra(document, fields))


def run_times(
    count: int, *, start: datetime = BASE_TIME, step: timedelta = timedelta(minutes=1)
) -> list[datetime]:
    """``count`` increasing instants from ``start``."""
    return [start + step * i for i in range(count)]
