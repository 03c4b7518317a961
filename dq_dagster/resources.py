"""Dagster resources for the DQ stores: one backend resource, one tenant-bound resource per store.

``DQStoresResource`` says where the stores live (metadata URL, Postgres schema, results location,
offload threshold) and opens them with ``dq_stores.registry.open_stores`` when a run (or sensor,
or schedule tick) initialises it, closing them at teardown: nothing is opened at import time and
nothing is shared between runs. Secrets (a password in the URL, an Azure connection string)
belong in ``EnvVar`` so that Dagster's config snapshot holds only the variable's name; every
repr and log line goes through ``dq_stores.secrets.redact``.

``ContractStoreResource``, ``JobDefinitionStoreResource``, ``ActionProfileStoreResource`` and
``JobRunStoreResource`` depend on the backend resource and are bound to a tenant and environment
by config; they expose the store methods without tenant arguments. ``for_context(context)``
gives the view of the tenant named by the current partition (a tenant-partitioned asset, or a
multi-partition with a ``tenant`` dimension), refused unless the binding allows that tenant.
The tenant rules and the scoped views themselves are plain Python in ``dq_dagster.scoped``; this
module only adapts them to Dagster config and contexts.
"""

# No ``from __future__ import annotations`` here: Dagster reads the config classes' annotations at
# runtime to tell resource dependencies from config fields, and string annotations hide them.

import builtins
from collections.abc import Generator, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any, Literal

from dagster import (
    ConfigurableResource,
    InitResourceContext,
    InputContext,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    OutputContext,
    PartitionsDefinition,
    ResourceDependency,
    TimeWindowPartitionsDefinition,
)
from pydantic import Field, PrivateAttr

from dq_dagster.scoped import (
    ScopedActionProfileStore,
    ScopedContractStore,
    ScopedJobDefinitionStore,
    ScopedJobRunStore,
    TenantNotAllowedError,
    TenantPolicy,
)
from dq_stores.base import Entry, Page, Revision
from dq_stores.config import StoresConfig, default_url
from dq_stores.errors import InvalidArtifactError, StoreError
from dq_stores.models import (
    ActionProfile,
    ActionType,
    DataContract,
    JobDefinition,
    JobRun,
    JobRunStatus,
    JobType,
    ResultRef,
)
from dq_stores.results.payloads import DEFAULT_OFFLOAD_THRESHOLD
from dq_stores.scope import Scope
from dq_stores.secrets import redact
from dq_stores.stores import Stores, open_stores

__all__ = [
    "ActionProfileStoreResource",
    "ContractStoreResource",
    "DQStoresResource",
    "JobDefinitionStoreResource",
    "JobRunStoreResource",
    "ResultBackend",
    "default_stores_url",
    "partition_tenant",
]

ResultBackend = Literal["auto", "inline", "blob", "external"]


def default_stores_url() -> str:
    """SQLite under ``$DAGSTER_HOME/dq/dq.db`` when ``DAGSTER_HOME`` is set, else ``.dq/dq.db``:
    the default of every entry point (``dq_stores.config.default_url``).
    """
    return default_url()


# -- partition -> tenant ------------------------------------------------------------------------


def _partition_of(context: Any) -> tuple[str | None, PartitionsDefinition | None]:
    """The (single) partition key of an asset/op/IO context and the partitions definition it
    comes from, when known.
    """
    if isinstance(context, OutputContext | InputContext):
        if context.has_asset_partitions:
            keys = list(context.asset_partition_keys)
            if len(keys) != 1:
                raise TenantNotAllowedError(
                    f"this context spans {len(keys)} partitions; a store is scoped to one tenant, so "
                    "resolve each partition key separately"
                )
            return keys[0], context.asset_partitions_def
        if context.has_partition_key:
            return context.partition_key, None
        return None, None
    if not getattr(context, "has_partition_key", False):
        return None, None
    key: str = context.partition_key
    partitions_def: PartitionsDefinition | None = None
    if getattr(context, "has_assets_def", False):
        partitions_def = context.assets_def.partitions_def
    return key, partitions_def


