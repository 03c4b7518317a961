"""The JobRun IO manager in real Dagster runs (``materialize``, in process) on SQLite and Postgres.

Covers: reports and cleansed DataFrames recorded as job runs and loaded back by downstream assets
(hash-verified), the UI metadata and its types, tenant partitions, refused tenants, one job run
per step however often it is retried, results offloaded to a results folder, and op (non-asset)
outputs.
"""

# No ``from __future__ import annotations``: Dagster reads asset parameter annotations at runtime.
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pytest
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetOut,
    FloatMetadataValue,
    IntMetadataValue,
    Output,
    PathMetadataValue,
    RetryPolicy,
    StaticPartitionsDefinition,
    TableMetadataValue,
    TableSchemaMetadataValue,
    TextMetadataValue,
    asset,
    job,
    materialize,
    multi_asset,
    op,
)

from dq_dagster.io_manager import JobRunIOManager
from dq_dagster.resources import DQStoresResource
from dq_dagster.scoped import TenantNotAllowedError
from dq_dagster.writer import UnsupportedOutputError, derive_job_id
from dq_stores.models import (
    CleansingReport,
    JobRunStatus,
    ProfilingSnapshot,
    RuleResult,
    ValidationReport,
)
from dq_stores.registry import open_stores

pytestmark = pytest.mark.dagster

ENV = "prod"
T0 = datetime(2024, 5, 1, 6, 0, tzinfo=UTC)


