"""The Dagster shells of the triggers: the sensors that turn stored job definitions into runs, and
the run config of a manual run. The only module of ``dq_dagster.triggers`` that imports Dagster.

* ``build_job_definition_sensor``: ONE sensor for every ``SCHEDULED`` job definition of the served
  tenants (``evaluate_schedules`` decides; a cron, status or version change takes effect at the
  next tick).
* ``build_blob_event_sensor``: the same for Azure Blob ``EXTERNAL_EVENT`` definitions.
* ``JobDefinitionRunConfig`` / ``manual_run_config`` / ``dq_run_request``: a ``MANUAL`` run.

Sensors take the ``DQStoresResource`` as a typed resource parameter (named by
``stores_resource_key``). Tenants that hold job definitions in the environment but are not served
by the code location (e.g. imported after it loaded) are named in the tick log, so a missing
reload is visible instead of silent.
"""

# No ``from __future__ import annotations``: Dagster reads ``JobDefinitionRunConfig``'s and the
# sensor functions' annotations at runtime.

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from dagster import (
    AssetKey,
    Config,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)
from pydantic import Field

from dq_dagster.discovery import tenants_in
from dq_dagster.resources import DQStoresResource
from dq_dagster.triggers.blob import (
    _DEFAULT_LOOKBACK,
    BlobItem,
    BlobSource,
    _list_with,
    evaluate_blob_events,
)
from dq_dagster.triggers.request import (
    DQRunRequest,
    Evaluation,
    ResolvedJobDefinition,
    _utcnow,
    active_definitions,
    resolve_job_definition,
)
from dq_dagster.triggers.schedules import evaluate_schedules
from dq_stores.errors import InvalidArtifactError, StoreError
from dq_stores.models import TriggerType
from dq_stores.scope import validate_id
from dq_stores.secrets import redact
from dq_stores.stores import Stores

__all__ = [
    "JobDefinitionRunConfig",
    "build_blob_event_sensor",
    "build_job_definition_sensor",
    "dq_run_request",
    "manual_run_config",
    "tenant_partition_key",
    "unserved_tenants",
    "with_stores_parameter",
]

TenantsArg = Sequence[str] | Callable[[], Sequence[str]]
"""Served tenants: a list, or a function giving them (asked at every tick)."""


class JobDefinitionRunConfig(Config):
    """Run config of a ``MANUAL`` run: which stored job definition to run, for which tenant.

    Give it as an op/asset ``config`` parameter; ``dq_run_request(context, config)`` turns it into
    the run's ``DQRunRequest`` and ``resolve(stores)`` finds the definition and its contract.
    """

    tenant: str = Field(description="The tenant whose job definition runs.")
    environment: str = Field(description="The environment (e.g. dev, prod) of the job definition.")
    job_definition_id: str = Field(description="The stored job definition to run.")
    version: str | None = Field(
        default=None, description="A version of the job definition; default: the latest non-retired one."
    )
    blob_uri: str | None = Field(
        default=None, description="A blob (http(s) URI) to read as the raw input instead of the usual source."
    )

    def resolve(self, stores: Stores) -> ResolvedJobDefinition:
        """The definition and its contract; ``NotFoundError`` (with the reason) when they do not resolve."""
        return resolve_job_definition(
            stores, self.tenant, self.environment, self.job_definition_id, self.version
        )

    def to_request(self, stores: Stores | None = None) -> DQRunRequest:
        """The run's ``DQRunRequest``; with ``stores``, completed from the stored definition
        (version, job types, contract), which must resolve.
        """
        if stores is not None:
            return self.resolve(stores).request(TriggerType.MANUAL.value, blob_uri=self.blob_uri)
        return DQRunRequest(
            tenant=self.tenant,
            environment=self.environment,
            job_definition_id=self.job_definition_id,
            job_definition_version=self.version,
            blob_uri=self.blob_uri,
        )


def manual_run_config(
    node_name: str, tenant: str, environment: str, job_definition_id: str, version: str | None = None
) -> dict[str, Any]:
    """The run config that hands ``JobDefinitionRunConfig`` to the op/asset ``node_name``."""
    config: dict[str, Any] = {
        "tenant": tenant,
        "environment": environment,
        "job_definition_id": job_definition_id,
    }
    if version is not None:
        config["version"] = version
    return {"ops": {node_name: {"config": config}}}


