"""The demo code location: a tenant-partitioned billing DQ pipeline on the DQ stores.

Assets (one partition per tenant of the bundled example artifacts, TNT-001 and TNT-002)::

    raw_billing ──> billing_cleansed + billing_cleansing_report ──> billing_profile
         └────────> billing_validation

* ``raw_billing``: a billing delivery from ``dq_dagster.examples.generator`` (deterministic per
  tenant, with realistic defects); kept by Dagster's default IO manager, since raw data is not a
  DQ result.
* ``billing_cleansed`` / ``billing_cleansing_report`` (one step): the contract's cleansing
  (trim, case repair, casts, null keys and duplicates out), then every row failing a hard rule is
  quarantined and counted per rule in the cleansing report. The asset checks (one per contract
  rule; hard rules blocking ERROR, soft rules WARN) are evaluated on the frame actually stored:
  the hard ones pass because the bad rows were taken out, not because anything is waived, and
  the soft ``status_recorded`` rule fails as WARN on the rows that really lack a status.
* ``billing_profile``: profile of the cleansed data and the contract's profiling expectations.
* ``billing_validation``: the validation report of the raw delivery, so it counts every defect
  received (what the data supplier must fix), and it is produced even when a blocking check stops
  the cleansed branch.

Every DQ output goes through ``JobRunIOManager`` and becomes a job run in the DQ stores. Resource
keys (``build_resources``): ``dq_stores`` (the backend), ``contracts``, ``job_definitions``,
``action_profiles``, ``job_runs`` (tenant-scoped; allowed tenants = the partitions) and
``dq_io_manager``. Assets read the tenant's contract, job definitions and action profiles through
the tenant-scoped resources (``for_context``); nothing here passes a tenant string to a store.
Check specs are declared from the bundled contract when the code location loads; results come from
the contract the store holds at run time (matched by rule id). The stored job definitions
drive runs through the sensors of ``dq_dagster.schedules`` (a cron or status change in the store
takes effect at the next tick), and the run status sensors of ``dq_dagster.actions`` execute the
action profiles after every run of the two jobs.

Configuration: ``DQ_STORES_URL`` (metadata store; default SQLite under ``$DAGSTER_HOME/dq`` or
``.dq/``), ``DQ_STORES_RESULTS_URL`` (results location) and ``DQ_STORES_SCHEMA`` (Postgres schema)
are read through ``EnvVar`` when set, so their values never enter the run config. Azure
credentials for an ``azure-blob://`` results URL come from the Azure SDK's own environment
variables (``AZURE_STORAGE_CONNECTION_STRING`` ...), or pass ``build_definitions(stores=...)``.
"""

# No ``from __future__ import annotations`` here: Dagster reads the asset functions' annotations
# at runtime to tell resources and config from inputs, and string annotations hide them.

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetOut,
    AssetsDefinition,
    AssetSelection,
    Backoff,
    Config,
    DefaultSensorStatus,
    Definitions,
    EnvVar,
    Failure,
    Jitter,
    MetadataValue,
    Output,
    RetryPolicy,
    SensorDefinition,
    StaticPartitionsDefinition,
    asset,
    define_asset_job,
    multi_asset,
)
from pydantic import Field

from dq_dagster.actions import ActionSettings, build_action_sensors
from dq_dagster.checks import (
    Quarantine,
    build_check_specs,
    check_results,
    column_schema,
    quarantine_hard_failures,
)
from dq_dagster.engine import RulePlan, cleanse, compile_rules, profile, validate
from dq_dagster.examples.generator import generate_billing
from dq_dagster.io_manager import JobRunIOManager
from dq_dagster.resources import (
    ActionProfileStoreResource,
    ContractStoreResource,
    DQStoresResource,
    JobDefinitionStoreResource,
    JobRunStoreResource,
)
from dq_dagster.schedules import (
    ALL_JOB_TYPES,
    BlobSource,
    DQRunRequest,
    build_blob_event_sensor,
    build_job_definition_sensor,
    dq_run_request,
)
from dq_stores.errors import InvalidArtifactError, NotFoundError, ScopeViolationError
from dq_stores.models import (
    ActionProfileRef,
    CleansingReport,
    DataContract,
    JobDefinition,
    JobType,
    ProfilingSnapshot,
    ReportStatus,
    Severity,
    Transformation,
    ValidationReport,
)
from dq_stores.models.common import utcnow
from dq_stores.transfer import LoadedArtifact, load_artifacts

