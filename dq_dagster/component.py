"""``DataQualityComponent``: YAML in, DQ assets + asset checks + sensors out, fed by the stores.

    type: dq_dagster.DataQualityComponent
    attributes:
      stores:
        url: "{{ env.DQ_STORES_URL }}"        # optional; default: the embedded SQLite store
        results_url: ...                      # optional
      environment: prod
      tenants: from_store                     # or a list of tenant ids
      datasets:
        - dataset_type: billing
          source:
            asset: raw_billing                # an upstream asset partitioned by tenant (polars / pandas)
            # or: path: "data/{tenant}/billing.parquet"   (local or azure-blob://; CSV or Parquet)
          jobs: [validation, cleansing, profiling]        # default: all three

Per dataset: ``<dataset>_validation`` (the source checked against the tenant's contract),
``<dataset>_cleansed`` + ``<dataset>_cleansing_report`` (one step: cleansing, rows failing a hard
rule quarantined, one asset check per contract rule evaluated on the stored data) and
``<dataset>_profile``, all partitioned by tenant and recorded through the JobRun IO manager; the
job ``<dataset>_dq_pipeline``; ``dagster/column_schema`` from the contract. Per component: the
job-definition sensor (SCHEDULED definitions), the blob-event sensor (stopped by default) and the
action sensors. ``key_prefix`` (component or dataset) prefixes every key and name.

The stores are the source of truth: a ``StateBackedComponent`` whose state (served tenants, their
contracts' rules and the dataset's columns) is read from the stores by ``write_state_to_path``:
one tenant listing and one ``get_latest_for_dataset`` per tenant and dataset, never a query per
rule. With the default ``defs_state`` (``LEGACY_CODE_SERVER_SNAPSHOTS``) the state is refreshed
every time the code location loads (``dagster dev`` start, the UI's Reload, a new code server) and
travels with the run to the run workers, so a run sees exactly the definitions it was launched
from. Runs read each tenant's contract at run time and report that tenant's rules; a declared check
whose rule the tenant's contract lacks gets no result, which Dagster shows as *skipped* (never
passed). This module is the Dagster shell; the DQ work is ``dq_dagster.engine`` and
``dq_dagster.checks``.
"""

# No ``from __future__ import annotations``: Dagster reads the asset functions' annotations (and
# the component's fields) at runtime.

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetOut,
    AssetsDefinition,
    AssetSelection,
    Backoff,
    ComponentLoadContext,
    DefaultSensorStatus,
    Definitions,
    EnvVar,
    Failure,
    Jitter,
    MetadataValue,
    Output,
    Resolvable,
    RetryPolicy,
    StateBackedComponent,
    StaticPartitionsDefinition,
    TableSchema,
    asset,
    define_asset_job,
    multi_asset,
)
from dagster.components import (
    DefsStateConfig,
    DefsStateConfigArgs,
    Model,
    ResolvedDefsStateConfig,
    Scaffolder,
    ScaffoldRequest,
    scaffold_with,
)
from dagster.components.component_scaffolding import scaffold_component
from pydantic import BaseModel, Field

from dq_dagster.actions.core import ActionEvent, ActionSettings, classify, slots_for
from dq_dagster.actions.sensors import build_action_sensors
from dq_dagster.checks import (
    RULE_ID,
    Quarantine,
    check_names,
    check_results,
    column_schema,
    quarantine_hard_failures,
)
from dq_dagster.discovery import contracts_by_tenant
from dq_dagster.engine import RulePlan, cleanse, compile_rules, profile, validate
from dq_dagster.io_manager import JobRunIOManager
from dq_dagster.resources import (
    ActionProfileStoreResource,
    ContractStoreResource,
    DQStoresResource,
    JobDefinitionStoreResource,
    JobRunStoreResource,
)
from dq_dagster.triggers.request import (
    ALL_JOB_TYPES,
    TAG_JOB_DEFINITION_ID,
    DQRunRequest,
    _utcnow,
    default_job_definition,
)
from dq_dagster.triggers.sensors import build_blob_event_sensor, build_job_definition_sensor
from dq_stores.errors import InvalidArtifactError, NotFoundError, ScopeViolationError
from dq_stores.models import (
    CleansingReport,
    DataContract,
    DatasetContract,
    JobType,
    ProfilingSnapshot,
    Transformation,
    ValidationReport,
)
from dq_stores.models.common import utcnow