def partition_tenant(
    partition_key: str | None,
    partitions_def: PartitionsDefinition | None = None,
    dimension: str = "tenant",
) -> str | None:
    """The tenant a partition key names, or ``None`` when it names none.

    A multi-partition key names the value of its ``dimension`` dimension (none if it has no such
    dimension); a time-window key never names a tenant; any other key is the tenant itself.
    """
    if partition_key is None:
        return None
    if not isinstance(partition_key, MultiPartitionKey) and isinstance(
        partitions_def, MultiPartitionsDefinition
    ):
        partition_key = partitions_def.get_partition_key_from_str(partition_key)
    if isinstance(partition_key, MultiPartitionKey):
        return partition_key.keys_by_dimension.get(dimension)
    if isinstance(partitions_def, TimeWindowPartitionsDefinition):
        return None
    return str(partition_key)


def _context_tenant(context: Any, dimension: str) -> str | None:
    key, partitions_def = _partition_of(context)
    return partition_tenant(key, partitions_def, dimension)


# -- the backend resource -----------------------------------------------------------------------


class DQStoresResource(ConfigurableResource):  # type: ignore[type-arg]  # Dagster parametrises it with Self at runtime
    """Where the DQ stores live. Opened per run, closed at teardown; share one instance between
    the store resources and the JobRun IO manager (each opens its own connection for the run).

    Secrets go through ``EnvVar``: ``DQStoresResource(url=EnvVar("DQ_STORES_URL"))``.

    Dagster initialises a nested resource once per resource that depends on it, so a run holds one
    connection pool per store resource and IO manager it uses. For the same reason ``memory://``
    is not shared between them: use a SQLite file for tests that write through one resource and
    read through another.
    """

    url: str | None = Field(
        default=None,
        description=(
            "Metadata store URL: sqlite:///path/dq.db, postgresql+psycopg://user@host/db, file://folder "
            "or azure-blob://container/prefix. Unset: DQ_STORES_URL, else SQLite at "
            "$DAGSTER_HOME/dq/dq.db when DAGSTER_HOME is set, else .dq/dq.db (as for the dq-stores "
            "CLI). A URL with a password must come from "
            'EnvVar("DQ_STORES_URL") so that it never lands in the run config.'
        ),
    )
    schema_: str | None = Field(
        default=None,
        alias="schema",
        description=(
            "Postgres schema holding the DQ tables. Unset: DQ_STORES_SCHEMA, else the connection's "
            "search_path."
        ),
    )
    results_url: str | None = Field(
        default=None,
        description=(
            "Where job-run results larger than offload_threshold_bytes go: file://folder (e.g. "
            "file://.dq/results) or azure-blob://container/prefix. Unset: DQ_STORES_RESULTS_URL, else "
            "the backend's default (SQLite: <name>.results/ beside the database file; Postgres: none, "
            "results stay inline). Each store writes under its own namespace there."
        ),
    )
    results_connection_string: str | None = Field(
        default=None,
        description=(
            "Azure Storage connection string for an azure-blob:// url or results_url. Secret: pass it only "
            'as EnvVar("...").'
        ),
    )
    # ``Any``, not AzureBlobStorageResource: importing dagster_azure (and the Azure SDK) here would
    # cost every user of this module; ``open`` imports it and checks the type. The optional goes
    # inside ResourceDependency: Dagster does not treat ``ResourceDependency[X] | None`` as one.
    blob_storage: ResourceDependency[Any | None] = Field(
        default=None,  # type: ignore[arg-type]  # mypy sees the descriptor type, Dagster the value
        description=(
            "A dagster-azure AzureBlobStorageResource whose client (account URL and credential) "
            "serves an azure-blob:// url or results_url; an alternative to results_connection_string."
        ),
    )
    offload_threshold_bytes: int = Field(
        default=DEFAULT_OFFLOAD_THRESHOLD,
        ge=0,
        description="Results up to this size (bytes) stay inline in the metadata store; larger ones go to results_url.",
    )
    result_backend: ResultBackend = Field(
        default="auto",
        description=(
            "auto: inline up to offload_threshold_bytes, else results_url; inline: always in the "
            "metadata store; blob / external: always in results_url (which must be set)."
        ),
    )

    row_level_security: bool = Field(
        default=False,
        description=(
            "Postgres only: open the stores in row-level-security mode (the url must name the "
            "application role set up by `dq-stores db enable-rls`); the database itself then "
            "restricts every transaction to its tenant and environment."
        ),
    )

    _stores: Stores | None = PrivateAttr(default=None)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # Whatever a caller passed, a repr (logs, tracebacks, the UI) shows no secret.
        for name, value in super().__repr_args__():
            if name == "results_connection_string" and value is not None:
                yield name, "***"
            elif isinstance(value, str):
                yield name, redact(value)
            else:
                yield name, value

    # opening ----------------------------------------------------------------------------------
    @property
    def offload(self) -> bool | None:
        """The ``offload`` argument of ``put_result`` that ``result_backend`` means."""
        return {"auto": None, "inline": False, "blob": True, "external": True}[self.result_backend]

    def _blob_options(self, stack: ExitStack) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.results_connection_string:
            options["connection_string"] = self.results_connection_string
        if self.blob_storage is not None:
            from dagster_azure.blob import AzureBlobStorageResource

            if not isinstance(self.blob_storage, AzureBlobStorageResource):
                raise InvalidArtifactError(
                    "blob_storage must be a dagster_azure.blob.AzureBlobStorageResource, got "
                    f"{type(self.blob_storage).__name__}",
                    field="blob_storage",
                )
            options["service_client"] = stack.enter_context(self.blob_storage.get_client())
        if len(options) > 1:
            raise InvalidArtifactError(
                "give results_connection_string or blob_storage, not both", field="blob_storage"
            )
        return options

    @contextmanager
    def open(self) -> Iterator[Stores]:
        """Open the stores this config names; close them on exit (use outside Dagster runs).

        Configuration only: ``open_stores`` opens the metadata backend and the results location
        (each with its own credentials); unset fields resolve exactly as for the CLI
        (``DQ_STORES_URL`` / ``_SCHEMA`` / ``_RESULTS_URL``).
        """
        config = StoresConfig.resolve(self.url, schema=self.schema_, results_url=self.results_url)
        with ExitStack() as stack:
            blob_options = self._blob_options(stack)
            metadata_on_blob = config.url.startswith("azure-blob://")
            results_on_blob = (config.results_url or "").startswith("azure-blob://")
            if blob_options and not (metadata_on_blob or results_on_blob):
                raise InvalidArtifactError(
                    "Azure credentials are configured but neither url nor results_url is an azure-blob:// URL",
                    field="results_url",
                )
            stores = stack.enter_context(
                open_stores(
                    config.url,
                    schema=config.schema,
                    results_url=config.results_url,
                    results_options=blob_options if results_on_blob else None,
                    offload_threshold=self.offload_threshold_bytes,
                    use_env=False,
                    **({"row_level_security": True} if self.row_level_security else {}),
                    **(blob_options if metadata_on_blob else {}),
                )
            )
            if self.offload is True and stores.job_runs.payloads is None:
                raise InvalidArtifactError(
                    f"result_backend={self.result_backend!r} needs a results location: set results_url",
                    field="results_url",
                )
            yield stores

    @contextmanager
    def yield_for_execution(self, context: InitResourceContext) -> Generator["DQStoresResource", None, None]:
        with self.open() as stores:
            self._stores = stores
            if context.log is not None:
                context.log.debug(f"DQ stores opened: {stores!r}")
            try:
                yield self
            finally:
                self._stores = None

    def get_stores(self) -> Stores:
        """The stores opened for the current run; a clear error outside one."""
        if self._stores is None:
            raise StoreError(
                "DQStoresResource is not open: use it as a Dagster resource (inside a run, sensor or "
                "schedule), or open it yourself with `with resource.open() as stores:`"
            )
        return self._stores


