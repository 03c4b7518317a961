"""Dagster resources for the DQ stores: one backend resource, one tenant-bound resource per store.

``DQStoresResource`` says where the stores live (metadata URL, Postgres schema, results location,
offload threshold) and opens them with ``dq_stores.stores.open_stores`` when a run (or sensor,
or schedule tick) initialises it: nothing is opened at import time. The opened stores are shared,
by reference count, with every other resource, IO manager and sensor of the process that uses the
same configuration (``dq_stores.shared``), so one run holds ONE connection pool per stores
configuration; they are closed when the last user tears down. Secrets (a password in the URL, an Azure connection string)
belong in ``EnvVar`` so that Dagster's config snapshot holds only the variable's name; every
repr and log line goes through ``dq_stores.secrets.redact``.

``ContractStoreResource``, ``JobDefinitionStoreResource``, ``ActionProfileStoreResource`` and
``JobRunStoreResource`` depend on the backend resource and are bound to a tenant and environment
by config; they expose the methods of the scoped views of ``dq_stores.scoped`` without tenant
arguments, by delegation (the views are the one copy of that API). ``for_context(context)``
gives the view of the tenant named by the current partition (a tenant-partitioned asset, or a
multi-partition with a ``tenant`` dimension), refused unless the binding allows that tenant.
The tenant rules and the scoped views themselves are plain Python in ``dq_stores.scoped``; this
module only adapts them to Dagster config and contexts.
"""

# No ``from __future__ import annotations`` here: Dagster reads the config classes' annotations at
# runtime to tell resource dependencies from config fields, and string annotations hide them.

import functools
import hashlib
import inspect
import json
import os
from collections.abc import Callable, Generator, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

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