__all__ = ["DataQualityComponent", "DataQualityComponentScaffolder", "DatasetAttributes", "tenant_partitions"]

STATE_VERSION = 1
DQ_STORES = "dq_stores"
DQ_IO_MANAGER = "dq_io_manager"
JobName = Literal["validation", "cleansing", "profiling"]
ALL_JOBS: tuple[JobName, ...] = ("validation", "cleansing", "profiling")
# Transient failures (a database failover, a Blob timeout) are worth a retry; a missing contract or
# a broken rule is not (``_permanent_errors`` raises those as non-retryable failures).
DQ_RETRY = RetryPolicy(max_retries=2, delay=1.0, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)


# -- attributes ------------------------------------------------------------------------------------


class StoresAttributes(Resolvable, Model):
    url: str | None = Field(
        default=None,
        description=(
            "Metadata store URL (sqlite:///..., postgresql+psycopg://..., file://..., azure-blob://...). "
            'Default: DQ_STORES_URL when set, else the embedded SQLite store. Use "{{ env.DQ_STORES_URL }}" '
            "for a URL with a password: the value is read from the environment, never written to YAML."
        ),
    )
    results_url: str | None = Field(
        default=None,
        description="Where large results go (file://... or azure-blob://...). Default: DQ_STORES_RESULTS_URL when set.",
    )
    postgres_schema: str | None = Field(
        default=None, description="Postgres schema of the DQ tables. Default: DQ_STORES_SCHEMA when set."
    )


class SourceAttributes(Resolvable, Model):
    asset: str | None = Field(
        default=None,
        description="Key (a/b/c) of an upstream asset partitioned by tenant, yielding a polars or pandas frame.",
    )
    path: str | None = Field(
        default=None,
        description=(
            "A file per tenant: '{tenant}' is replaced by the tenant id. Local (relative to this "
            "defs.yaml's folder) or azure-blob://<container>/<path> (AZURE_STORAGE_CONNECTION_STRING); "
            "CSV or Parquet by extension."
        ),
    )


class DatasetAttributes(Resolvable, Model):
    dataset_type: str = Field(description="The contract dataset type (e.g. billing).")
    source: SourceAttributes = Field(description="Where the raw data of each tenant comes from.")
    jobs: list[JobName] = Field(
        default_factory=lambda: list(ALL_JOBS),
        description="Which DQ jobs run: validation, cleansing, profiling.",
    )
    key_prefix: str | None = Field(default=None, description="Prefix of this dataset's asset keys and names.")
    group_name: str | None = Field(default=None, description="Asset group (default: the dataset type).")


# -- state: what the stores say when the code location loads ------------------------------------------


class _Rule(BaseModel):
    rule_id: str
    rule_type: str
    severity: str
    column: str | None = None
    description: str = ""


class _DatasetState(BaseModel):
    tenants: dict[str, str]
    """tenant -> contract id@version."""
    rules: dict[str, list[_Rule]]
    """tenant -> the rules of its contract."""
    schema_dataset: dict[str, Any] | None = None
    """The dataset contract the table schema is shown from (the first tenant's)."""


class _State(BaseModel):
    version: int = STATE_VERSION
    environment: str
    datasets: dict[str, _DatasetState]


def _dataset_state(contracts: Mapping[str, DataContract], dataset_type: str) -> _DatasetState:
    tenants: dict[str, str] = {}
    rules: dict[str, list[_Rule]] = {}
    schema: dict[str, Any] | None = None
    for tenant in sorted(contracts):
        contract = contracts[tenant]
        plan = compile_rules(contract, dataset_type)
        tenants[tenant] = f"{contract.contract_id}@{contract.version}"
        rules[tenant] = [
            _Rule(
                rule_id=r.rule_id,
                rule_type=r.rule_type,
                severity=str(getattr(r.severity, "value", r.severity)),
                column=r.column,
                description=r.description,
            )
            for r in plan.rules
        ]
        if schema is None:
            schema = plan.dataset.model_dump(mode="json", exclude_unset=True)
    return _DatasetState(tenants=tenants, rules=rules, schema_dataset=schema)


def _union_plan_rules(state: _DatasetState) -> list[_Rule]:
    """Every rule id any tenant has, once, in first-seen order; hard if hard for any tenant."""
    seen: dict[str, _Rule] = {}
    for tenant in sorted(state.rules):
        for rule in state.rules[tenant]:
            known = seen.get(rule.rule_id)
            if known is None:
                seen[rule.rule_id] = rule
            elif rule.severity == "hard" and known.severity != "hard":
                seen[rule.rule_id] = rule.model_copy(update={"severity": "hard"})
    return list(seen.values())