# -- tenant-bound store resources ---------------------------------------------------------------


class _TenantBoundResource(ConfigurableResource):  # type: ignore[type-arg]
    backend: ResourceDependency[DQStoresResource] = Field(
        description="The DQStoresResource that says where the stores live."
    )
    tenant: str | None = Field(
        default=None,
        description=(
            "The tenant this resource serves. Unset: the tenant comes from the partition key "
            "(for_context) or for_tenant(...), restricted by allowed_tenants."
        ),
    )
    environment: str = Field(
        description="The environment (e.g. dev, prod) of every artifact read or written."
    )
    allowed_tenants: list[str] | None = Field(
        default=None,
        description=(
            "Tenants a partition key may select. Unset with `tenant` set: only that tenant; unset "
            "with no `tenant`: any tenant the partition names."
        ),
    )
    tenant_dimension: str = Field(
        default="tenant",
        description="Name of the tenant dimension of a multi-partitioned asset.",
    )

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # The backend's own repr redacts; keep it out of ours to stay short.
        for name, value in super().__repr_args__():
            if name != "backend":
                yield name, value

    def setup_for_execution(self, context: InitResourceContext) -> None:
        self.policy()  # a bad tenant / allow list fails at start-up, not mid-run

    def policy(self) -> TenantPolicy:
        return TenantPolicy(self.tenant, self.environment, self.allowed_tenants)

    def scope(self, tenant: str | None = None) -> Scope:
        """The scope of ``tenant`` (default: the bound tenant), checked against the binding."""
        return self.policy().scope(tenant)

    def scope_for_context(self, context: Any) -> Scope:
        """The scope of the tenant the context's partition names (else the bound tenant)."""
        return self.policy().scope(_context_tenant(context, self.tenant_dimension))

    def _stores(self) -> Stores:
        return self.backend.get_stores()


