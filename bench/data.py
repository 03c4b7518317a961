"""Seeded inputs: job runs, contracts, run rows for bulk loading, result bytes.

The same seed gives the same data in every run; ours and the baseline always get the very same
objects or bytes.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from dq_stores.models import DataContract, JobRun
from dq_stores.testing.builders import load_fixture
from dq_stores.versions import version_key

SEED = 20261126
T0 = datetime(2026, 1, 1, tzinfo=UTC)
ENV = "prod"


def job_run(
    tenant: str, job_id: str, *, minute: int = 0, status: str = "warning", message: str = ""
) -> JobRun:
    """A realistic job run (the canonical fixture's fields) in ``tenant``/prod."""
    doc = load_fixture("job_runs", tenant=tenant, environment=ENV)
    doc.update(job_id=job_id, status=status)
    when = T0 + timedelta(minutes=minute)
    doc["submitted_at"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    doc["started_at"] = (when + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    doc["completed_at"] = (when + timedelta(seconds=9)).strftime("%Y-%m-%dT%H:%M:%SZ")
    doc.pop("result", None)
    if message:
        doc["message"] = message
    return JobRun.model_validate(doc)


def job_runs(count: int, tenant: str, *, seed: int = SEED) -> list[JobRun]:
    """``count`` distinct runs of one tenant, shuffled run times."""
    rng = random.Random(seed)
    minutes = list(range(count))
    rng.shuffle(minutes)
    return [job_run(tenant, f"run-{i:07d}", minute=m) for i, m in enumerate(minutes)]


def contract(tenant: str, *, contract_id: str = "billing-contract", version: str = "2.1.0") -> DataContract:
    """The canonical billing contract fixture in ``tenant``/prod."""
    doc = load_fixture("contracts", tenant=tenant, environment=ENV)
    doc["contract_id"] = contract_id
    doc["version"] = version
    for ds in doc.get("datasets", []):
        ds["version"] = version
    return DataContract.model_validate(doc)


def small_contract(tenant: str, contract_id: str, version: str, dataset_type: str) -> dict[str, Any]:
    """A one-dataset contract document (plain JSON, canonical key order when dumped sorted)."""
    return {
        "contract_id": contract_id,
        "tenant_id": tenant,
        "environment": ENV,
        "version": version,
        "name": f"{contract_id} {version}",
        "datasets": [
            {
                "dataset_contract_id": f"{contract_id}-ds",
                "dataset_type": dataset_type,
                "tenant_id": tenant,
                "environment": ENV,
                "version": version,
                "primary_keys": ["id"],
                "columns": [
                    {"column_id": "id", "data_type": "string", "required": True},
                    {"column_id": "amount", "data_type": "decimal", "constraints": {"min_value": 0}},
                ],
            }
        ],
        "lifecycle": {"status": "approved"},
    }


def canonical_text(doc: dict[str, Any]) -> str:
    """Canonical JSON of a plain document (sorted keys, compact, UTF-8)."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


RUN_COLUMNS = (
    "tenant",
    "environment",
    "job_id",
    "job_type",
    "status",
    "job_definition_id",
    "dataset_type",
    "contract_id",
    "contract_version",
    "dagster_run_id",
    "asset_key",
    "partition_key",
    "run_time",
    "recorded_at",
    "updated_at",
    "revision",
    "etag",
    "content_hash",
    "document",
)
"""Columns of ``dq_job_runs``, in the order the ``run_rows`` tuples give them."""


def run_rows(count: int, tenants: int, *, start: int = 0, seed: int = SEED) -> Iterator[tuple[Any, ...]]:
    """Rows of ``dq_job_runs`` for a bulk load (setup, not measured): ``count`` runs spread
    round-robin over ``tenants`` tenants, run times one second apart, documents canonical and valid
    (the fixture's run, with its own tenant, id, time and message).
    """
    doc = load_fixture("job_runs", tenant="@TENANT@", environment=ENV)
    for name in ("result", "started_at", "completed_at"):
        doc.pop(name, None)
    doc.update(job_id="@JOB@", submitted_at="@WHEN@", message="@MESSAGE@")
    # Canonical text with placeholders: filling them in keeps it canonical (the values need no
    # escaping and the key order does not depend on them), at a fraction of a json.dumps per row.
    template = canonical_text(doc)
    rng = random.Random(seed + start)
    recorded = T0 + timedelta(days=400)
    status, definition = doc["status"], doc["job_definition_id"]
    orch = doc["orchestrator"]
    for i in range(start, start + count):
        tenant = f"t{i % tenants:03d}"
        when = T0 + timedelta(seconds=i)
        job_id = f"run-{i:08d}"
        text = (
            template.replace("@TENANT@", tenant)
            .replace("@JOB@", job_id)
            .replace("@WHEN@", when.strftime("%Y-%m-%dT%H:%M:%SZ"))
            .replace("@MESSAGE@", f"run {i}: {rng.randrange(1_000_000)} rows checked")
        )
        yield (
            tenant,
            ENV,
            job_id,
            "validation",
            status,
            definition,
            "billing",
            "billing-contract",
            "2.1.0",
            orch["run_id"],
            orch["asset_key"],
            orch["partition_key"],
            when,
            recorded,
            recorded,
            1,
            f"{rng.getrandbits(128):032x}",
            hashlib.sha256(text.encode()).hexdigest(),
            text,
        )


def contract_rows(
    tenant: str, datasets: int, versions: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows of ``dq_artifacts`` and ``dq_contract_datasets`` for ``datasets`` contracts of
    ``versions`` versions each (setup of the latest-for-dataset benchmark, not measured)."""
    artifacts: list[dict[str, Any]] = []
    links: list[dict[str, Any]] = []
    when = T0
    for d in range(datasets):
        contract_id = f"contract-{d:03d}"
        dataset_type = f"dataset-{d:03d}"
        for v in range(versions):
            version = f"1.{v}.0"
            text = canonical_text(small_contract(tenant, contract_id, version, dataset_type))
            common = {
                "tenant": tenant,
                "environment": ENV,
                "version": version,
                "version_key": version_key(version),
            }
            artifacts.append(
                {
                    **common,
                    "kind": "contracts",
                    "artifact_id": contract_id,
                    "name": f"{contract_id} {version}",
                    "status": "approved",
                    "retired": False,
                    "tags": [],
                    "action_types": [],
                    "trigger_type": None,
                    "revision": 1,
                    "etag": uuid.uuid4().hex,
                    "content_hash": hashlib.sha256(text.encode()).hexdigest(),
                    "document": text,
                    "created_at": when,
                    "updated_at": when,
                }
            )
            links.append(
                {
                    **common,
                    "contract_id": contract_id,
                    "dataset_type": dataset_type,
                    "retired": False,
                    "updated_at": when,
                }
            )
    return artifacts, links


def result_bytes(size: int, *, seed: int = SEED) -> bytes:
    """``size`` bytes of seeded, incompressible data (a result payload)."""
    return random.Random(seed).randbytes(size)