def report(tenant: str = "acme", pass_rate: float = 0.995) -> ValidationReport:
    return ValidationReport(
        tenant_id=tenant,
        environment=ENV,
        contract_id="billing-contract",
        contract_version="2.1.0",
        dataset_type="billing",
        started_at=T0,
        completed_at=T0,
        status="warning" if pass_rate < 1 else "passed",
        row_count=1000,
        rows_failed=round((1 - pass_rate) * 1000),
        pass_rate=pass_rate,
        rules=[
            RuleResult(
                rule_id="id-unique",
                rule_type="unique",
                column="id",
                checked_count=1000,
                failed_count=5,
                failure_rate=0.005,
                passed=pass_rate == 1,
                sample=["secret-customer-42"],
            )
        ],
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> DQStoresResource:
    if request.param == "sqlite":
        return DQStoresResource(url=f"sqlite:///{tmp_path}/dq.db")
    return DQStoresResource(
        url=request.getfixturevalue("pg_url"), schema=request.getfixturevalue("pg_schema")
    )


@pytest.fixture
def sqlite_stores(tmp_path: Path) -> DQStoresResource:
    return DQStoresResource(url=f"sqlite:///{tmp_path}/dq.db")


def io(stores: DQStoresResource, **binding: Any) -> dict[str, Any]:
    binding.setdefault("environment", ENV)
    return {"io_manager": JobRunIOManager(stores=stores, **binding)}


def only_materialization(result: Any, node: str) -> dict[str, Any]:
    events = result.asset_materializations_for_node(node)
    assert len(events) == 1
    return dict(events[0].metadata)


def test_validation_report_round_trip_with_ui_metadata(stores: DQStoresResource) -> None:
    loaded: dict[str, Any] = {}

    @asset
    def invoices_checked() -> ValidationReport:
        return report()

    @asset
    def downstream(invoices_checked: ValidationReport) -> None:
        loaded["report"] = invoices_checked

    result = materialize([invoices_checked, downstream], resources=io(stores, tenant="acme"))
    assert result.success
    assert loaded["report"] == report()

    meta = only_materialization(result, "invoices_checked")
    job_id = derive_job_id(result.run_id, "invoices_checked", "invoices_checked", None, "result")
    assert meta["dq/job_run_id"] == TextMetadataValue(job_id)
    assert isinstance(meta["dq/pass_rate"], FloatMetadataValue)
    assert meta["dq/pass_rate"].value == 0.995
    assert meta["dagster/row_count"] == IntMetadataValue(1000)
    assert meta["dq/contract_id"] == TextMetadataValue("billing-contract")
    assert meta["dq/contract_version"] == TextMetadataValue("2.1.0")
    assert meta["dq/status"] == TextMetadataValue("warning")
    assert isinstance(meta["dq/result_uri"], PathMetadataValue)
    assert meta["dq/result_uri"].value == f"dq-stores://acme/{ENV}/job_runs/{job_id}"
    table = meta["dq/failed_rules"]
    assert isinstance(table, TableMetadataValue)
    assert [c.name for c in table.schema.columns][:2] == ["rule_id", "rule_type"]
    assert [r.data["rule_id"] for r in table.records] == ["id-unique"]
    # Failing-value samples may be personal data: they stay in the stored report only.
    assert "secret-customer-42" not in repr(meta)

    with stores.open() as opened:
        run = opened.job_runs.get("acme", ENV, job_id)
        assert run is not None
        assert run.status == JobRunStatus.WARNING
        assert run.orchestrator is not None
        assert (run.orchestrator.run_id, run.orchestrator.asset_key) == (result.run_id, "invoices_checked")
        assert opened.job_runs.get_result_model("acme", ENV, job_id) == report()


def test_profiling_and_cleansing_reports_and_frames_round_trip(sqlite_stores: DQStoresResource) -> None:
    frame = pl.DataFrame({"id": ["a", "b", "c"], "amount": [1.0, 2.0, 3.5]})
    loaded: dict[str, Any] = {}

    @asset
    def profiled() -> ProfilingSnapshot:
        return ProfilingSnapshot(row_count=3)

    @asset
    def cleansing_report() -> CleansingReport:
        return CleansingReport(rows_in=4, rows_out=3, rows_rejected=1, rejection_reasons={"bad_id": 1})

    @asset(metadata={"dq/contract_id": "billing-contract", "dq/dataset_type": "billing"})
    def cleansed() -> pl.DataFrame:
        return frame

    @asset
    def consumer(
        profiled: ProfilingSnapshot, cleansing_report: CleansingReport, cleansed: pl.DataFrame
    ) -> None:
        loaded.update(profiled=profiled, cleansing_report=cleansing_report, cleansed=cleansed)

    @asset(ins={"cleansed": AssetIn()})
    def pandas_consumer(cleansed: pd.DataFrame) -> None:
        loaded["pandas"] = cleansed

    result = materialize(
        [profiled, cleansing_report, cleansed, consumer, pandas_consumer],
        resources=io(sqlite_stores, tenant="acme"),
    )
    assert result.success
    assert loaded["profiled"] == ProfilingSnapshot(row_count=3)
    assert loaded["cleansing_report"].rows_rejected == 1
    assert loaded["cleansed"].equals(frame)
    assert isinstance(loaded["pandas"], pd.DataFrame)
    assert list(loaded["pandas"]["amount"]) == [1.0, 2.0, 3.5]

    meta = only_materialization(result, "cleansed")
    assert meta["dagster/row_count"] == IntMetadataValue(3)
    assert meta["dq/job_type"] == TextMetadataValue("cleansing")
    assert meta["dq/contract_id"] == TextMetadataValue("billing-contract")
    assert isinstance(meta["dagster/column_schema"], TableSchemaMetadataValue)
    assert [c.name for c in meta["dagster/column_schema"].schema.columns] == ["id", "amount"]
    assert "dq/pass_rate" not in meta  # a frame has no pass rate to chart
    cleansing_meta = only_materialization(result, "cleansing_report")
    assert cleansing_meta["dq/pass_rate"] == FloatMetadataValue(0.75)
    assert isinstance(cleansing_meta["dq/rejection_reasons"], TableMetadataValue)


def test_tenant_partitions_write_and_read_their_own_tenant(stores: DQStoresResource) -> None:
    tenants = StaticPartitionsDefinition(["acme", "globex"])
    loaded: dict[str, Any] = {}

    @asset(partitions_def=tenants)
    def checked(context: AssetExecutionContext) -> ValidationReport:
        return report(tenant=context.partition_key, pass_rate=0.5 if context.partition_key == "acme" else 1.0)

    @asset(partitions_def=tenants)
    def per_tenant(context: AssetExecutionContext, checked: ValidationReport) -> None:
        loaded[context.partition_key] = checked

    @asset(ins={"checked": AssetIn()})
    def all_tenants(checked: dict[str, ValidationReport]) -> None:
        loaded["all"] = checked

    resources = io(stores, allowed_tenants=["acme", "globex"])
    for tenant in ("acme", "globex"):
        assert materialize([checked, per_tenant], partition_key=tenant, resources=resources).success
    assert loaded["acme"].tenant_id == "acme"
    assert loaded["acme"].pass_rate == 0.5
    assert loaded["globex"].tenant_id == "globex"
    assert loaded["globex"].pass_rate == 1.0
    assert materialize([checked.to_source_asset(), all_tenants], resources=resources).success
    assert {k: v.pass_rate for k, v in loaded["all"].items()} == {"acme": 0.5, "globex": 1.0}

    with stores.open() as opened:
        for tenant in ("acme", "globex"):
            runs = opened.job_runs.list(tenant, ENV, asset_key="checked").items
            assert [
                (r.tenant_id, r.orchestrator.partition_key if r.orchestrator else None) for r in runs
            ] == [(tenant, tenant)]


def test_a_partition_tenant_outside_the_binding_is_refused(sqlite_stores: DQStoresResource) -> None:
    @asset(partitions_def=StaticPartitionsDefinition(["acme", "initech"]))
    def checked(context: AssetExecutionContext) -> ValidationReport:
        return report(tenant=context.partition_key)

    resources = io(sqlite_stores, allowed_tenants=["acme"])
    with pytest.raises(TenantNotAllowedError, match="tenant 'initech' is not allowed here"):
        materialize([checked], partition_key="initech", resources=resources)
    with sqlite_stores.open() as opened:
        assert list(opened.job_runs.list_by_tenant("initech")) == []


def test_a_report_of_another_tenant_is_refused(sqlite_stores: DQStoresResource) -> None:
    @asset
    def checked() -> ValidationReport:
        return report(tenant="globex")

    from dq_stores.errors import ScopeViolationError

    with pytest.raises(ScopeViolationError, match="tenant_id 'globex'"):
        materialize([checked], resources=io(sqlite_stores, tenant="acme"))


def test_a_retried_step_keeps_one_job_run(sqlite_stores: DQStoresResource) -> None:
    @multi_asset(
        outs={"checked": AssetOut(), "loaded": AssetOut()},
        retry_policy=RetryPolicy(max_retries=2),
    )
    def flaky(context: AssetExecutionContext) -> Iterator[Output[Any]]:
        yield Output(report(), output_name="checked")  # handled (recorded) before the failure
        if context.retry_number == 0:
            raise RuntimeError("transient failure after the report was stored")
        yield Output(ProfilingSnapshot(row_count=1000), output_name="loaded")

    result = materialize([flaky], resources=io(sqlite_stores, tenant="acme"))
    assert result.success
    events = result.asset_materializations_for_node("flaky")
    ids = [e.metadata["dq/job_run_id"].value for e in events if e.asset_key.path == ["checked"]]
    assert len(ids) == 2  # one materialisation per attempt...
    assert ids[0] == ids[1]  # ...of the same job run
    with sqlite_stores.open() as opened:
        runs = opened.job_runs.list("acme", ENV, asset_key="checked").items
        assert [r.job_id for r in runs] == [ids[0]]
        assert len(opened.job_runs.list("acme", ENV, dagster_run_id=result.run_id).items) == 2


def test_large_results_go_to_the_results_folder(tmp_path: Path) -> None:
    where: dict[str, Any] = {
        "url": f"sqlite:///{tmp_path}/dq.db",
        "results_url": (tmp_path / "results").as_uri(),
    }
    offloading = DQStoresResource(**where, offload_threshold_bytes=64)
    loaded: dict[str, Any] = {}

    @asset
    def checked() -> ValidationReport:
        return report()

    @asset
    def downstream(checked: ValidationReport) -> None:
        loaded["report"] = checked

    result = materialize([checked, downstream], resources=io(offloading, tenant="acme"))
    assert result.success
    assert loaded["report"] == report()
    meta = only_materialization(result, "checked")
    assert meta["dq/result_location"] == TextMetadataValue("external")
    uri = meta["dq/result_uri"]
    assert isinstance(uri, PathMetadataValue)
    path = Path(uri.value)
    assert path.is_file()
    # In the results folder, under the store's own namespace (its identity).
    namespace = path.relative_to(tmp_path / "results").parts[0]
    assert path.is_relative_to(tmp_path / "results" / namespace / "acme" / ENV / "job_runs")

    inline = DQStoresResource(**where, offload_threshold_bytes=64, result_backend="inline")
    result = materialize([checked], resources=io(inline, tenant="acme"))
    assert only_materialization(result, "checked")["dq/result_location"] == TextMetadataValue("inline")


def test_unsupported_outputs_fail_the_step_with_a_clear_error(sqlite_stores: DQStoresResource) -> None:
    @asset
    def not_a_report() -> dict[str, int]:
        return {"rows": 1}

    with pytest.raises(UnsupportedOutputError, match="not dict"):
        materialize([not_a_report], resources=io(sqlite_stores, tenant="acme"))


def test_op_outputs_are_recorded_and_loaded_by_exact_job_id(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/dq.db"
    loaded: dict[str, Any] = {}

    @op
    def validate() -> ValidationReport:
        return report()

    @op
    def consume(checked: ValidationReport) -> None:
        loaded["report"] = checked

    @job(resource_defs=io(DQStoresResource(url=url), tenant="acme"))
    def dq_job() -> None:
        consume(validate())

    result = dq_job.execute_in_process()
    assert result.success
    assert loaded["report"] == report()
    with open_stores(url) as opened:
        job_id = derive_job_id(result.run_id, "validate", None, None, "result")
        run = opened.job_runs.get("acme", ENV, job_id)
        assert run is not None
        assert run.orchestrator is not None
        assert run.orchestrator.job_name == "dq_job"


@pytest.mark.azurite
@pytest.mark.parametrize("credentials", ["connection_string", "blob_storage_resource"])
def test_results_on_azure_blob(
    tmp_path: Path, blob_container: Any, monkeypatch: pytest.MonkeyPatch, credentials: str
) -> None:
    from datetime import timedelta

    from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas
    from dagster import EnvVar
    from dagster_azure.blob import AzureBlobStorageResource, AzureBlobStorageSASTokenCredential

    azurite = blob_container.azurite
    secret = azurite.account_key
    if credentials == "connection_string":
        monkeypatch.setenv("DQ_TEST_AZ_CONN", blob_container.connection_string)
        auth: dict[str, Any] = {"results_connection_string": EnvVar("DQ_TEST_AZ_CONN")}
    else:
        sas = generate_account_sas(
            azurite.account_name,
            azurite.account_key,
            resource_types=ResourceTypes(container=True, object=True),
            permission=AccountSasPermissions(read=True, write=True, delete=True, list=True, create=True),
            expiry=datetime.now(UTC) + timedelta(hours=1),
        )
        secret = sas.split("sig=")[1].split("&")[0]
        monkeypatch.setenv("DQ_TEST_AZ_SAS", sas)
        auth = {
            "blob_storage": AzureBlobStorageResource(
                account_url=azurite.blob_endpoint,
                credential=AzureBlobStorageSASTokenCredential(token=EnvVar("DQ_TEST_AZ_SAS")),
            )
        }
    stores = DQStoresResource(
        url=f"sqlite:///{tmp_path}/dq.db",
        results_url=blob_container.url("results"),
        result_backend="blob",
        **auth,
    )
    frame = pl.DataFrame({"id": ["a", "b"], "amount": [1.0, 2.0]})
    loaded: dict[str, Any] = {}

    @asset
    def checked() -> ValidationReport:
        return report()

    @asset
    def cleansed() -> pl.DataFrame:
        return frame

    @asset
    def downstream(checked: ValidationReport, cleansed: pl.DataFrame) -> None:
        loaded.update(checked=checked, cleansed=cleansed)

    result = materialize([checked, cleansed, downstream], resources=io(stores, tenant="acme"))
    assert result.success
    assert loaded["checked"] == report()
    assert loaded["cleansed"].equals(frame)
    names = blob_container.blob_names("results/")
    for node, ext in (("checked", "json"), ("cleansed", "parquet")):
        meta = only_materialization(result, node)
        assert meta["dq/result_location"] == TextMetadataValue("external")
        job_id = meta["dq/job_run_id"].value
        stored = [n for n in names if f"/acme/{ENV}/job_runs/{job_id}/" in n]
        assert len(stored) == 1
        assert stored[0].endswith(ext)
        assert secret not in repr(meta)