def dq_run_request(context: Any, config: JobDefinitionRunConfig | None = None) -> DQRunRequest | None:
    """What the current run is for: ``config`` when given (a manual run), else the run's tags (set
    by the sensors of this module); ``None`` when neither names a job definition.
    """
    if config is not None:
        return config.to_request()
    run = getattr(context, "run", None) or getattr(context, "dagster_run", None)
    tags: Mapping[str, str] = getattr(run, "tags", None) or {}
    return DQRunRequest.from_tags(tags)


# -- the Dagster sensors ------------------------------------------------------------------------


def with_stores_parameter(
    fn: Callable[[Any, DQStoresResource], Any], key: str, context_type: type
) -> Callable[..., Any]:
    """``fn(context, stores)`` as a function whose signature declares the stores resource as a
    typed parameter named ``key`` (Dagster binds resources to parameters by name and type).
    """
    validate_id(key, "stores_resource_key")
    if not key.isidentifier():
        raise InvalidArtifactError(
            f"stores_resource_key {key!r} must be a Python identifier", field="stores_resource_key"
        )

    def wrapper(context: Any, **resources: Any) -> Any:
        return fn(context, resources[key])

    wrapper.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("context", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=context_type),
            inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, annotation=DQStoresResource),
        ]
    )
    wrapper.__annotations__ = {"context": context_type, key: DQStoresResource}
    wrapper.__name__ = getattr(fn, "__name__", "dq_sensor")
    return wrapper


def tenant_partition_key(request: DQRunRequest) -> str | None:
    """The default partition of a requested run: the tenant (a job partitioned by tenant)."""
    return request.tenant


def _check_tenants(tenants: Sequence[str], environment: str) -> tuple[str, ...]:
    if isinstance(tenants, str):
        raise InvalidArtifactError("tenants must be a list of tenant ids, not one string", field="tenants")
    checked = tuple(dict.fromkeys(validate_id(t, "tenant") for t in tenants))
    validate_id(environment, "environment")
    return checked


def _served(tenants: TenantsArg, environment: str) -> Callable[[], tuple[str, ...]]:
    if callable(tenants):
        provider = tenants
        return lambda: _check_tenants(list(provider()), environment)
    fixed = _check_tenants(tenants, environment)
    if not fixed:
        raise InvalidArtifactError("tenants must name at least one tenant", field="tenants")
    return lambda: fixed


def unserved_tenants(
    stores: Stores, served: Iterable[str], environment: str, trigger_type: TriggerType
) -> list[str]:
    """Tenants of ``environment`` with an active job definition of ``trigger_type`` that are not
    in ``served``; ``[]`` when the store cannot list its tenants.
    """
    known = set(served)
    try:
        others = [t for t in tenants_in(stores, environment) if t not in known]
    except (StoreError, InvalidArtifactError):
        return []
    return [t for t in others if active_definitions(stores, t, environment, trigger_type)]


def _note_unserved(
    evaluation: Evaluation, stores: Stores, served: Sequence[str], environment: str, trigger: TriggerType
) -> None:
    try:
        missing = unserved_tenants(stores, served, environment, trigger)
    except StoreError as exc:
        evaluation.warnings.append(f"cannot look for unserved tenants ({redact(str(exc))})")
        return
    for tenant in missing:
        evaluation.warnings.append(
            f"tenant {tenant}/{environment} has active {trigger.value} job definitions but is not "
            "served by this code location (no partition for it): reload the code location to serve it"
        )


JobNameFn = Callable[[DQRunRequest], str | None]
"""Which of a sensor's jobs runs a request (``None``: none serves it; the tick log says so)."""