# -- the component --------------------------------------------------------------------------------


class DataQualityComponentScaffolder(Scaffolder):
    """``dg scaffold defs dq_dagster.DataQualityComponent <path>``: a working ``defs.yaml`` and an
    example contract to import (``dq-stores import <path>/contracts``).
    """

    def scaffold(self, request: ScaffoldRequest) -> None:
        scaffold_component(
            request,
            {
                "stores": {"url": "{{ env.DQ_STORES_URL }}"},
                "environment": "prod",
                "tenants": "from_store",
                "datasets": [
                    {
                        "dataset_type": "orders",
                        "source": {"path": "data/{tenant}/orders.csv"},
                        "jobs": list(ALL_JOBS),
                    }
                ],
            },
        )
        folder = Path(request.target_path)
        (folder / "contracts").mkdir(parents=True, exist_ok=True)
        (folder / "contracts" / "orders-contract.yaml").write_text(_EXAMPLE_CONTRACT)
        data = folder / "data" / "TNT-001"
        data.mkdir(parents=True, exist_ok=True)
        (data / "orders.csv").write_text(_EXAMPLE_CSV)


_EXAMPLE_CONTRACT = """\
# An example data contract: import it with `dq-stores import <this folder>`, then reload the code
# location (or restart `dg dev` / `dagster dev`): tenant TNT-001 gets a partition, and each rule
# below an asset check on orders_cleansed.
contract_id: orders-contract
tenant_id: TNT-001
environment: prod
version: 1.0.0
name: Orders
datasets:
- dataset_contract_id: orders-dataset
  dataset_type: orders
  tenant_id: TNT-001
  environment: prod
  version: 1.0.0
  primary_keys:
  - order_id
  columns:
  - column_id: order_id
    data_type: string
    required: true
  - column_id: amount
    data_type: float
    required: true
    constraints:
      min_value: 0
  - column_id: currency
    data_type: string
    constraints:
      allowed_values: [EUR, USD, GBP]
      severity: soft
"""

_EXAMPLE_CSV = """\
order_id,amount,currency
A-1,10.5,EUR
A-2,3.0,USD
A-3,-1.0,CHF
"""