__all__ = [
    "ARTIFACTS_DIR",
    "DATASET_TYPE",
    "DQ_IO_MANAGER",
    "DQ_STORES",
    "ENVIRONMENT",
    "TENANTS",
    "RawBillingConfig",
    "billing_assets",
    "billing_selection",
    "build_definitions",
    "build_resources",
    "build_sensors",
    "defs",
    "example_artifacts",
    "stores_from_env",
    "tenant_partitions",
]

ARTIFACTS_DIR = Path(__file__).resolve().parent / "examples" / "artifacts"
"""The bundled example artifacts (``dq-stores import`` loads them; so does the demo)."""
DATASET_TYPE = "billing"
ENVIRONMENT = "prod"
DQ_IO_MANAGER = "dq_io_manager"
DQ_STORES = "dq_stores"
CHECKS_JOB_DEFINITION = "billing-daily-checks"
PROFILING_JOB_DEFINITION = "billing-daily-profiling"
GROUP = "billing"

# Transient failures (a database failover, a Blob timeout) are worth a retry; a missing contract
# or a broken rule is not (``_permanent_errors`` raises those as non-retryable failures).
DQ_RETRY = RetryPolicy(max_retries=2, delay=1.0, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)


def example_artifacts() -> list[LoadedArtifact]:
    """Every artifact under ``ARTIFACTS_DIR``, validated; raises if any document is invalid."""
    artifacts, problems = load_artifacts([ARTIFACTS_DIR])
    if problems:
        raise InvalidArtifactError(
            "the bundled example artifacts are invalid:\n" + "\n".join(str(p) for p in problems)
        )
    return artifacts


def _bundled() -> tuple[tuple[str, ...], DataContract, JobDefinition]:
    """Tenants, the contract checks are declared from, and the profiling job definition."""
    artifacts = [a for a in example_artifacts() if a.model.environment == ENVIRONMENT]
    tenants = tuple(sorted({a.model.tenant_id for a in artifacts}))
    first = [a.model for a in artifacts if tenants and a.model.tenant_id == tenants[0]]
    contracts = [
        m
        for m in first
        if isinstance(m, DataContract) and any(d.dataset_type == DATASET_TYPE for d in m.datasets)
    ]
    profiling = [
        m for m in first if isinstance(m, JobDefinition) and m.job_definition_id == PROFILING_JOB_DEFINITION
    ]
    if not contracts or not profiling:
        raise InvalidArtifactError(
            f"{ARTIFACTS_DIR} must hold, for {ENVIRONMENT}, a {DATASET_TYPE} contract and the "
            f"{PROFILING_JOB_DEFINITION} job definition of every tenant"
        )
    return tenants, contracts[0], profiling[0]


TENANTS, _DECLARED_CONTRACT, _PROFILING_DEFINITION = _bundled()
tenant_partitions = StaticPartitionsDefinition(list(TENANTS))
_DECLARED_PLAN = compile_rules(_DECLARED_CONTRACT, DATASET_TYPE)
_SCHEMA = column_schema(_DECLARED_CONTRACT, DATASET_TYPE)
CLEANSED_CHECKS = build_check_specs(_DECLARED_PLAN, "billing_cleansed")


# -- helpers shared by the assets ----------------------------------------------------------------


@contextmanager
def _permanent_errors(what: str) -> Iterator[None]:
    """Store errors that a retry cannot fix become a non-retryable ``Failure``."""
    try:
        yield
    except (NotFoundError, InvalidArtifactError, ScopeViolationError) as exc:
        raise Failure(description=f"{what}: {exc}", allow_retries=False) from exc


def _contract_plan(context: AssetExecutionContext, contracts: ContractStoreResource) -> RulePlan:
    """The rules of the latest billing contract of the partition's tenant."""
    with _permanent_errors(f"no usable {DATASET_TYPE} contract"):
        scoped = contracts.for_context(context)
        contract = scoped.get_latest_for_dataset(DATASET_TYPE)
        if contract is None:
            raise NotFoundError(
                f"the store has no contract for dataset type {DATASET_TYPE!r} in {scoped.scope}; load one "
                f"with `dq-stores import {ARTIFACTS_DIR}` (or run `python -m dq_dagster.demo`)"
            )
        return compile_rules(contract, DATASET_TYPE)


Outcome = Literal["success", "failure", "anomaly"]