def _run_requests(
    evaluation: Evaluation,
    partition_key_fn: Callable[[DQRunRequest], str | None] | None,
    run_config_fn: Callable[[DQRunRequest], Mapping[str, Any]] | None,
    asset_selection_fn: Callable[[DQRunRequest], Sequence[AssetKey] | None] | None,
    job_name_fn: JobNameFn | None = None,
) -> list[RunRequest]:
    requests = []
    for planned in evaluation.runs:
        r = planned.request
        job_name: str | None = None
        if job_name_fn is not None:
            job_name = job_name_fn(r)
            if job_name is None:
                evaluation.warnings.append(
                    f"job definition {r.tenant}/{r.environment}/{r.job_definition_id}: no job of this code "
                    f"location serves dataset type {r.dataset_type or '(not named by the contract)'}; skipped"
                )
                continue
        requests.append(
            RunRequest(
                run_key=planned.run_key,
                job_name=job_name,
                run_config=dict(run_config_fn(r)) if run_config_fn else None,
                tags=r.tags(),
                partition_key=partition_key_fn(r) if partition_key_fn else None,
                asset_selection=_selection(asset_selection_fn, r),
            )
        )
    return requests


def _selection(
    asset_selection_fn: Callable[[DQRunRequest], Sequence[AssetKey] | None] | None, request: DQRunRequest
) -> list[AssetKey] | None:
    if asset_selection_fn is None:
        return None
    keys = asset_selection_fn(request)
    return list(keys) if keys else None


def _report(
    context: SensorEvaluationContext, evaluation: Evaluation, requests: list[RunRequest]
) -> SensorResult:
    for note in evaluation.notes:
        context.log.info(note)
    for warning in evaluation.warnings:
        context.log.warning(warning)
    if requests:
        return SensorResult(run_requests=requests, cursor=evaluation.cursor)
    reason = "; ".join(evaluation.warnings[:5]) if evaluation.warnings else "nothing came due"
    return SensorResult(skip_reason=reason, cursor=evaluation.cursor)


def _targets(job: Any) -> dict[str, Any]:
    """``job=`` for one job, ``jobs=`` for several (then ``job_name_fn`` picks one per run)."""
    if isinstance(job, list):  # not tuple: Dagster records (a job definition) are tuples
        return {"jobs": list(job)}
    return {"job": job}


def _job_label(job: Any) -> str:
    if isinstance(job, list):  # not tuple: Dagster records (a job definition) are tuples
        return ", ".join(getattr(j, "name", "?") for j in job)
    return str(getattr(job, "name", "the DQ job"))


def build_job_definition_sensor(
    job: Any,
    *,
    tenants: TenantsArg,
    environment: str,
    stores_resource_key: str = "dq_stores",
    name: str = "dq_scheduled_job_definitions",
    minimum_interval_seconds: int = 30,
    max_catchup: int = 5,
    default_status: DefaultSensorStatus = DefaultSensorStatus.STOPPED,
    partition_key_fn: Callable[[DQRunRequest], str | None] | None = tenant_partition_key,
    run_config_fn: Callable[[DQRunRequest], Mapping[str, Any]] | None = None,
    asset_selection_fn: Callable[[DQRunRequest], Sequence[AssetKey] | None] | None = None,
    clock: Callable[[], datetime] = _utcnow,
    warn_unserved: bool = True,
    job_name_fn: JobNameFn | None = None,
) -> SensorDefinition:
    """The one sensor that runs ``job`` for every active ``SCHEDULED`` job definition of
    ``tenants`` in ``environment`` (see ``evaluate_schedules``).

    ``stores_resource_key`` names the ``DQStoresResource`` of the code location. Each run gets the
    tags of its ``DQRunRequest`` (``dq/tenant``, ``dq/environment``, ``dq/job_definition_id``,
    ``dq/job_types``, ``dq/scheduled_time``, contract), the partition ``partition_key_fn`` gives
    (default: the tenant; ``None`` for an unpartitioned job), and optionally run config /
    an asset selection (e.g. profiling assets only for a profiling job). ``warn_unserved``: name in
    the tick log the tenants with active SCHEDULED definitions that are not served. ``clock`` is
    for tests.
    """
    served = _served(tenants, environment)
    described = ", ".join(served()) if not callable(tenants) else "the served tenants"

    def evaluate(context: SensorEvaluationContext, dq: DQStoresResource) -> SensorResult:
        stores = dq.get_stores()
        tenant_ids = served()
        evaluation = evaluate_schedules(
            stores, tenant_ids, environment, context.cursor, clock(), max_catchup=max_catchup
        )
        if warn_unserved:
            _note_unserved(evaluation, stores, tenant_ids, environment, TriggerType.SCHEDULED)
        return _report(
            context,
            evaluation,
            _run_requests(evaluation, partition_key_fn, run_config_fn, asset_selection_fn, job_name_fn),
        )

    return sensor(
        **_targets(job),
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=(
            f"Runs {_job_label(job)} at the cron times of the active SCHEDULED job "
            f"definitions of {described} ({environment}), read from the store at every tick."
        ),
    )(with_stores_parameter(evaluate, stores_resource_key, SensorEvaluationContext))


