"""``JobRunIOManager``: every validation / cleansing / profiling output becomes a stored job run.

A thin Dagster layer over ``dq_stores.writer.JobRunWriter`` (which holds the logic and is tested
without Dagster): ``handle_output`` turns the output context into an ``OutputOrigin`` and a tenant
scope (the bound tenant, or the one the partition names), lets the writer record the run and its
result, and attaches UI metadata (job run id, result location, pass rate, row count, failed-rule
table, contract id and version; with a data-docs folder configured on the stores resource, the
refreshed site's run page as ``dq/report``); ``load_input`` reads the newest stored result of the upstream
asset and partition back, hash-verified. Metadata never holds a secret: URIs are redacted and
failing-value samples (possible personal data) are left out.
"""

# No ``from __future__ import annotations`` here: Dagster reads the config classes' annotations at
# runtime to tell resource dependencies from config fields, and string annotations hide them.

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from dagster import (
    ConfigurableIOManager,
    InputContext,
    MetadataValue,
    OutputContext,
    ResourceDependency,
    TableColumn,
    TableRecord,
    TableSchema,
)
from pydantic import Field

from dq_dagster.resources import DQStoresResource, partition_tenant
from dq_stores.docs import build_site, run_page_path
from dq_stores.errors import StoreError
from dq_stores.scope import Scope
from dq_stores.scoped import ScopedJobRunStore, TenantPolicy
from dq_stores.secrets import redact
from dq_stores.writer import FrameLibrary, JobRunWriter, OutputOrigin, WrittenRun

__all__ = ["JobRunIOManager", "output_metadata"]


def _result_uri(written: WrittenRun) -> MetadataValue[Any]:
    ref = written.result
    run = written.job_run
    if ref.location == "inline" or not ref.uri:
        # Inline results have no URI of their own; name where they live in the store's terms.
        return MetadataValue.path(f"dq-stores://{run.tenant_id}/{run.environment}/job_runs/{run.job_id}")
    parts = urlsplit(ref.uri)
    if parts.scheme == "file":
        return MetadataValue.path(unquote(parts.path))
    return MetadataValue.url(redact(ref.uri))


def output_metadata(written: WrittenRun) -> dict[str, MetadataValue[Any]]:
    """The UI metadata of a recorded output (plain values from the writer -> Dagster values)."""
    run = written.job_run
    meta: dict[str, MetadataValue[Any]] = {
        "dq/job_run_id": MetadataValue.text(run.job_id),
        "dq/job_type": MetadataValue.text(str(run.job_type)),
        "dq/status": MetadataValue.text(str(run.status)),
        "dq/tenant": MetadataValue.text(run.tenant_id),
        "dq/environment": MetadataValue.text(run.environment),
        "dq/result_uri": _result_uri(written),
        "dq/result_location": MetadataValue.text(written.result.location),
        "dq/result_sha256": MetadataValue.text(written.result.sha256),
        "dq/result_size_bytes": MetadataValue.int(written.result.size_bytes),
        **(
            {"dq/engine": MetadataValue.text(str(run.metadata["engine"]))}
            if isinstance(run.metadata.get("engine"), str)
            else {}
        ),
    }
    if written.pass_rate is not None:
        meta["dq/pass_rate"] = MetadataValue.float(float(written.pass_rate))
    if written.row_count is not None:
        meta["dagster/row_count"] = MetadataValue.int(written.row_count)
    if run.contract is not None:
        meta["dq/contract_id"] = MetadataValue.text(run.contract.contract_id)
        if run.contract.version is not None:
            meta["dq/contract_version"] = MetadataValue.text(run.contract.version)
    if run.dataset_type is not None:
        meta["dq/dataset_type"] = MetadataValue.text(run.dataset_type)
    if run.summary is not None and run.summary.rules_total is not None:
        meta["dq/rules_total"] = MetadataValue.int(run.summary.rules_total)
        meta["dq/rules_failed"] = MetadataValue.int(run.summary.rules_failed or 0)
    table = written.table
    if table is not None:
        key = f"dq/{table.name}"
        meta[key] = MetadataValue.table(
            records=[TableRecord(dict(row)) for row in table.rows],
            schema=TableSchema(columns=[TableColumn(name, type_) for name, type_ in table.columns]),
        )
        if table.total > len(table.rows):
            meta[key + "_total"] = MetadataValue.int(table.total)
    if written.columns:
        meta["dagster/column_schema"] = MetadataValue.table_schema(
            TableSchema(columns=[TableColumn(name, dtype) for name, dtype in written.columns])
        )
    return meta