def _planned_actions(
    context: AssetExecutionContext,
    job_definitions: JobDefinitionStoreResource,
    action_profiles: ActionProfileStoreResource,
    job_definition_id: str,
    outcome: Outcome,
) -> dict[str, Any]:
    """UI metadata naming the action profile the tenant's job definition selects for ``outcome``
    (the actions themselves are run by the actions layer, not by these assets).
    """
    meta: dict[str, Any] = {"dq/outcome": outcome}
    with _permanent_errors("reading the job definition and action profiles"):
        definition = job_definitions.for_context(context).get(job_definition_id)
        if definition is None:
            context.log.warning(f"no job definition {job_definition_id!r} for this tenant: no actions follow")
            meta["dq/action_profile"] = MetadataValue.text(f"none (no job definition {job_definition_id})")
            return meta
        ref: ActionProfileRef | None = {
            "success": definition.on_success,
            "failure": definition.on_failure,
            "anomaly": definition.on_anomaly,
        }[outcome]
        if ref is None:
            meta["dq/action_profile"] = MetadataValue.text(f"none (on_{outcome} is not set)")
            return meta
        found = action_profiles.for_context(context).get(ref.action_profile_id, ref.version)
    if found is None or found.is_retired:
        state = "retired" if found is not None else "missing"
        context.log.warning(f"action profile {ref.action_profile_id!r} (on_{outcome}) is {state}")
        meta["dq/action_profile"] = MetadataValue.text(f"{ref.action_profile_id} ({state})")
        return meta
    meta["dq/action_profile"] = MetadataValue.text(f"{found.action_profile_id}@{found.version}")
    meta["dq/actions"] = MetadataValue.text(", ".join(found.action_types) or "none")
    return meta


def _with_quarantine(report: CleansingReport, quarantine: Quarantine) -> CleansingReport:
    n = quarantine.rejected.height
    reasons = dict(report.rejection_reasons)
    for rule_id, count in quarantine.reasons.items():
        reasons[f"hard_rule:{rule_id}"] = count
    step = Transformation(
        name="quarantine_hard_rule_failures",
        rows_affected=n,
        description="rows failing a hard rule of the contract quarantined (first failing rule counted)",
    )
    return report.model_copy(
        update={
            "rows_out": quarantine.kept.height,
            "rows_rejected": report.rows_rejected + n,
            "rejection_reasons": reasons,
            "transformations": [*report.transformations, step],
            "completed_at": utcnow(),
        }
    )


def _definition_metadata(job_definition_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "dq/dataset_type": DATASET_TYPE,
        "dq/contract_id": _DECLARED_CONTRACT.contract_id,
        "dq/job_definition_id": job_definition_id,
        **extra,
    }


# -- assets ------------------------------------------------------------------------------------


class RawBillingConfig(Config):
    """How much billing data to generate for a tenant partition."""

    rows: int = Field(default=20_000, ge=0, le=10_000_000, description="Rows of the delivery.")
    seed: int = Field(
        default=20240501,
        description="Generator seed (mixed with the tenant): the same seed gives the same data and defects.",
    )


@asset(
    partitions_def=tenant_partitions,
    group_name=GROUP,
    kinds={"polars"},
    description=(
        "A daily billing delivery of the tenant: generated, deterministic per tenant and seed, with "
        "realistic defects (null and malformed ids, duplicates, bad e-mails, unknown currencies, "
        "negative amounts, net != gross - tax, ...)."
    ),
    metadata={"dagster/column_schema": _SCHEMA, "dq/dataset_type": DATASET_TYPE},
)
def raw_billing(context: AssetExecutionContext, config: RawBillingConfig) -> pl.DataFrame:
    request = dq_run_request(context)
    if request is not None and request.blob_uri is not None:
        # A run requested by the blob-event sensor reads the blob that triggered it (CSV/Parquet).
        blob = BlobSource().read(request.blob_uri, etag=request.blob_etag, try_parse_dates=True)
        context.add_output_metadata(
            {"dagster/row_count": MetadataValue.int(blob.height), "dq/input": request.blob_uri}
        )
        return blob
    frame, defects = generate_billing(config.rows, config.seed, context.partition_key)
    context.add_output_metadata(
        {
            "dagster/row_count": MetadataValue.int(frame.height),
            "dq/injected_defects": MetadataValue.json(defects.as_dict()),
        }
    )
    return frame


