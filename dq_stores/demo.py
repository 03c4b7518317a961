"""`make demo` (for now): every artifact kind written and read back for two tenants in the
embedded SQLite store (``.dq/dq.db``, results under ``.dq/results``), printing what it did.

The Dagster issue replaces this with the real pipeline. Run: ``python -m dq_stores.demo``.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

from dq_stores.models import ActionProfile, DataContract, JobDefinition, JobRun, ValidationReport
from dq_stores.registry import DEFAULT_URL, open_stores

TENANTS = ("TNT-001", "TNT-002")


def _fixture(name: str) -> dict[str, Any]:
    path = Path(__file__).parent / "testing" / "fixtures" / name
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _retarget(doc: Any, tenant: str) -> Any:
    """The same document for another tenant (tenant_id rewritten at every level)."""
    if isinstance(doc, dict):
        return {k: (tenant if k == "tenant_id" else _retarget(v, tenant)) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_retarget(v, tenant) for v in doc]
    return doc


def main(url: str = DEFAULT_URL) -> int:
    started = time.perf_counter()
    print(f"dq-stores demo on {url}")
    with open_stores(url) as stores:
        for tenant in TENANTS:
            contract = DataContract.model_validate(
                _retarget(_fixture("data_contract.billing-contract.json"), tenant)
            )
            job_def = JobDefinition.model_validate(
                _retarget(_fixture("job_definition.billing-daily-checks.json"), tenant)
            )
            profile = ActionProfile.model_validate(
                _retarget(_fixture("action_profile.alerts-critical-v1.json"), tenant)
            )
            etags = [
                stores.contracts.put(contract),
                stores.job_definitions.put(job_def),
                stores.action_profiles.put(profile),
            ]
            run = JobRun(
                job_id=f"demo-{tenant.lower()}-validation",
                tenant_id=tenant,
                environment="prod",
                job_type="validation",
                status="succeeded",
                job_definition_id=job_def.job_definition_id,
                contract={"contract_id": contract.contract_id, "version": contract.version},
                dataset_type="billing",
                submitted_at=dt.datetime.now(dt.UTC),
            )
            existing = stores.job_runs.get(tenant, "prod", run.job_id)
            if existing is None:
                stores.job_runs.put(run)
                stores.job_runs.put_result(
                    tenant,
                    "prod",
                    run.job_id,
                    ValidationReport(status="passed", row_count=1000, pass_rate=1.0, dataset_type="billing"),
                )
            latest = stores.contracts.get_latest_for_dataset(tenant, "prod", "billing")
            assert latest is not None
            assert latest.canonical_json() == contract.canonical_json()
            defs = list(stores.job_definitions.list_by_tags(tenant, "prod"))
            profiles = list(stores.action_profiles.list_by_type(tenant, "prod", "SEND_NOTIFICATION"))
            report = stores.job_runs.get_result_model(tenant, "prod", run.job_id)
            print(
                f"  {tenant}: contract {latest.contract_id}@{latest.version} "
                f"(etag {etags[0][:8]}), {len(defs)} job definition(s), "
                f"{len(profiles)} action profile(s) with SEND_NOTIFICATION, "
                f"run {run.job_id} -> report status {report.status.value}"
            )
        print("  job runs by tenant (newest first):")
        for tenant in TENANTS:
            for job in stores.job_runs.list_by_tenant(tenant=tenant, environment="prod"):
                print(f"    {tenant}  {job.job_id:40} {job.job_type.value:11} {job.status.value}")
    print(f"done in {time.perf_counter() - started:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