class ContractStoreResource(_TenantBoundResource):
    """Data contracts of the bound tenant and environment (see ``ScopedContractStore``)."""

    def for_tenant(self, tenant: str | None = None) -> ScopedContractStore:
        return ScopedContractStore(self._stores().contracts, self.scope(tenant))

    def for_context(self, context: Any) -> ScopedContractStore:
        """The contracts of the tenant the current partition names."""
        return ScopedContractStore(self._stores().contracts, self.scope_for_context(context))

    def get(self, contract_id: str, version: str | None = None) -> DataContract | None:
        return self.for_tenant().get(contract_id, version)

    def require(self, contract_id: str, version: str | None = None) -> DataContract:
        return self.for_tenant().require(contract_id, version)

    def get_entry(self, contract_id: str, version: str | None = None) -> Entry[DataContract] | None:
        return self.for_tenant().get_entry(contract_id, version)

    def get_latest_for_dataset(self, dataset_type: str) -> DataContract | None:
        return self.for_tenant().get_latest_for_dataset(dataset_type)

    def require_latest_for_dataset(self, dataset_type: str) -> DataContract:
        return self.for_tenant().require_latest_for_dataset(dataset_type)

    def list(self, *, limit: int = 100, cursor: str | None = None, **filters: Any) -> Page[DataContract]:
        return self.for_tenant().list(limit=limit, cursor=cursor, **filters)

    def iter_all(self, **filters: Any) -> Iterator[DataContract]:
        return self.for_tenant().iter_all(**filters)

    def versions(self, contract_id: str) -> builtins.list[str]:
        return self.for_tenant().versions(contract_id)

    def history(self, contract_id: str, version: str) -> builtins.list[Revision]:
        return self.for_tenant().history(contract_id, version)

    def put(
        self,
        contract: DataContract | Mapping[str, Any],
        *,
        if_match: str | None = None,
        create_only: bool = False,
    ) -> str:
        return self.for_tenant().put(contract, if_match=if_match, create_only=create_only)

    def delete(self, contract_id: str, version: str | None = None, *, if_match: str | None = None) -> bool:
        return self.for_tenant().delete(contract_id, version, if_match=if_match)


class JobDefinitionStoreResource(_TenantBoundResource):
    """Job definitions (checkpoints) of the bound tenant and environment."""

    def for_tenant(self, tenant: str | None = None) -> ScopedJobDefinitionStore:
        return ScopedJobDefinitionStore(self._stores().job_definitions, self.scope(tenant))

    def for_context(self, context: Any) -> ScopedJobDefinitionStore:
        return ScopedJobDefinitionStore(self._stores().job_definitions, self.scope_for_context(context))

    def get(self, job_definition_id: str, version: str | None = None) -> JobDefinition | None:
        return self.for_tenant().get(job_definition_id, version)

    def require(self, job_definition_id: str, version: str | None = None) -> JobDefinition:
        return self.for_tenant().require(job_definition_id, version)

    def list_by_tags(self, tags: Sequence[str] | None = None) -> Iterator[JobDefinition]:
        return self.for_tenant().list_by_tags(tags)

    def list(self, *, limit: int = 100, cursor: str | None = None, **filters: Any) -> Page[JobDefinition]:
        return self.for_tenant().list(limit=limit, cursor=cursor, **filters)

    def iter_all(self, **filters: Any) -> Iterator[JobDefinition]:
        return self.for_tenant().iter_all(**filters)

    def put(
        self,
        job_definition: JobDefinition | Mapping[str, Any],
        *,
        if_match: str | None = None,
        create_only: bool = False,
    ) -> str:
        return self.for_tenant().put(job_definition, if_match=if_match, create_only=create_only)

    def delete(
        self, job_definition_id: str, version: str | None = None, *, if_match: str | None = None
    ) -> bool:
        return self.for_tenant().delete(job_definition_id, version, if_match=if_match)