def _frame_library(context: InputContext) -> FrameLibrary | None:
    """The DataFrame library the input is annotated with (``None``: as written)."""
    typing_type = getattr(context.dagster_type, "typing_type", None)
    module = getattr(typing_type, "__module__", "") or ""
    if module.split(".")[0] == "polars":
        return "polars"
    if module.split(".")[0] == "pandas":
        return "pandas"
    return None


def _run_tags(context: OutputContext) -> Mapping[str, str]:
    """The tags of the run producing the output ({} when the context has no run, e.g. in tests)."""
    try:
        step = context.step_context
    except Exception:  # no step context (build_output_context): no run tags to read
        return {}
    return step.dagster_run.tags or {}


def _str_meta(metadata: Mapping[str, Any], key: str) -> str | None:
    value = metadata.get(key)
    value = getattr(value, "value", value)  # a MetadataValue.text(...) or a plain string
    return value if isinstance(value, str) and value else None


class JobRunIOManager(ConfigurableIOManager):
    """Stores each ValidationReport, CleansingReport, ProfilingSnapshot or cleansed DataFrame an
    asset returns as a job run (with its result inline or in the results location) and loads
    them back for downstream assets.

    Contract and dataset of a DataFrame output can be given as asset metadata ``dq/contract_id``,
    ``dq/contract_version``, ``dq/dataset_type``. The job definition a run serves comes from the
    run's ``dq/job_definition_id`` tag (set by the sensors and by manual launches), else from
    asset metadata ``dq/job_definition_id``; an ``Output``'s own metadata ``dq/job_definition_id`` wins
    (what ``DataQualityComponent`` sets after resolving a launch without the tag).
    """

    stores: ResourceDependency[DQStoresResource] = Field(
        description="The DQStoresResource that says where job runs and results are stored."
    )
    tenant: str | None = Field(
        default=None,
        description="Tenant of every output; unset: the tenant the output's partition key names.",
    )
    environment: str = Field(description="Environment (e.g. dev, prod) of every job run written or read.")
    allowed_tenants: list[str] | None = Field(
        default=None,
        description=(
            "Tenants a partition key may select. Unset with `tenant` set: only that tenant; unset "
            "with no `tenant`: any tenant the partition names."
        ),
    )
    tenant_dimension: str = Field(
        default="tenant", description="Name of the tenant dimension of a multi-partitioned asset."
    )

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            if name != "stores":
                yield name, value

    def _policy(self) -> TenantPolicy:
        return TenantPolicy(self.tenant, self.environment, self.allowed_tenants)

    def _writer(self, scope: Scope) -> JobRunWriter:
        job_runs = ScopedJobRunStore(self.stores.get_stores().job_runs, scope)
        return JobRunWriter(job_runs, offload=self.stores.offload)

    # output -----------------------------------------------------------------------------------
    def handle_output(self, context: OutputContext, obj: Any) -> None:
        if obj is None:
            # An asset that returns nothing has no DQ result to record.
            return
        asset_key: str | None = None
        partition_key: str | None = None
        partitions_def = None
        if context.has_asset_key:
            asset_key = context.asset_key.to_user_string()
        if context.has_asset_partitions:
            keys = list(context.asset_partition_keys)
            if len(keys) != 1:
                raise ValueError(
                    f"{asset_key}: one output spans {len(keys)} partitions; the JobRun IO manager "
                    "records one job run per partition, so materialise partitions one at a time"
                )
            partition_key, partitions_def = keys[0], context.asset_partitions_def
        elif context.has_partition_key:
            partition_key = context.partition_key
        tenant = partition_tenant(partition_key, partitions_def, self.tenant_dimension)
        scope = self._policy().scope(tenant)
        origin = OutputOrigin(
            run_id=context.run_id,
            step_key=context.step_key,
            asset_key=asset_key,
            partition_key=str(partition_key) if partition_key is not None else None,
            output_name=context.name,
            job_name=context.job_name,
        )
        meta = context.definition_metadata or {}
        tags = _run_tags(context)
        written = self._writer(scope).write(
            obj,
            origin,
            contract_id=_str_meta(meta, "dq/contract_id"),
            contract_version=_str_meta(meta, "dq/contract_version"),
            dataset_type=_str_meta(meta, "dq/dataset_type"),
            job_definition_id=_str_meta(context.output_metadata or {}, "dq/job_definition_id")
            or tags.get("dq/job_definition_id")
            or _str_meta(meta, "dq/job_definition_id"),
        )
        if written.replaced_status is not None:
            context.log.warning(
                f"job run {written.job_id}: a retry ended {written.job_run.status}, replacing the "
                f"earlier attempt's {written.replaced_status}"
            )
        meta_out = output_metadata(written)
        report = self._refresh_docs(context, scope, written)
        if report is not None:
            meta_out["dq/report"] = MetadataValue.url(report)
        context.add_output_metadata(meta_out)

    def _refresh_docs(self, context: OutputContext, scope: Scope, written: WrittenRun) -> str | None:
        """Refresh the data-docs pages of ``scope`` (incremental: the new run's page, its dataset,
        the scope and the index) and return the URL of the run's page; None without a site.

        Here rather than in a sensor or an asset: the link is attached to the very materialization
        whose page it names, and that page exists when the UI shows the link; the refresh costs
        one listing of the scope's run records (bench row 16b) and needs no daemon. A failure is
        logged, never fails the DQ output: the site can be rebuilt (``dq-stores docs build``).
        """
        location = self.stores.docs_location()
        if location is None:
            return None
        folder, base_url = location
        try:
            build_site(self.stores.get_stores(), folder, tenant=scope.tenant, environment=scope.environment)
        except (StoreError, OSError) as exc:
            context.log.warning(f"data docs in {folder} not refreshed: {exc}")
            return None
        return f"{base_url}/{run_page_path(scope.tenant, scope.environment, written.job_id)}"

    # input ------------------------------------------------------------------------------------
    def load_input(self, context: InputContext) -> Any:
        frame = _frame_library(context)
        policy = self._policy()
        if not context.has_asset_key:
            upstream = context.upstream_output
            if upstream is None:
                raise ValueError("JobRunIOManager loads upstream outputs only (no upstream output here)")
            partition_key = context.partition_key if context.has_partition_key else None
            scope = policy.scope(partition_tenant(partition_key, None, self.tenant_dimension))
            origin = OutputOrigin(
                run_id=upstream.run_id,
                step_key=upstream.step_key,
                partition_key=partition_key,
                output_name=upstream.name,
            )
            return self._writer(scope).read(origin.job_id, frame=frame)

        asset_key = context.asset_key.to_user_string()
        if not context.has_asset_partitions:
            return self._writer(policy.scope(None)).read_latest(asset_key, None, frame=frame)
        partitions_def = context.asset_partitions_def
        keys = list(context.asset_partition_keys)

        def load(key: str) -> Any:
            scope = policy.scope(partition_tenant(key, partitions_def, self.tenant_dimension))
            return self._writer(scope).read_latest(asset_key, str(key), frame=frame)

        if len(keys) == 1:
            return load(keys[0])
        # Several upstream partitions (e.g. all tenants): Dagster's convention is a dict by key.
        return {str(key): load(key) for key in keys}