def build_blob_event_sensor(
    job: Any,
    *,
    tenants: TenantsArg | Mapping[str, BlobSource],
    environment: str,
    source: BlobSource | None = None,
    stores_resource_key: str = "dq_stores",
    name: str = "dq_blob_event_job_definitions",
    minimum_interval_seconds: int = 30,
    default_status: DefaultSensorStatus = DefaultSensorStatus.STOPPED,
    lookback: timedelta = _DEFAULT_LOOKBACK,
    max_runs_per_definition: int = 100,
    partition_key_fn: Callable[[DQRunRequest], str | None] | None = tenant_partition_key,
    run_config_fn: Callable[[DQRunRequest], Mapping[str, Any]] | None = None,
    asset_selection_fn: Callable[[DQRunRequest], Sequence[AssetKey] | None] | None = None,
    warn_unserved: bool = True,
    job_name_fn: JobNameFn | None = None,
) -> SensorDefinition:
    """The one sensor that runs ``job`` once per new blob for every active ``EXTERNAL_EVENT`` job
    definition with an Azure Blob ``event_source`` (see ``evaluate_blob_events``).

    ``tenants``: tenant ids (all read through ``source``, default ``BlobSource()``), a function
    giving them, or a mapping tenant -> ``BlobSource`` so each tenant reaches only its own account /
    containers. Each run carries ``dq/blob_uri`` (+ etag, container, name) in its tags; the run
    reads it with ``read_raw_blob`` (or ``BlobSource.read``).

    The sensor polls: every tick lists the blobs under the pattern's literal prefix, so keep that
    prefix specific (e.g. ``prod/inbound/2024-05-*``) or move processed blobs elsewhere.
    """
    default_source = source or BlobSource()
    if isinstance(tenants, Mapping):
        sources = {validate_id(t, "tenant"): s for t, s in tenants.items()}
        served = _served(list(sources), environment)
    else:
        sources = {}
        served = _served(tenants, environment)
    described = ", ".join(served()) if not callable(tenants) else "the served tenants"

    def source_of(tenant: str) -> BlobSource:
        return sources.get(tenant, default_source) if not sources else sources[tenant]

    def evaluate(context: SensorEvaluationContext, dq: DQStoresResource) -> SensorResult:
        stores = dq.get_stores()
        tenant_ids = served()
        connections: dict[tuple[str, str], Any] = {}  # BlobConnection; the Azure SDK stays lazy

        def list_blobs(tenant: str, container: str, prefix: str) -> Iterable[BlobItem]:
            key = (tenant, container)
            if key not in connections:
                connections[key] = source_of(tenant).connect(container)
            return list(_list_with(connections[key], container, prefix))

        try:
            evaluation = evaluate_blob_events(
                stores,
                tenant_ids,
                environment,
                context.cursor,
                list_blobs,
                allows=lambda tenant, container: source_of(tenant).allows(container),
                lookback=lookback,
                max_runs_per_definition=max_runs_per_definition,
            )
        finally:
            for connection in connections.values():
                connection.close()
        if warn_unserved:
            _note_unserved(evaluation, stores, tenant_ids, environment, TriggerType.EXTERNAL_EVENT)
        return _report(
            context,
            evaluation,
            _run_requests(evaluation, partition_key_fn, run_config_fn, asset_selection_fn, job_name_fn),
        )

    return sensor(
        **_targets(job),
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=(
            f"Runs {_job_label(job)} once per new blob for the active Azure Blob "
            f"EXTERNAL_EVENT job definitions of {described} ({environment})."
        ),
    )(with_stores_parameter(evaluate, stores_resource_key, SensorEvaluationContext))
