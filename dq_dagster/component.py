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
passed). This module is the Dagster shell: the attributes and state are
``dq_dagster.component_state``, one dataset's assets ``dq_dagster.component_assets``, the DQ work
``dq_dagster.engine`` and ``dq_dagster.checks``.
"""

# No ``from __future__ import annotations``: Dagster reads the asset functions' annotations (and
# the component's fields) at runtime.

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from dagster import (
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    ComponentLoadContext,
    DefaultSensorStatus,
    Definitions,
    EnvVar,
    Resolvable,
    StateBackedComponent,
    StaticPartitionsDefinition,
)
from dagster.components import (
    DefsStateConfig,
    DefsStateConfigArgs,
    ResolvedDefsStateConfig,
    Scaffolder,
    ScaffoldRequest,
    scaffold_with,
)
from dagster.components.component_scaffolding import scaffold_component

from dq_dagster.actions.core import ActionSettings
from dq_dagster.actions.sensors import build_action_sensors
from dq_dagster.component_assets import _DatasetBuilder, _DatasetKeys, table_source
from dq_dagster.component_state import (
    ALL_JOBS,
    DQ_IO_MANAGER,
    DQ_STORES,
    DatasetAttributes,
    SourceAttributes,
    StoresAttributes,
    _dataset_state,
    _DatasetState,
    _State,
)
from dq_dagster.discovery import contracts_by_tenant
from dq_dagster.engine.sources import SourceError
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
    DQRunRequest,
    _utcnow,
)
from dq_dagster.triggers.sensors import build_blob_event_sensor, build_job_definition_sensor
from dq_stores.errors import InvalidArtifactError
from dq_stores.models import (
    JobType,
)

__all__ = [
    "DataQualityComponent",
    "DataQualityComponentScaffolder",
    "DatasetAttributes",
    "SourceAttributes",
    "StoresAttributes",
    "tenant_partitions",
]


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
        for attr in ("docs_dir", "docs_url"):  # unset: the resource reads DQ_STORES_DOCS_* when used
            value = getattr(self.stores, attr)
            if value:
                fields[attr] = value
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
            given = [k for k in ("asset", "path", "table") if getattr(ds.source, k) is not None]
            if len(given) != 1:
                raise InvalidArtifactError(
                    f"{where}.source: give exactly one of asset, path or table", field=f"{where}.source"
                )
            if ds.source.table is not None:
                try:  # the shape only: the connection itself is read when a run starts
                    table_source(ds.source, "tenant")
                except SourceError as exc:
                    raise InvalidArtifactError(f"{where}.{exc}", field=f"{where}.source") from exc
            elif ds.source.connection is not None or ds.source.connection_env is not None:
                raise InvalidArtifactError(
                    f"{where}.source: connection / connection_env go with a table", field=f"{where}.source"
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
        assets: list[AssetsDefinition | AssetSpec] = []
        jobs = []
        job_for: dict[str, str] = {}
        served: set[str] = set()
        for ds in self.datasets:
            ds_state = state.datasets.get(ds.dataset_type) or _DatasetState(tenants={}, rules={})
            built = _DatasetBuilder(self._prefix(), ds, ds_state, base or Path.cwd())
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
            keys = _DatasetKeys(self._prefix(), ds)
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