@multi_asset(
    name="billing_cleansing",
    ins={"raw_billing": AssetIn()},
    outs={
        "billing_cleansed": AssetOut(
            io_manager_key=DQ_IO_MANAGER,
            kinds={"polars"},
            description=(
                "Billing data cleansed under the tenant's contract: repaired values, no duplicates, "
                "rows failing a hard rule quarantined. Stored as Parquet on a cleansing job run."
            ),
            metadata=_definition_metadata(CHECKS_JOB_DEFINITION, **{"dagster/column_schema": _SCHEMA}),
        ),
        "billing_cleansing_report": AssetOut(
            io_manager_key=DQ_IO_MANAGER,
            description="What cleansing changed and rejected (by reason), as a cleansing job run.",
            metadata=_definition_metadata(CHECKS_JOB_DEFINITION),
        ),
    },
    check_specs=CLEANSED_CHECKS,
    partitions_def=tenant_partitions,
    group_name=GROUP,
    retry_policy=DQ_RETRY,
)
def billing_cleansing(
    context: AssetExecutionContext,
    raw_billing: pl.DataFrame,
    contracts: ContractStoreResource,
) -> Iterator[Output[Any] | AssetCheckResult]:
    plan = _contract_plan(context, contracts)
    cleansed = cleanse(raw_billing, plan)
    quarantine = quarantine_hard_failures(cleansed.frame, plan)
    report = _with_quarantine(cleansed.report, quarantine)
    outcome = check_results(validate(quarantine.kept, plan), CLEANSED_CHECKS)
    if outcome.undeclared:
        context.log.warning(
            f"rules without a declared asset check (reload the code location to declare them): {outcome.undeclared}"
        )
    yield Output(
        quarantine.kept,
        output_name="billing_cleansed",
        metadata={
            "dq/rows_quarantined": MetadataValue.int(quarantine.rejected.height),
            "dq/contract_version": MetadataValue.text(report.contract_version or "unknown"),
        },
    )
    yield Output(report, output_name="billing_cleansing_report")
    yield from outcome.results


def _profile_outcome(snapshot: ProfilingSnapshot) -> Outcome:
    if any(Severity(a.severity) is Severity.HARD for a in snapshot.anomalies):
        return "failure"
    return "anomaly" if snapshot.anomalies else "success"


@asset(
    partitions_def=tenant_partitions,
    group_name=GROUP,
    io_manager_key=DQ_IO_MANAGER,
    retry_policy=DQ_RETRY,
    description="Column profile of the cleansed billing data and the contract's profiling expectations.",
    metadata=_definition_metadata(PROFILING_JOB_DEFINITION),
)
def billing_profile(
    context: AssetExecutionContext,
    billing_cleansed: pl.DataFrame,
    contracts: ContractStoreResource,
    job_definitions: JobDefinitionStoreResource,
    action_profiles: ActionProfileStoreResource,
) -> ProfilingSnapshot:
    snapshot = profile(billing_cleansed, _contract_plan(context, contracts))
    outcome = _profile_outcome(snapshot)
    context.add_output_metadata(
        _planned_actions(context, job_definitions, action_profiles, PROFILING_JOB_DEFINITION, outcome)
    )
    return snapshot


_VALIDATION_OUTCOME: dict[ReportStatus, Outcome] = {
    ReportStatus.PASSED: "success",
    ReportStatus.WARNING: "anomaly",
    ReportStatus.FAILED: "failure",
}


@asset(
    partitions_def=tenant_partitions,
    group_name=GROUP,
    io_manager_key=DQ_IO_MANAGER,
    retry_policy=DQ_RETRY,
    description=(
        "Validation report of the raw delivery against the tenant's contract: every rule, its failed "
        "count and rate, masked samples of failing values."
    ),
    metadata=_definition_metadata(CHECKS_JOB_DEFINITION),
)
def billing_validation(
    context: AssetExecutionContext,
    raw_billing: pl.DataFrame,
    contracts: ContractStoreResource,
    job_definitions: JobDefinitionStoreResource,
    action_profiles: ActionProfileStoreResource,
) -> ValidationReport:
    report = validate(raw_billing, _contract_plan(context, contracts))
    outcome = _VALIDATION_OUTCOME[ReportStatus(report.status)]
    context.add_output_metadata(
        _planned_actions(context, job_definitions, action_profiles, CHECKS_JOB_DEFINITION, outcome)
    )
    return report


billing_assets: list[AssetsDefinition] = [raw_billing, billing_cleansing, billing_profile, billing_validation]

billing_pipeline_job = define_asset_job(
    "billing_dq_pipeline",
    selection=AssetSelection.groups(GROUP),
    description="Generate, cleanse, check, profile and validate one tenant's billing data.",
)
billing_profiling_job = define_asset_job(
    "billing_profiling",
    selection=AssetSelection.assets(billing_profile),
    tags={"dq/job_type": "profiling"},
    description="Profiling only: profiles the latest cleansed billing data of one tenant.",
)