class ActionProfileStoreResource(_TenantBoundResource):
    """Action profiles of the bound tenant and environment."""

    def for_tenant(self, tenant: str | None = None) -> ScopedActionProfileStore:
        return ScopedActionProfileStore(self._stores().action_profiles, self.scope(tenant))

    def for_context(self, context: Any) -> ScopedActionProfileStore:
        return ScopedActionProfileStore(self._stores().action_profiles, self.scope_for_context(context))

    def get(self, action_profile_id: str, version: str | None = None) -> ActionProfile | None:
        return self.for_tenant().get(action_profile_id, version)

    def require(self, action_profile_id: str, version: str | None = None) -> ActionProfile:
        return self.for_tenant().require(action_profile_id, version)

    def list_by_type(self, action_type: ActionType | str | None = None) -> Iterator[ActionProfile]:
        return self.for_tenant().list_by_type(action_type)

    def list(self, *, limit: int = 100, cursor: str | None = None, **filters: Any) -> Page[ActionProfile]:
        return self.for_tenant().list(limit=limit, cursor=cursor, **filters)

    def iter_all(self, **filters: Any) -> Iterator[ActionProfile]:
        return self.for_tenant().iter_all(**filters)

    def put(
        self,
        action_profile: ActionProfile | Mapping[str, Any],
        *,
        if_match: str | None = None,
        create_only: bool = False,
    ) -> str:
        return self.for_tenant().put(action_profile, if_match=if_match, create_only=create_only)

    def delete(
        self, action_profile_id: str, version: str | None = None, *, if_match: str | None = None
    ) -> bool:
        return self.for_tenant().delete(action_profile_id, version, if_match=if_match)


class JobRunStoreResource(_TenantBoundResource):
    """Job runs (and their stored results) of the bound tenant and environment."""

    def for_tenant(self, tenant: str | None = None) -> ScopedJobRunStore:
        return ScopedJobRunStore(self._stores().job_runs, self.scope(tenant))

    def for_context(self, context: Any) -> ScopedJobRunStore:
        return ScopedJobRunStore(self._stores().job_runs, self.scope_for_context(context))

    def get(self, job_id: str) -> JobRun | None:
        return self.for_tenant().get(job_id)

    def require(self, job_id: str) -> JobRun:
        return self.for_tenant().require(job_id)

    def put(
        self, run: JobRun | Mapping[str, Any], *, if_match: str | None = None, create_only: bool = False
    ) -> str:
        return self.for_tenant().put(run, if_match=if_match, create_only=create_only)

    def list(
        self,
        *,
        job_type: JobType | str | None = None,
        status: JobRunStatus | str | None = None,
        job_definition_id: str | None = None,
        dataset_type: str | None = None,
        dagster_run_id: str | None = None,
        asset_key: str | None = None,
        partition_key: str | None = None,
        since: Any = None,
        until: Any = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[JobRun]:
        return self.for_tenant().list(
            job_type=job_type,
            status=status,
            job_definition_id=job_definition_id,
            dataset_type=dataset_type,
            dagster_run_id=dagster_run_id,
            asset_key=asset_key,
            partition_key=partition_key,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
        )

    def iter_all(self) -> Iterator[JobRun]:
        return self.for_tenant().iter_all()

    def delete(self, job_id: str, *, if_match: str | None = None) -> bool:
        return self.for_tenant().delete(job_id, if_match=if_match)

    def put_result(
        self,
        job_id: str,
        result: Any,
        *,
        content_type: str | None = None,
        result_type: str | None = None,
        offload: bool | None = None,
    ) -> ResultRef:
        return self.for_tenant().put_result(
            job_id, result, content_type=content_type, result_type=result_type, offload=offload
        )

    def get_result(self, job_id: str) -> bytes:
        return self.for_tenant().get_result(job_id)

    def get_result_model(self, job_id: str) -> Any:
        return self.for_tenant().get_result_model(job_id)