from dq_stores.config import StoresConfig, default_url
from dq_stores.errors import InvalidArtifactError, StoreError
from dq_stores.results.payloads import DEFAULT_OFFLOAD_THRESHOLD
from dq_stores.scope import Scope
from dq_stores.scoped import (
    ScopedActionProfileStore,
    ScopedContractStore,
    ScopedJobDefinitionStore,
    ScopedJobRunStore,
    ScopedStores,
    TenantNotAllowedError,
    TenantPolicy,
)
from dq_stores.secrets import redact
from dq_stores.shared import Lease, shared_stores
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
    """Where the DQ stores live. Opened when a run, sensor or schedule initialises it.

    Secrets go through ``EnvVar``: ``DQStoresResource(url=EnvVar("DQ_STORES_URL"))``.

    Dagster initialises a nested resource once per resource that depends on it; every such
    initialisation with the same configuration leases the same opened stores from the process-wide
    cache ``dq_stores.shared.shared_stores`` (one connection pool per process and configuration,
    closed when the last user tears down). So a ``memory://`` store is shared too, within a process.
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

    docs_dir: str | None = Field(
        default=None,
        description=(
            "Folder of the static data-docs site (as `dq-stores docs build` writes it). When set, the "
            "JobRunIOManager refreshes the site's pages of the output's tenant and environment after "
            "each DQ output and adds dq/report, a link to the run's page. Unset: DQ_STORES_DOCS_DIR, "
            "else no site."
        ),
    )
    docs_url: str | None = Field(
        default=None,
        description=(
            "Where the site in docs_dir is served (e.g. an Azure Blob static website); dq/report links "
            "under it. Unset: DQ_STORES_DOCS_URL, else the file:// URL of docs_dir."
        ),
    )

    _stores: Stores | None = PrivateAttr(default=None)
    _lease: Lease | None = PrivateAttr(default=None)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # Whatever a caller passed, a repr (logs, tracebacks, the UI) shows no secret.
        for name, value in super().__repr_args__():
            if name == "results_connection_string" and value is not None:
                yield name, "***"
            elif isinstance(value, str):
                yield name, redact(value)
            else:
                yield name, value

    def docs_location(self) -> tuple[Path, str] | None:
        """The data-docs folder and the URL it is served at, or None when no site is configured."""
        folder = self.docs_dir or os.environ.get("DQ_STORES_DOCS_DIR")
        if not folder:
            return None
        path = Path(folder).expanduser().resolve()
        url = self.docs_url or os.environ.get("DQ_STORES_DOCS_URL") or path.as_uri()
        return path, url.rstrip("/")

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

    def cache_key(self) -> str:
        """The key of this configuration in the shared stores cache: a hash (it covers secrets)."""
        blob = self.blob_storage
        blob_config: Any = None
        if blob is not None:
            dump = getattr(blob, "model_dump", None)
            blob_config = dump(mode="json") if callable(dump) else repr(blob)
        resolved = StoresConfig.resolve(self.url, schema=self.schema_, results_url=self.results_url)
        config = {
            "url": resolved.url,
            "schema": resolved.schema,
            "results_url": resolved.results_url,
            "results_connection_string": self.results_connection_string,
            "blob_storage": blob_config,
            "offload_threshold_bytes": self.offload_threshold_bytes,
            "result_backend": self.result_backend,
            "row_level_security": self.row_level_security,
        }
        raw = json.dumps(config, sort_keys=True, default=repr).encode()
        return "dq-stores:" + hashlib.sha256(raw).hexdigest()

    def open_unshared(self) -> Stores:
        """Open the stores this config names, not shared; the caller closes them.

        Configuration only: ``open_stores`` opens the metadata backend and the results location
        (each with its own credentials); unset fields resolve exactly as for the CLI
        (``DQ_STORES_URL`` / ``_SCHEMA`` / ``_RESULTS_URL``).
        """
        config = StoresConfig.resolve(self.url, schema=self.schema_, results_url=self.results_url)
        credentials = ExitStack()
        with ExitStack() as stack:
            stack.callback(credentials.close)
            blob_options = self._blob_options(credentials)
            metadata_on_blob = config.url.startswith("azure-blob://")
            results_on_blob = (config.results_url or "").startswith("azure-blob://")
            if blob_options and not (metadata_on_blob or results_on_blob):
                raise InvalidArtifactError(
                    "Azure credentials are configured but neither url nor results_url is an azure-blob:// URL",
                    field="results_url",
                )
            stores = open_stores(
                config.url,
                schema=config.schema,
                results_url=config.results_url,
                results_options=blob_options if results_on_blob else None,
                offload_threshold=self.offload_threshold_bytes,
                use_env=False,
                **({"row_level_security": True} if self.row_level_security else {}),
                **(blob_options if metadata_on_blob else {}),
            )
            stack.callback(stores.close)
            if self.offload is True and stores.job_runs.payloads is None:
                raise InvalidArtifactError(
                    f"result_backend={self.result_backend!r} needs a results location: set results_url",
                    field="results_url",
                )
            # Success: the Blob client the stores use (if any) closes after them, with them.
            stack.pop_all()
            stores.close_after(credentials.close)
            return stores
        raise AssertionError("unreachable")  # pragma: no cover  # ExitStack does not swallow here

    @contextmanager
    def open(self, *, shared: bool = True) -> Iterator[Stores]:
        """The stores this config names, for a ``with`` block (use outside Dagster runs).

        ``shared`` (default): leased from the process-wide cache, so the same configuration opened
        elsewhere in the process shares its connection pool; closed when the last user leaves.
        """
        if not shared:
            stores = self.open_unshared()
            try:
                yield stores
            finally:
                stores.close()
            return
        with shared_stores.acquire(self.cache_key(), self.open_unshared) as stores:
            yield stores

    @contextmanager
    def yield_for_execution(self, context: InitResourceContext) -> Generator["DQStoresResource", None, None]:
        lease = shared_stores.acquire(self.cache_key(), self.open_unshared)
        self._stores, self._lease = lease.stores, lease
        if context.log is not None:
            context.log.debug(f"DQ stores leased: {lease.stores!r}")
        try:
            yield self
        finally:
            self._stores, self._lease = None, None
            lease.release()

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

    _view: ClassVar[Callable[[ScopedStores], Any]]
    """Which of the four scoped views this resource stands for."""

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

    def stores_for_tenant(self, tenant: str | None = None) -> ScopedStores:
        """All four stores of ``tenant`` (default: the bound tenant), checked against the binding."""
        return ScopedStores(self._stores(), self.scope(tenant))

    def stores_for_context(self, context: Any) -> ScopedStores:
        """All four stores of the tenant the context's partition names."""
        return ScopedStores(self._stores(), self.scope_for_context(context))

    if TYPE_CHECKING:
        # The scoped view's methods, added by ``_delegate`` below.
        def __getattr__(self, name: str) -> Any: ...