# -- sensors: stored job definitions drive runs, stored action profiles run after them -------------


def billing_selection(request: DQRunRequest) -> list[AssetKey] | None:
    """The billing assets a job definition's job types need (``None``: the whole pipeline)."""
    if set(request.job_types) == set(ALL_JOB_TYPES):
        return None
    keys: set[str] = set()
    if request.runs(JobType.CLEANSING):
        keys |= {"raw_billing", "billing_cleansed", "billing_cleansing_report"}
    if request.runs(JobType.VALIDATION):
        keys |= {"raw_billing", "billing_validation"}
    if request.runs(JobType.PROFILING):
        keys.add("billing_profile")
    return [AssetKey(k) for k in sorted(keys)]


def build_sensors(clock: Callable[[], datetime] | None = None) -> list[SensorDefinition]:
    """One sensor for the SCHEDULED job definitions in the store (cron changes, pauses and
    retirements take effect at the next tick, no redeploy), one for EXTERNAL_EVENT definitions on
    Azure Blob (stopped by default: it needs ``AZURE_STORAGE_CONNECTION_STRING``), and the run
    status sensors that execute the action profiles after every DQ run.
    """
    tenants = list(TENANTS)
    timing: dict[str, Any] = {"clock": clock} if clock is not None else {}
    return [
        build_job_definition_sensor(
            billing_pipeline_job,
            tenants=tenants,
            environment=ENVIRONMENT,
            stores_resource_key=DQ_STORES,
            asset_selection_fn=billing_selection,
            default_status=DefaultSensorStatus.RUNNING,
            **timing,
        ),
        build_blob_event_sensor(
            billing_pipeline_job,
            tenants=tenants,
            environment=ENVIRONMENT,
            stores_resource_key=DQ_STORES,
            asset_selection_fn=billing_selection,
        ),
        *build_action_sensors(
            [billing_pipeline_job, billing_profiling_job],
            environment=ENVIRONMENT,
            tenants=tenants,
            stores_resource_key=DQ_STORES,
            settings=ActionSettings(dagster_url=os.environ.get("DQ_DAGSTER_URL")),
            default_status=DefaultSensorStatus.RUNNING,
        ),
    ]


# -- resources and Definitions ----------------------------------------------------------------------


def stores_from_env(environ: Mapping[str, str] | None = None) -> DQStoresResource:
    """The backend resource of this code location: ``DQ_STORES_URL`` / ``DQ_STORES_RESULTS_URL`` /
    ``DQ_STORES_SCHEMA`` through ``EnvVar`` when set (the UI then shows only their names), else the
    embedded defaults (SQLite under ``$DAGSTER_HOME/dq`` or ``.dq/``, results beside it).
    """
    env = os.environ if environ is None else environ
    fields: dict[str, Any] = {}
    for name, field in (
        ("DQ_STORES_URL", "url"),
        ("DQ_STORES_RESULTS_URL", "results_url"),
        ("DQ_STORES_SCHEMA", "schema"),
    ):
        if env.get(name):
            fields[field] = EnvVar(name)
    return DQStoresResource(**fields)


def build_resources(
    stores: DQStoresResource | None = None,
    *,
    environment: str = ENVIRONMENT,
    tenants: Sequence[str] = TENANTS,
) -> dict[str, Any]:
    """The resources the billing assets and the schedule need, bound to ``environment`` and
    serving exactly ``tenants`` (a partition naming another tenant is refused).
    """
    backend = stores if stores is not None else stores_from_env()
    binding: dict[str, Any] = {
        "backend": backend,
        "environment": environment,
        "allowed_tenants": list(tenants),
    }
    return {
        # Not needed by the assets (each store resource opens it for itself); bound so that sensors
        # working across tenants (e.g. the action sensors of dq_dagster.actions) find it.
        DQ_STORES: backend,
        "contracts": ContractStoreResource(**binding),
        "job_definitions": JobDefinitionStoreResource(**binding),
        "action_profiles": ActionProfileStoreResource(**binding),
        "job_runs": JobRunStoreResource(**binding),
        DQ_IO_MANAGER: JobRunIOManager(
            stores=backend, environment=environment, allowed_tenants=list(tenants)
        ),
    }


def build_definitions(stores: DQStoresResource | None = None) -> Definitions:
    """The code location's ``Definitions`` on ``stores`` (default: ``stores_from_env()``)."""
    return Definitions(
        assets=billing_assets,
        jobs=[billing_pipeline_job, billing_profiling_job],
        sensors=build_sensors(),
        resources=build_resources(stores),
    )


defs = build_definitions()
