"""Stored job definitions drive Dagster runs: schedules, blob events and manual launches.

Pure cores (no Dagster import): ``request`` (what a run is for, which definitions run), ``cron``
(due times on croniter, Dagster's DST rules), ``schedules`` (one tick of the schedule trigger),
``blob`` (one tick of the blob-event trigger, reading a blob). Dagster shell: ``sensors``. The
names below are re-exported lazily (PEP 562), so importing a core module costs no Dagster import.

Which definition runs: per job definition id, the highest version whose status is ``active``. A
new, higher version in ``draft`` leaves the active one running (by design: you stage a change as a
draft, then activate it); to pause a job set every active version to ``draft``, or retire it. A
definition whose contract reference does not resolve is skipped with a warning in the tick log,
never a crash, and the other definitions still run.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    **dict.fromkeys(
        [
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
        ],
        "dq_dagster.triggers.request",
    ),
    **dict.fromkeys(
        ["check_cron", "check_timezone", "due_times", "next_fire_time"], "dq_dagster.triggers.cron"
    ),
    **dict.fromkeys(["evaluate_schedules", "schedule_run_key"], "dq_dagster.triggers.schedules"),
    **dict.fromkeys(
        [
            "BLOB_EVENT_SOURCES",
            "BlobItem",
            "BlobLister",
            "BlobSource",
            "blob_run_key",
            "evaluate_blob_events",
            "read_raw_blob",
        ],
        "dq_dagster.triggers.blob",
    ),
    **dict.fromkeys(
        [
            "JobDefinitionRunConfig",
            "build_blob_event_sensor",
            "build_job_definition_sensor",
            "dq_run_request",
            "manual_run_config",
            "tenant_partition_key",
            "unserved_tenants",
            "with_stores_parameter",
        ],
        "dq_dagster.triggers.sensors",
    ),
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dq_dagster.triggers' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