def _delegate(view: type) -> Callable[[type[_TenantBoundResource]], type[_TenantBoundResource]]:
    """Give a resource class every public method of the scoped ``view`` class, each calling the
    view of the bound tenant (``for_tenant()``): the methods are derived, never copied by hand.
    """

    def decorate(cls: type[_TenantBoundResource]) -> type[_TenantBoundResource]:
        for name, member in inspect.getmembers(view, inspect.isfunction):
            if name.startswith("_") or hasattr(cls, name):
                continue

            def method(self: Any, *args: Any, __name: str = name, **kwargs: Any) -> Any:
                return getattr(self.for_tenant(), __name)(*args, **kwargs)

            functools.update_wrapper(method, member)
            method.__signature__ = inspect.signature(member)  # type: ignore[attr-defined]
            setattr(cls, name, method)
        return cls

    return decorate


@_delegate(ScopedContractStore)
class ContractStoreResource(_TenantBoundResource):
    """Data contracts of the bound tenant and environment: every method of
    ``dq_stores.scoped.ScopedContractStore`` (``get_latest_for_dataset("billing")``, ...).
    """

    def for_tenant(self, tenant: str | None = None) -> ScopedContractStore:
        return self.stores_for_tenant(tenant).contracts

    def for_context(self, context: Any) -> ScopedContractStore:
        """The contracts of the tenant the current partition names."""
        return self.stores_for_context(context).contracts


@_delegate(ScopedJobDefinitionStore)
class JobDefinitionStoreResource(_TenantBoundResource):
    """Job definitions (checkpoints) of the bound tenant and environment: every method of
    ``dq_stores.scoped.ScopedJobDefinitionStore``.
    """

    def for_tenant(self, tenant: str | None = None) -> ScopedJobDefinitionStore:
        return self.stores_for_tenant(tenant).job_definitions

    def for_context(self, context: Any) -> ScopedJobDefinitionStore:
        return self.stores_for_context(context).job_definitions


@_delegate(ScopedActionProfileStore)
class ActionProfileStoreResource(_TenantBoundResource):
    """Action profiles of the bound tenant and environment: every method of
    ``dq_stores.scoped.ScopedActionProfileStore``.
    """

    def for_tenant(self, tenant: str | None = None) -> ScopedActionProfileStore:
        return self.stores_for_tenant(tenant).action_profiles

    def for_context(self, context: Any) -> ScopedActionProfileStore:
        return self.stores_for_context(context).action_profiles


@_delegate(ScopedJobRunStore)
class JobRunStoreResource(_TenantBoundResource):
    """Job runs (and their stored results) of the bound tenant and environment: every method of
    ``dq_stores.scoped.ScopedJobRunStore``.
    """

    def for_tenant(self, tenant: str | None = None) -> ScopedJobRunStore:
        return self.stores_for_tenant(tenant).job_runs

    def for_context(self, context: Any) -> ScopedJobRunStore:
        return self.stores_for_context(context).job_runs
