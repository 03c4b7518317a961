"""The Dagster shell of the actions: two run status sensors (run succeeded / run failed or
cancelled) that run the action profiles after every run of the monitored jobs. The only module of
``dq_dagster.actions`` that imports Dagster.

Why run status sensors and not an op at the end of the job: an op or asset at the end of the DQ
job does not run when a step before it fails or a blocking asset check stops the run, which is
exactly when ``on_failure`` matters; it would also have to sit in every job and every asset
selection. A run status sensor sees every run of the monitored jobs, failed ones included, needs
nothing in the job graph, and keeps action latency and failures out of the DQ run itself. The
cost: actions run in the sensor daemon within its evaluation limit (hence the per-run budget), and
the daemon must be running.

A cancelled run (someone pressed Terminate, or a run monitor gave up) is treated as a failure:
``on_failure`` runs, with the reason "the Dagster run was cancelled". The data was not checked,
which is exactly what an on-call person must hear about; a cancelled run that stays silent looks
like a run that never happened.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunStatusSensorContext,
    RunStatusSensorDefinition,
)

from dq_dagster.actions.core import _MAX_ERROR, ActionSettings
from dq_dagster.actions.executor import run_actions
from dq_dagster.resources import DQStoresResource
from dq_dagster.triggers.request import DQRunRequest, default_job_definition
from dq_dagster.triggers.sensors import JobDefinitionRunConfig, with_stores_parameter
from dq_stores.errors import (
    InvalidArtifactError,
    StoreError,
)
from dq_stores.models import (
    JobDefinition,
    JobRun,
    JobRunStatus,
    JobType,
    OrchestratorInfo,
    RunContractRef,
)
from dq_stores.models.common import utcnow
from dq_stores.scope import validate_id
from dq_stores.secrets import redact
from dq_stores.stores import Stores
from dq_stores.writer import derive_job_id

__all__ = ["build_action_sensors"]


# -- the Dagster glue ---------------------------------------------------------------------------


def _request_of(run: Any, environment: str) -> DQRunRequest | None:
    """What the Dagster run was for: its ``dq/*`` tags, else a ``JobDefinitionRunConfig`` in its
    run config, else just the tenant its partition names.
    """
    request = DQRunRequest.from_tags(run.tags)
    if request is not None:
        return request
    for node in ((run.run_config or {}).get("ops") or {}).values():
        config = node.get("config") if isinstance(node, Mapping) else None
        if isinstance(config, Mapping) and {"tenant", "environment", "job_definition_id"} <= set(config):
            try:
                return JobDefinitionRunConfig(**config).to_request()
            except ValueError:
                continue  # not our config after all; keep looking
    return None


def _all_job_runs(stores: Stores, tenant: str, environment: str, dagster_run_id: str) -> list[JobRun]:
    runs: list[JobRun] = []
    cursor: str | None = None
    while True:
        page = stores.job_runs.list(
            tenant, environment, dagster_run_id=dagster_run_id, limit=500, cursor=cursor
        )
        runs.extend(page.items)
        if page.next_cursor is None:
            return runs
        cursor = page.next_cursor


def _placeholder_run(
    stores: Stores, definition: JobDefinition, dagster_run: Any, message: str | None
) -> JobRun:
    """The job run that records a DQ run which failed before writing any result."""
    job_id = derive_job_id(dagster_run.run_id, output_name="dq-run-failure")
    existing = stores.job_runs.get(definition.tenant_id, definition.environment, job_id)
    if existing is not None:
        return existing
    now = utcnow()
    job_types = definition.job_types or [JobType.VALIDATION]
    run = JobRun(
        job_id=job_id,
        tenant_id=definition.tenant_id,
        environment=definition.environment,
        job_type=job_types[0],
        status=JobRunStatus.FAILED,
        job_definition_id=definition.job_definition_id,
        contract=RunContractRef(
            contract_id=definition.data_contract.contract_id, version=definition.data_contract.version
        ),
        submitted_at=now,
        completed_at=now,
        orchestrator=OrchestratorInfo(
            run_id=dagster_run.run_id,
            job_name=dagster_run.job_name,
            partition_key=dagster_run.tags.get("dagster/partition"),
        ),
        message=redact(f"the Dagster run failed before recording a result: {message or 'no message'}")[
            :_MAX_ERROR
        ],
    )
    stores.job_runs.put(run)
    return run


RunOutcome = Literal["success", "failure", "cancelled"]


def _definition_id(
    stores: Stores, request: DQRunRequest | None, job_runs: Sequence[JobRun], tenant: str, environment: str
) -> tuple[str | None, str | None, str]:
    """(job definition id, version, why none): the run's ``dq/job_definition_id`` tag, else the one
    its job runs name, else the tenant's default definition for their dataset type (a launch by
    hand with only a partition).
    """
    if request is not None:
        return request.job_definition_id, request.job_definition_version, ""
    ids = {r.job_definition_id for r in job_runs if r.job_definition_id}
    if len(ids) == 1:
        return ids.pop(), None, ""
    if len(ids) > 1:
        return None, None, f"its job runs name several job definitions ({', '.join(sorted(ids))})"
    dataset_types = {r.dataset_type for r in job_runs if r.dataset_type}
    if len(dataset_types) != 1:
        return None, None, "no job definition tag, and its job runs name no single dataset type"
    definition, why = default_job_definition(stores, tenant, environment, dataset_types.pop())
    return (definition.job_definition_id, definition.version, "") if definition else (None, None, why)


def _handle_run(
    context: RunStatusSensorContext,
    dq: DQStoresResource,
    *,
    outcome: RunOutcome,
    environment: str,
    tenants: Callable[[], frozenset[str]] | None,
    settings: ActionSettings,
) -> str | None:
    """Run the actions of one finished Dagster run; return why none ran, or ``None``."""
    run = context.dagster_run
    failed = outcome != "success"
    try:
        request = _request_of(run, environment)
    except InvalidArtifactError as exc:
        return f"its dq/* tags are invalid ({exc})"
    tenant = request.tenant if request else run.tags.get("dagster/partition")
    if tenant is None:
        return "it names no tenant (no dq/tenant tag, no tenant partition)"
    if request is not None and request.environment != environment:
        return f"it is for environment {request.environment}, not {environment}"
    if tenants is not None and tenant not in tenants():
        return (
            f"tenant {tenant!r} is not served by this code location (reload it to serve a tenant "
            "imported since it loaded)"
        )
    try:
        validate_id(tenant, "tenant")
    except InvalidArtifactError:
        return f"partition {tenant[:40]!r} is not a tenant id"
    stores = dq.get_stores()
    try:
        job_runs = _all_job_runs(stores, tenant, environment, run.run_id)
        definition_id, version, why = _definition_id(stores, request, job_runs, tenant, environment)
        if definition_id is None:
            return why
        definition = stores.job_definitions.get(tenant, environment, definition_id, version)
        if definition is None:
            what = f"{definition_id}@{version}" if version else definition_id
            return f"job definition {what} does not exist in {tenant}/{environment}"
        if outcome == "cancelled":
            message: str | None = "the Dagster run was cancelled"
        else:
            message = getattr(context.dagster_event, "message", None) if failed else None
        if not job_runs:
            if not failed:
                return "it recorded no job run"
            job_runs = [_placeholder_run(stores, definition, run, message)]
        run_actions(
            stores,
            tenant,
            environment,
            [r.job_id for r in job_runs],
            definition,
            run_failed=failed,
            run_cancelled=outcome == "cancelled",
            run_error=message,
            dagster_run_id=run.run_id,
            dagster_job_name=run.job_name,
            input_uri=request.blob_uri if request else None,
            settings=settings,
            log=context.log,
        )
    except StoreError as exc:
        # The store is unreachable: the actions of this run are lost (the sensor cursor moves on);
        # say so loudly rather than fail the tick.
        context.log.error(f"run {run.run_id}: actions not run, the DQ store failed ({redact(str(exc))})")
    return None


_STATUS: dict[RunOutcome, DagsterRunStatus] = {
    "success": DagsterRunStatus.SUCCESS,
    "failure": DagsterRunStatus.FAILURE,
    "cancelled": DagsterRunStatus.CANCELED,
}


def build_action_sensors(
    monitored_jobs: Sequence[Any] | None,
    *,
    environment: str,
    tenants: Sequence[str] | Callable[[], Sequence[str]] | None = None,
    stores_resource_key: str = "dq_stores",
    settings: ActionSettings | None = None,
    name: str = "dq_actions",
    minimum_interval_seconds: int = 30,
    default_status: DefaultSensorStatus = DefaultSensorStatus.STOPPED,
) -> list[RunStatusSensorDefinition]:
    """Three run status sensors (``<name>_on_success``, ``<name>_on_failure``,
    ``<name>_on_cancel``) that run the action profiles after every run of ``monitored_jobs``
    (``None``: every job of the code location, launchpad materializations included; see
    the module docstring for why sensors, and why a cancelled run counts as a failure).

    The tenant, environment and job definition of a run come from its ``dq/*`` tags (set by the
    sensors of ``dq_dagster.triggers`` and by a launch with those tags), else from a
    ``JobDefinitionRunConfig`` in its run config, else the tenant partition and the job runs'
    ``job_definition_id``, else the tenant's default definition for the runs' dataset type
    (``default_job_definition``). ``tenants`` (optional; a list or a function giving it) restricts
    the tenants served. A run that failed before recording any job run gets one (status failed) so
    the failure and its action outcomes are on record. The stores come from the typed
    ``DQStoresResource`` parameter named ``stores_resource_key``.
    """
    validate_id(environment, "environment")
    served: Callable[[], frozenset[str]] | None
    if tenants is None:
        served = None
    elif callable(tenants):
        provider = tenants
        served = lambda: frozenset(validate_id(t, "tenant") for t in provider())  # noqa: E731
    else:
        fixed = frozenset(validate_id(t, "tenant") for t in tenants)
        served = lambda: fixed  # noqa: E731
    resolved = settings or ActionSettings()
    if monitored_jobs is not None and not monitored_jobs:
        raise InvalidArtifactError(
            "monitored_jobs must name at least one job (None: every job of the code location)",
            field="monitored_jobs",
        )
    watched = (
        ", ".join(getattr(j, "name", "?") for j in monitored_jobs)
        if monitored_jobs is not None
        else "every job of this code location"
    )

    def make(outcome: RunOutcome) -> RunStatusSensorDefinition:
        def evaluate(context: RunStatusSensorContext, dq: DQStoresResource) -> None:
            # Always None: a returned value (e.g. a SkipReason) would end the tick after this run,
            # leaving the other finished runs for later ticks.
            why_not = _handle_run(
                context, dq, outcome=outcome, environment=environment, tenants=served, settings=resolved
            )
            if why_not is not None:
                context.log.info(f"run {context.dagster_run.run_id}: no actions: {why_not}")

        suffix = {"success": "success", "failure": "failure", "cancelled": "cancel"}[outcome]
        return RunStatusSensorDefinition(
            name=f"{name}_on_{suffix}",
            run_status=_STATUS[outcome],
            run_status_sensor_fn=with_stores_parameter(evaluate, stores_resource_key, RunStatusSensorContext),
            minimum_interval_seconds=minimum_interval_seconds,
            description=(
                f"Runs the job definitions' action profiles after each {outcome} run of "
                f"{watched} ({environment})"
                + (" (treated as a failure: on_failure runs)." if outcome == "cancelled" else ".")
            ),
            monitored_jobs=list(monitored_jobs) if monitored_jobs is not None else None,
            default_status=default_status,
        )

    return [make("success"), make("failure"), make("cancelled")]