@scaffold_with(DataQualityComponentScaffolder)
@dataclass
class DataQualityComponent(StateBackedComponent, Resolvable):
    """Data quality on contracts kept in the DQ stores: validation, cleansing (with a check per
    contract rule) and profiling assets per dataset, partitioned by the tenants the stores hold.

    Tenants (those with a contract for the dataset type in the environment), their contracts' rules
    and the dataset's columns are read from the stores when the code location loads: after
    ``dq-stores import`` of a new tenant's contract, reload the code location (UI: Deployment ->
    Reload; or restart the code server) and the tenant's partition and the checks of any new rule
    appear, with no code change. Every result is recorded as a job run through the JobRun IO
    manager; stored job definitions drive the runs (sensor ``<prefix>dq_scheduled_job_definitions``)
    and stored action profiles run after them (sensors ``<prefix>dq_actions_on_*``).
    """

    datasets: list[DatasetAttributes]
    stores: StoresAttributes = field(default_factory=StoresAttributes)
    environment: str = "prod"
    tenants: Literal["from_store"] | list[str] = "from_store"
    key_prefix: str | None = None
    sensors_running: bool = True
    defs_state: ResolvedDefsStateConfig = field(
        default_factory=DefsStateConfigArgs.legacy_code_server_snapshots
    )

    # -- configuration ---------------------------------------------------------------------------
    @property
    def defs_state_config(self) -> DefsStateConfig:
        names = ",".join(sorted(d.dataset_type for d in self.datasets))
        return DefsStateConfig.from_args(
            self.defs_state, default_key=f"DataQualityComponent[{self._prefix()}{self.environment}:{names}]"
        )

    def _prefix(self) -> str:
        return f"{self.key_prefix}_" if self.key_prefix else ""

    def stores_resource(self, *, resolved: bool = False) -> DQStoresResource:
        """The backend resource: the YAML's values, else ``DQ_STORES_*`` through ``EnvVar`` (so the
        UI shows only the variables' names), else the embedded default. ``resolved``: the
        variables' values instead, for opening the stores outside a Dagster run (loading state).
        """
        fields: dict[str, Any] = {}
        for attr, env, name in (
            ("url", "DQ_STORES_URL", "url"),
            ("results_url", "DQ_STORES_RESULTS_URL", "results_url"),
            ("postgres_schema", "DQ_STORES_SCHEMA", "schema"),
        ):
            value = getattr(self.stores, attr)
            if value:
                fields[name] = value
            elif os.environ.get(env):
                fields[name] = os.environ[env] if resolved else EnvVar(env)
        return DQStoresResource(**fields)

    def _check(self) -> None:
        if not self.datasets:
            raise InvalidArtifactError("datasets must name at least one dataset", field="datasets")
        seen: set[str] = set()
        for i, ds in enumerate(self.datasets):
            where = f"datasets[{i}]"
            key = ds.dataset_type.lower()
            if key in seen:
                raise InvalidArtifactError(
                    f"{where}: dataset type {ds.dataset_type} is listed twice", field=where
                )
            seen.add(key)
            if (ds.source.asset is None) == (ds.source.path is None):
                raise InvalidArtifactError(
                    f"{where}.source: give exactly one of asset or path", field=f"{where}.source"
                )
            if not ds.jobs:
                raise InvalidArtifactError(f"{where}.jobs: name at least one job", field=f"{where}.jobs")

    # -- state -------------------------------------------------------------------------------------
    def read_state(self, backend: DQStoresResource | None = None) -> _State:
        """Tenants, rules and columns from the stores (what ``write_state_to_path`` writes);
        ``backend``: another stores resource than the YAML's (tests, tools).
        """
        self._check()
        explicit = None if self.tenants == "from_store" else list(self.tenants)
        types = [d.dataset_type for d in self.datasets]
        with (backend or self.stores_resource(resolved=True)).open(shared=False) as stores:
            found = contracts_by_tenant(stores, self.environment, types, explicit)
        return _State(
            environment=self.environment,
            datasets={t: _dataset_state(found[t], t) for t in types},
        )

    def write_state_to_path(self, state_path: Path) -> None:
        state_path.write_text(self.read_state().model_dump_json())

    def build_defs(self, context: ComponentLoadContext) -> Definitions:
        try:
            return super().build_defs(context)
        except KeyError:
            # Code servers, `dagster dev` and `dg` keep the snapshot state in their definitions
            # load context; a plain Python process importing the definitions (a script, a test,
            # `python -m dq_dagster.demo`) has none, so its state is read from the stores here.
            return self.build_defs_for_state(self.read_state(), base=context.path)

    def build_defs_from_state(self, context: ComponentLoadContext, state_path: Path | None) -> Definitions:
        if state_path is None:
            # No state written yet (e.g. LOCAL_FILESYSTEM before `dg utils refresh-defs-state`).
            return Definitions()
        state = _State.model_validate_json(state_path.read_text())
        return self.build_defs_for_state(state, base=context.path)

    def build_defs_for_state(
        self,
        state: _State,
        base: Path | None = None,
        backend: DQStoresResource | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> Definitions:
        """The definitions for a given state (public so tests and benchmarks can time it);
        ``backend``: another stores resource than the YAML's; ``clock``: the schedule sensor's
        clock (tests).
        """
        self._check()
        backend = backend or self.stores_resource()
        assets: list[AssetsDefinition] = []
        jobs = []
        job_for: dict[str, str] = {}
        served: set[str] = set()
        for ds in self.datasets:
            ds_state = state.datasets.get(ds.dataset_type) or _DatasetState(tenants={}, rules={})
            built = _DatasetBuilder(self, ds, ds_state, base or Path.cwd())
            assets.extend(built.assets())
            jobs.append(built.job())
            job_for[ds.dataset_type.lower()] = built.job_name
            served.update(ds_state.tenants)
        tenants = sorted(served)
        binding: dict[str, Any] = {
            "backend": backend,
            "environment": self.environment,
            "allowed_tenants": tenants,
        }
        resources: dict[str, Any] = {
            DQ_STORES: backend,
            "contracts": ContractStoreResource(**binding),
            "job_definitions": JobDefinitionStoreResource(**binding),
            "action_profiles": ActionProfileStoreResource(**binding),
            "job_runs": JobRunStoreResource(**binding),
            DQ_IO_MANAGER: JobRunIOManager(
                stores=backend, environment=self.environment, allowed_tenants=tenants
            ),
        }
        sensors: list[Any] = []
        if tenants:
            sensors = self._sensors(jobs, job_for, tenants, clock)
        return Definitions(assets=assets, jobs=jobs, sensors=sensors, resources=resources)

    def _sensors(
        self,
        jobs: Sequence[Any],
        job_for: Mapping[str, str],
        tenants: Sequence[str],
        clock: Callable[[], datetime] | None = None,
    ) -> list[Any]:
        prefix = self._prefix()
        status = DefaultSensorStatus.RUNNING if self.sensors_running else DefaultSensorStatus.STOPPED
        datasets = {d.dataset_type.lower(): d for d in self.datasets}

        def job_name(request: DQRunRequest) -> str | None:
            if request.dataset_type is not None:
                return job_for.get(request.dataset_type.lower())
            return next(iter(job_for.values())) if len(job_for) == 1 else None

        def selection(request: DQRunRequest) -> list[AssetKey] | None:
            name = (request.dataset_type or (next(iter(datasets)) if len(datasets) == 1 else "")).lower()
            ds = datasets.get(name)
            if ds is None or set(request.job_types) == set(ALL_JOB_TYPES):
                return None
            keys = _DatasetKeys(self, ds)
            wanted: set[AssetKey] = set()
            if request.runs(JobType.CLEANSING) and "cleansing" in ds.jobs:
                wanted |= {keys.cleansed, keys.report}
            if request.runs(JobType.VALIDATION) and "validation" in ds.jobs:
                wanted.add(keys.validation)
            if request.runs(JobType.PROFILING) and "profiling" in ds.jobs:
                wanted.add(keys.profile)
            if keys.source_owned and wanted & {keys.cleansed, keys.report, keys.validation}:
                wanted.add(keys.source)
            return sorted(wanted, key=lambda k: k.to_user_string()) or None

        job_arg: Any = list(jobs) if len(jobs) > 1 else jobs[0]
        return [
            build_job_definition_sensor(
                job_arg,
                tenants=tenants,
                environment=self.environment,
                stores_resource_key=DQ_STORES,
                name=f"{prefix}dq_scheduled_job_definitions",
                asset_selection_fn=selection,
                job_name_fn=job_name if len(jobs) > 1 else None,
                default_status=status,
                clock=clock or _utcnow,
            ),
            build_blob_event_sensor(
                job_arg,
                tenants=tenants,
                environment=self.environment,
                stores_resource_key=DQ_STORES,
                name=f"{prefix}dq_blob_event_job_definitions",
                asset_selection_fn=selection,
                job_name_fn=job_name if len(jobs) > 1 else None,
            ),
            *build_action_sensors(
                None,
                environment=self.environment,
                tenants=tenants,
                stores_resource_key=DQ_STORES,
                name=f"{prefix}dq_actions",
                settings=ActionSettings(dagster_url=os.environ.get("DQ_DAGSTER_URL")),
                default_status=status,
            ),
        ]


# -- one dataset's assets ------------------------------------------------------------------------


class _DatasetKeys:
    def __init__(self, component: DataQualityComponent, ds: DatasetAttributes) -> None:
        prefix = component._prefix() + (f"{ds.key_prefix}_" if ds.key_prefix else "")
        self.name = f"{prefix}{ds.dataset_type}"
        self.validation = AssetKey(f"{self.name}_validation")
        self.cleansed = AssetKey(f"{self.name}_cleansed")
        self.report = AssetKey(f"{self.name}_cleansing_report")
        self.profile = AssetKey(f"{self.name}_profile")
        self.source_owned = ds.source.path is not None
        self.source = (
            AssetKey(ds.source.asset.split("/")) if ds.source.asset else AssetKey(f"{self.name}_source")
        )


@contextmanager
def _permanent_errors(what: str) -> Iterator[None]:
    """Store errors that a retry cannot fix become a non-retryable ``Failure``."""
    try:
        yield
    except (NotFoundError, InvalidArtifactError, ScopeViolationError) as exc:
        raise Failure(description=f"{what}: {exc}", allow_retries=False) from exc


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


def _read_source(path_template: str, tenant: str, base: Path) -> Any:
    import io

    import polars as pl

    target = path_template.replace("{tenant}", tenant)
    if target.startswith("azure-blob://"):
        from dq_stores.payloads import open_payload_store

        container, _, name = target[len("azure-blob://") :].partition("/")
        store = open_payload_store(f"azure-blob://{container}")
        try:
            data = b"".join(store.read_chunks(name))
        finally:
            store.close()
        handle: Any = io.BytesIO(data)
    else:
        local = Path(target)
        handle = local if local.is_absolute() else base / local
        if not Path(handle).exists():
            raise Failure(description=f"no source file for tenant {tenant}: {handle}", allow_retries=False)
    lowered = target.lower()
    if lowered.endswith((".parquet", ".pq")):
        return pl.read_parquet(handle)
    return pl.read_csv(handle, try_parse_dates=True)


class _DatasetBuilder:
    """The assets and job of one dataset, for the tenants and rules of the state."""

    def __init__(
        self, component: DataQualityComponent, ds: DatasetAttributes, state: _DatasetState, base: Path
    ) -> None:
        self.c = component
        self.ds = ds
        self.state = state
        self.base = base
        self.keys = _DatasetKeys(component, ds)
        self.partitions = StaticPartitionsDefinition(sorted(state.tenants))
        self.group = ds.group_name or f"{component._prefix()}{ds.dataset_type}"
        self.schema: TableSchema | None = None
        if state.schema_dataset is not None:
            self.schema = column_schema(DatasetContract.model_validate(state.schema_dataset))
        self.rules = _union_plan_rules(state)
        self.job_name = f"{self.keys.name}_dq_pipeline"

    # metadata ----------------------------------------------------------------------------------
    def _meta(self, **extra: Any) -> dict[str, Any]:
        meta: dict[str, Any] = {"dq/dataset_type": self.ds.dataset_type, **extra}
        if self.schema is not None:
            meta["dagster/column_schema"] = self.schema
        meta["dq/tenants"] = MetadataValue.json(self.state.tenants)
        return meta

    def check_specs(self) -> list[AssetCheckSpec]:
        specs = []
        if not self.rules:
            return []
        names = check_names([r.rule_id for r in self.rules])
        for rule in self.rules:
            has = sorted(
                t for t, rules in self.state.rules.items() if any(r.rule_id == rule.rule_id for r in rules)
            )
            metadata: dict[str, Any] = {
                RULE_ID: rule.rule_id,
                "dq/rule_type": rule.rule_type,
                "dq/severity": rule.severity,
                "dq/tenants": ",".join(has),
            }
            if rule.column is not None:
                metadata["dq/column"] = rule.column
            specs.append(
                AssetCheckSpec(
                    names[rule.rule_id],
                    asset=self.keys.cleansed,
                    description=f"{rule.description} ({rule.severity} rule {rule.rule_id}; tenants: {', '.join(has)})",
                    blocking=rule.severity == "hard",
                    metadata=metadata,
                )
            )
        return specs

    # run-time helpers --------------------------------------------------------------------------
    def _plan(self, context: AssetExecutionContext, contracts: ContractStoreResource) -> RulePlan:
        with _permanent_errors(f"no usable {self.ds.dataset_type} contract"):
            scoped = contracts.for_context(context)
            return compile_rules(
                scoped.require_latest_for_dataset(self.ds.dataset_type), self.ds.dataset_type
            )

    def _job_definition_id(
        self, context: AssetExecutionContext, job_definitions: JobDefinitionStoreResource
    ) -> str | None:
        """The job definition this run serves: the run's tag, else the tenant's default one."""
        tagged = context.run.tags.get(TAG_JOB_DEFINITION_ID)
        if tagged:
            return tagged  # set by the sensors, or by hand on a launch
        scope = job_definitions.scope_for_context(context)
        backend = job_definitions.backend
        assert isinstance(backend, DQStoresResource)  # resolved by Dagster inside a run
        stores = backend.get_stores()
        definition, why = default_job_definition(
            stores, scope.tenant, scope.environment, self.ds.dataset_type
        )
        if definition is None:
            context.log.info(f"no job definition for this run ({why}); no action profiles will follow it")
            return None
        return definition.job_definition_id

    # assets ------------------------------------------------------------------------------------
    def assets(self) -> list[AssetsDefinition]:
        built: list[AssetsDefinition] = []
        if self.keys.source_owned:
            built.append(self._source_asset())
        if "validation" in self.ds.jobs:
            built.append(self._validation_asset())
        if "cleansing" in self.ds.jobs:
            built.append(self._cleansing_asset())
        if "profiling" in self.ds.jobs:
            built.append(self._profile_asset())
        return built

    def job(self) -> Any:
        chosen = {
            "validation": [self.keys.validation],
            "cleansing": [self.keys.cleansed, self.keys.report],
            "profiling": [self.keys.profile],
        }
        selected = [k for job in self.ds.jobs for k in chosen[job]]
        # The source too (one level up: the DQ assets' other parents are DQ assets already chosen),
        # whether owned (a path) or an upstream asset this code location defines; an external
        # upstream is not materializable and stays out.
        selection = AssetSelection.assets(*selected).upstream(depth=1).materializable()
        return define_asset_job(
            self.job_name,
            selection=selection,
            description=f"Check, cleanse and profile one tenant's {self.ds.dataset_type} data.",
        )

    def _source_asset(self) -> AssetsDefinition:
        path = str(self.ds.source.path)
        base = self.base

        @asset(
            key=self.keys.source,
            partitions_def=self.partitions,
            group_name=self.group,
            kinds={"polars"},
            description=f"The raw {self.ds.dataset_type} data of each tenant, read from {path}.",
            metadata=self._meta(**{"dq/source": path}),
        )
        def _source(context: AssetExecutionContext) -> Any:
            frame = _read_source(path, context.partition_key, base)
            context.add_output_metadata({"dagster/row_count": MetadataValue.int(frame.height)})
            return frame

        return _source

    def _validation_asset(self) -> AssetsDefinition:
        builder = self

        @asset(
            key=self.keys.validation,
            ins={"data": AssetIn(key=self.keys.source)},
            partitions_def=self.partitions,
            group_name=self.group,
            io_manager_key=DQ_IO_MANAGER,
            retry_policy=DQ_RETRY,
            description=(
                f"Validation report of the raw {self.ds.dataset_type} data against the tenant's contract: "
                "every rule, its failed count and rate, masked samples of failing values."
            ),
            metadata=self._meta(),
        )
        def _validation(
            context: AssetExecutionContext,
            data: Any,
            contracts: ContractStoreResource,
            job_definitions: JobDefinitionStoreResource,
        ) -> Output[ValidationReport]:
            report = validate(data, builder._plan(context, contracts))
            outcome, _ = classify([], [report])
            return Output(report, metadata=builder._run_meta(context, job_definitions, outcome))

        return _validation

    def _run_meta(
        self,
        context: AssetExecutionContext,
        job_definitions: JobDefinitionStoreResource,
        outcome: ActionEvent | None = None,
    ) -> dict[str, Any]:
        """``dq/job_definition_id`` of this run and, for a report with an ``outcome``, the action
        profile that definition selects for it (``dq/outcome``, ``dq/action_profile``,
        ``dq/actions``): all from the run, never from code. The actions themselves run in the
        action sensors after the run.
        """
        meta: dict[str, Any] = {}
        with _permanent_errors("reading the job definitions"):
            definition_id = self._job_definition_id(context, job_definitions)
            if definition_id is None:
                return meta
            meta["dq/job_definition_id"] = definition_id
            if outcome is None:
                return meta
            meta["dq/outcome"] = MetadataValue.text(outcome.value)
            scoped = job_definitions.stores_for_context(context)
            definition = scoped.job_definitions.get(definition_id)
            if definition is None:
                meta["dq/action_profile"] = MetadataValue.text(f"none (no job definition {definition_id})")
                return meta
            slots = slots_for(definition, outcome)
            if not slots:
                meta["dq/action_profile"] = MetadataValue.text(
                    f"none (the definition names none for {outcome.value})"
                )
                return meta
            shown: list[str] = []
            actions: list[str] = []
            for slot, ref in slots:
                found = scoped.action_profiles.get(ref.action_profile_id, ref.version)
                if found is None or found.is_retired:
                    state = "retired" if found is not None else "missing"
                    shown.append(f"{ref.action_profile_id} ({slot}, {state})")
                    continue
                shown.append(f"{found.action_profile_id}@{found.version} ({slot})")
                actions += [str(t) for t in found.action_types]
            meta["dq/action_profile"] = MetadataValue.text(", ".join(shown))
            meta["dq/actions"] = MetadataValue.text(", ".join(dict.fromkeys(actions)) or "none")
        return meta

    def _cleansing_asset(self) -> AssetsDefinition:
        builder = self
        self_keys = self.keys
        specs = self.check_specs()

        @multi_asset(
            name=f"{self.keys.name}_cleansing",
            ins={"data": AssetIn(key=self.keys.source)},
            outs={
                "cleansed": AssetOut(
                    key=self.keys.cleansed,
                    io_manager_key=DQ_IO_MANAGER,
                    kinds={"polars"},
                    description=(
                        f"{self.ds.dataset_type} data cleansed under the tenant's contract: repaired values, no "
                        "duplicates, rows failing a hard rule quarantined. Stored as Parquet on a cleansing job run."
                    ),
                    metadata=self._meta(),
                ),
                "report": AssetOut(
                    key=self.keys.report,
                    io_manager_key=DQ_IO_MANAGER,
                    description="What cleansing changed and rejected (by reason), as a cleansing job run.",
                    metadata={"dq/dataset_type": self.ds.dataset_type},
                ),
            },
            check_specs=specs,
            partitions_def=self.partitions,
            group_name=self.group,
            retry_policy=DQ_RETRY,
            # Subsettable so that a check a tenant's contract lacks may get no result (skipped).
            can_subset=True,
        )
        def _cleansing(
            context: AssetExecutionContext,
            data: Any,
            contracts: ContractStoreResource,
            job_definitions: JobDefinitionStoreResource,
        ) -> Iterator[Output[Any] | AssetCheckResult]:
            plan = builder._plan(context, contracts)
            cleansed = cleanse(data, plan)
            quarantine = quarantine_hard_failures(cleansed.frame, plan)
            report = _with_quarantine(cleansed.report, quarantine)
            outcome = check_results(validate(quarantine.kept, plan), specs, missing="skip")
            if outcome.undeclared:
                context.log.warning(
                    "rules without a declared asset check (reload the code location to declare them): "
                    f"{outcome.undeclared}"
                )
            if outcome.not_evaluated:
                context.log.info(
                    f"checks skipped, not applicable: the tenant's contract has no rule {outcome.not_evaluated}"
                )
            run_meta = builder._run_meta(context, job_definitions)
            yield Output(
                quarantine.kept,
                output_name="cleansed",
                metadata={
                    **run_meta,
                    "dq/rows_quarantined": MetadataValue.int(quarantine.rejected.height),
                    "dq/contract_version": MetadataValue.text(report.contract_version or "unknown"),
                    "dq/checks_not_applicable": MetadataValue.int(len(outcome.not_evaluated)),
                },
            )
            yield Output(report, output_name="report", metadata=run_meta)
            chosen = context.selected_asset_check_keys
            yield from (
                r for r in outcome.results if AssetCheckKey(self_keys.cleansed, str(r.check_name)) in chosen
            )

        return _cleansing

    def _profile_asset(self) -> AssetsDefinition:
        builder = self
        upstream = self.keys.cleansed if "cleansing" in self.ds.jobs else self.keys.source

        @asset(
            key=self.keys.profile,
            ins={"data": AssetIn(key=upstream)},
            partitions_def=self.partitions,
            group_name=self.group,
            io_manager_key=DQ_IO_MANAGER,
            retry_policy=DQ_RETRY,
            description=f"Column profile of the {self.ds.dataset_type} data and the contract's profiling expectations.",
            metadata={"dq/dataset_type": self.ds.dataset_type},
        )
        def _profile(
            context: AssetExecutionContext,
            data: Any,
            contracts: ContractStoreResource,
            job_definitions: JobDefinitionStoreResource,
        ) -> Output[ProfilingSnapshot]:
            snapshot = profile(data, builder._plan(context, contracts))
            outcome, _ = classify([], [snapshot])
            return Output(snapshot, metadata=builder._run_meta(context, job_definitions, outcome))

        return _profile


def tenant_partitions(
    dataset_type: str, *, environment: str = "prod", stores: DQStoresResource | None = None
) -> StaticPartitionsDefinition:
    """The tenants with a contract for ``dataset_type`` in ``environment``, read from the stores
    (``DQ_STORES_URL`` ... by default), as the partitions of an upstream asset the component's
    ``source.asset`` names: the same tenants ``tenants: from_store`` serves.
    """
    backend = stores or DataQualityComponent(
        datasets=[DatasetAttributes(dataset_type=dataset_type, source=SourceAttributes(asset="-"))]
    ).stores_resource(resolved=True)
    with backend.open(shared=False) as opened:
        found = contracts_by_tenant(opened, environment, [dataset_type])
    return StaticPartitionsDefinition(sorted(found[dataset_type]))
