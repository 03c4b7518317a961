"""The demo code location (``dq_dagster.definitions``: a ``DataQualityComponent`` in a ``defs/``
folder) and its bundled example artifacts.

The whole graph is materialised for every tenant partition on SQLite + a results folder and on
Postgres + Azurite; the stored validation report must count exactly the defects the generator
injected, rule by rule, and the asset checks must come out as the data says. Also: the artifacts
load with the real ``dq-stores import``, the schedule asks for runs only where a stored job
definition says so, and a missing contract fails fast instead of being retried.
"""

# No ``from __future__ import annotations``: Dagster reads asset parameter annotations at runtime.
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    AssetCheckSeverity,
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    Definitions,
    FloatMetadataValue,
    StaticPartitionsDefinition,
    TableSchemaMetadataValue,
    TextMetadataValue,
    build_sensor_context,
)

from dq_dagster.component import DataQualityComponent, DatasetAttributes, SourceAttributes
from dq_dagster.definitions import ARTIFACTS_DIR, ENVIRONMENT
from dq_dagster.engine import compile_rules
from dq_dagster.examples.generator import DefectCounts, billing_contract, generate_billing
from dq_dagster.examples.sources import RawBillingConfig, raw_billing_asset
from dq_dagster.resources import DQStoresResource
from dq_stores.models import (
    ActionProfile,
    CleansingReport,
    DataContract,
    JobDefinition,
    JobDefinitionStatus,
    JobRun,
    ProfilingSnapshot,
    ValidationReport,
)
from dq_stores.scope import Scope
from dq_stores.scoped import ScopedJobRunStore
from dq_stores.transfer import LoadedArtifact, apply_import, load_artifacts, plan_import
from dq_stores.writer import JobRunWriter

pytestmark = pytest.mark.dagster

DQ_ASSETS = ("billing_cleansed", "billing_cleansing_report", "billing_profile", "billing_validation")
TENANTS = ("TNT-001", "TNT-002")
DQ_IO_MANAGER = "dq_io_manager"
JOB = "billing_dq_pipeline"


def example_artifacts() -> list[LoadedArtifact]:
    artifacts, problems = load_artifacts([ARTIFACTS_DIR])
    assert problems == []
    return artifacts


def seed(stores: DQStoresResource) -> None:
    artifacts = example_artifacts()
    with stores.open() as opened:
        actions, problems = plan_import(opened, artifacts)
        assert problems == []
        list(apply_import(opened, actions))


def component() -> DataQualityComponent:
    return DataQualityComponent(
        datasets=[DatasetAttributes(dataset_type="billing", source=SourceAttributes(asset="raw_billing"))],
        environment=ENVIRONMENT,
    )


def demo_defs(stores: DQStoresResource, clock: Any = None) -> Definitions:
    """The demo's definitions on ``stores``: the component (state read from the stores now) and
    the raw data asset on the same tenants.
    """
    comp = component()
    state = comp.read_state(stores)
    tenants = sorted(state.datasets["billing"].tenants)
    built = comp.build_defs_for_state(state, backend=stores, clock=clock)
    return Definitions.merge(
        built, Definitions(assets=[raw_billing_asset(StaticPartitionsDefinition(tenants))])
    )


def expected_failures(defects: DefectCounts) -> dict[str, int]:
    """Failed count per rule of the bundled contract: billing_contract() plus the soft rule."""
    return {**defects.expected_failures(), "status_recorded": defects.null_statuses}


# -- the code location's shape -------------------------------------------------------------------


def test_definitions_load_with_checks_schema_retries_and_schedule(tmp_path: Path) -> None:
    stores = DQStoresResource(url=f"sqlite:///{tmp_path}/dq.db")
    seed(stores)
    defs = demo_defs(stores)
    Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {"raw_billing", *DQ_ASSETS}
    assert graph.get(AssetKey("billing_profile")).parent_keys == {AssetKey("billing_cleansed")}
    assert graph.get(AssetKey("billing_validation")).parent_keys == {AssetKey("raw_billing")}
    partitions = graph.get(AssetKey("billing_validation")).partitions_def
    assert partitions is not None and partitions.get_partition_keys() == list(TENANTS)

    contract = next(a.model for a in example_artifacts() if isinstance(a.model, DataContract))
    rules = compile_rules(contract, "billing").rules
    cleansing = next(
        a
        for a in defs.assets
        if isinstance(a, type(defs.assets[0])) and AssetKey("billing_cleansed") in a.keys
    )  # type: ignore[union-attr,index,arg-type]
    checks = {k.name: k for k in cleansing.check_keys}
    assert len(checks) == len(rules)
    assert {k.asset_key for k in checks.values()} == {AssetKey("billing_cleansed")}
    specs = {s.name: s for s in cleansing.check_specs}
    assert specs["primary_key__unique"].blocking and not specs["status_recorded"].blocking

    for asset in defs.assets:  # type: ignore[union-attr]
        if AssetKey("raw_billing") in asset.keys:
            continue
        assert asset.op.retry_policy is not None and asset.op.retry_policy.max_retries >= 1
        for key in asset.keys:
            assert asset.get_io_manager_key_for_asset_key(key) == DQ_IO_MANAGER
    schema = cleansing.specs_by_key[AssetKey("billing_cleansed")].metadata["dagster/column_schema"]
    assert [c.name for c in schema.columns] == [c.column_id for c in contract.datasets[0].columns]

    sensors = {s.name for s in defs.get_repository_def().sensor_defs}
    assert {"dq_scheduled_job_definitions", "dq_actions_on_success", "dq_actions_on_failure"} <= sensors
    assert not list(defs.get_repository_def().schedule_defs)  # the store drives runs, not code
    job = defs.resolve_job_def(JOB)
    assert job.asset_layer.executable_asset_keys == {AssetKey(k) for k in ("raw_billing", *DQ_ASSETS)}


def test_store_location_comes_from_env_vars_by_name_only(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "postgresql+psycopg://dq:s3cret@db.internal/dq"
    monkeypatch.setenv("DQ_STORES_URL", secret)
    monkeypatch.setenv("DQ_STORES_RESULTS_URL", "file:///srv/dq")
    monkeypatch.delenv("DQ_STORES_SCHEMA", raising=False)
    stores = component().stores_resource()
    assert stores.url == "DQ_STORES_URL" and getattr(stores.url, "env_var_name", None) == "DQ_STORES_URL"
    assert stores.schema_ is None and "s3cret" not in repr(stores)
    assert component().stores_resource(resolved=True).url == secret
    monkeypatch.delenv("DQ_STORES_URL")
    monkeypatch.delenv("DQ_STORES_RESULTS_URL")
    default = component().stores_resource()
    assert default.url is None and default.results_url is None


# -- the bundled artifacts ---------------------------------------------------------------------------


def test_bundled_artifacts_match_the_generator_contract() -> None:
    models = [a.model for a in example_artifacts()]
    assert {(m.tenant_id, m.environment) for m in models} == {(t, ENVIRONMENT) for t in TENANTS}
    base = [r.rule_id for r in compile_rules(billing_contract(), "billing").rules]
    for tenant in TENANTS:
        mine = [m for m in models if m.tenant_id == tenant]
        contract = next(m for m in mine if isinstance(m, DataContract))
        rules = compile_rules(contract, "billing").rules
        assert [r.rule_id for r in rules] == [*base, "status_recorded"]
        assert [r.severity for r in rules if r.rule_id == "status_recorded"] == ["soft"]
        definitions = {m.job_definition_id: m for m in mine if isinstance(m, JobDefinition)}
        assert definitions["billing-daily-checks"].trigger.trigger_type == "EXTERNAL_EVENT"
        assert definitions["billing-daily-profiling"].trigger.trigger_type == "SCHEDULED"
        profiles = {m.action_profile_id: m for m in mine if isinstance(m, ActionProfile)}
        referenced = {
            ref.action_profile_id
            for d in definitions.values()
            for ref in (d.on_success, d.on_failure, d.on_anomaly)
            if ref is not None
        }
        assert referenced <= set(profiles)
        webhook = next(a for a in profiles["alerts-anomaly-v1"].actions if a.action_type == "CALL_WEBHOOK")
        # A webhook URL can be a secret: the artifact names the variable, never the URL.
        assert webhook.parameters == {
            "url_env": "DQ_ACTION_WEBHOOK_URL",
            "method": "POST",
            "timeout_seconds": 10,
        }


def test_bundled_artifacts_load_with_the_dq_stores_cli(tmp_path: Path) -> None:
    cli = Path(sys.executable).with_name("dq-stores")
    url = f"sqlite:///{tmp_path}/cli/dq.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DQ_STORES_")}

    def run(*args: str) -> str:
        done = subprocess.run(
            [str(cli), "--url", url, *args], capture_output=True, text=True, env=env, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "12 created, 0 updated, 0 unchanged" in run("import", str(ARTIFACTS_DIR))
    assert "0 created, 0 updated, 12 unchanged" in run("import", str(ARTIFACTS_DIR))
    # Read back through the store API (each CLI process costs a second of start-up).
    with DQStoresResource(url=url).open() as stores:
        for tenant in TENANTS:
            contract = stores.contracts.get_latest_for_dataset(tenant, ENVIRONMENT, "billing")
            assert contract is not None and contract.version == "2.1.0"
            scheduled = stores.job_definitions.list(tenant, ENVIRONMENT, trigger_type="SCHEDULED").items
            assert [d.job_definition_id for d in scheduled] == ["billing-daily-profiling"]
            webhooks = list(stores.action_profiles.list_by_type(tenant, ENVIRONMENT, "CALL_WEBHOOK"))
            assert [p.action_profile_id for p in webhooks] == ["alerts-anomaly-v1"]


# -- the whole graph ----------------------------------------------------------------------------------


@dataclass
class Backend:
    stores: DQStoresResource
    uri_part: str
    """What the URI of a result in the results location contains."""
    blob_names: Any = None


@pytest.fixture(
    params=[
        "sqlite+files",
        pytest.param("postgres+azurite", marks=[pytest.mark.postgres, pytest.mark.azurite]),
    ]
)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite+files":
        yield Backend(
            DQStoresResource(url=f"sqlite:///{tmp_path}/dq.db", results_url=f"file://{tmp_path}/results"),
            f"file://{tmp_path.resolve()}/results/",
        )
        return
    container = request.getfixturevalue("blob_container")
    stores = DQStoresResource(
        url=request.getfixturevalue("pg_url"),
        schema=request.getfixturevalue("pg_schema"),
        results_url=container.url("results"),
        results_connection_string=container.connection_string,
    )
    yield Backend(stores, f"/{container.name}/results/", lambda: container.blob_names("results"))


def by_asset(runs: list[JobRun]) -> dict[str, JobRun]:
    found: dict[str, JobRun] = {}
    for run in runs:
        assert run.orchestrator is not None and run.orchestrator.asset_key is not None
        assert run.orchestrator.asset_key not in found, "one job run per asset and run"
        found[run.orchestrator.asset_key] = run
    return found


def test_whole_graph_for_every_tenant(backend: Backend) -> None:
    seed(backend.stores)
    config = RawBillingConfig()
    job = demo_defs(backend.stores).resolve_job_def(JOB)
    with DagsterInstance.ephemeral() as instance:
        results = {t: job.execute_in_process(partition_key=t, instance=instance) for t in TENANTS}

    with backend.stores.open() as stores:
        external = 0
        for tenant, result in results.items():
            assert result.success
            _, defects = generate_billing(config.rows, config.seed, tenant)
            runs = list(stores.job_runs.list_by_tenant(tenant, ENVIRONMENT))
            # Tenant isolation: each partition's runs are in its own scope, and only there.
            assert {r.orchestrator.run_id for r in runs if r.orchestrator} == {result.run_id}
            assert {r.orchestrator.partition_key for r in runs if r.orchestrator} == {tenant}
            recorded = by_asset(runs)
            assert set(recorded) == set(DQ_ASSETS)

            writer = JobRunWriter(ScopedJobRunStore(stores.job_runs, Scope(tenant, ENVIRONMENT)))

            def report(asset: str, writer: JobRunWriter = writer, runs: dict[str, JobRun] = recorded) -> Any:
                return writer.read(runs[asset].job_id)  # hash-verified

            # The validation report of the raw delivery counts every injected defect, rule by rule.
            validation: ValidationReport = report("billing_validation")
            expected = expected_failures(defects)
            assert {r.rule_id: r.failed_count for r in validation.rules} == {
                r.rule_id: expected.get(r.rule_id, 0) for r in validation.rules
            }
            assert set(expected) <= {r.rule_id for r in validation.rules}
            assert validation.row_count == defects.rows
            assert validation.rows_failed == defects.rows_failing_hard_rules
            assert (validation.tenant_id, validation.contract_id, validation.contract_version) == (
                tenant,
                "billing-contract",
                "2.1.0",
            )
            assert str(recorded["billing_validation"].status) == "failed"
            email = next(r for r in validation.rules if r.rule_id == "customer_email.regex")
            assert email.sample and email.sample_masked  # PII samples are masked in the report

            # Cleansing: duplicates and null keys out, every other hard-rule failure quarantined.
            cleansing: CleansingReport = report("billing_cleansing_report")
            quarantined = {
                "invoice_id.regex": defects.malformed_invoice_ids,
                "customer_email.not_null": defects.null_emails,
                "customer_email.regex": defects.bad_emails,
                "customer_email.max_length": defects.long_emails,
                "currency.allowed_values": defects.unknown_currencies,
                "gross_amount.min_value": defects.negative_amounts,
                "net_amount.not_null": defects.null_net_amounts,
                "net_equals_gross_minus_tax": defects.net_mismatches,
            }
            assert cleansing.rejection_reasons == {
                **defects.expected_cleansing(),
                **{f"hard_rule:{rule}": n for rule, n in quarantined.items()},
            }
            rejected = sum(defects.expected_cleansing().values()) + sum(quarantined.values())
            assert (cleansing.rows_in, cleansing.rows_rejected) == (defects.rows, rejected)
            assert cleansing.rows_out == defects.rows - rejected

            cleansed_run = recorded["billing_cleansed"]
            assert cleansed_run.result is not None and cleansed_run.result.location == "external"
            assert backend.uri_part in (cleansed_run.result.uri or "")
            external += 1
            cleansed = report("billing_cleansed")
            assert cleansed.height == cleansing.rows_out

            snapshot: ProfilingSnapshot = report("billing_profile")
            assert snapshot.row_count == cleansing.rows_out
            assert [(a.column, a.metric) for a in snapshot.anomalies] == [("status", "null_ratio")]
            assert str(recorded["billing_profile"].status) == "warning"
            # Launched with only a partition (no dq/job_definition_id tag): the tenant has two
            # active definitions for billing and none is MANUAL, so none is recorded (never a
            # hard-coded one); a launch with the tag records that one (test_component.py).
            assert {r.job_definition_id for r in recorded.values()} == {None}

            # Asset checks on the cleansed data: every hard rule holds; the soft one reports reality.
            evaluations = result.get_asset_check_evaluations()
            assert len(evaluations) == len(validation.rules)
            failed = [e for e in evaluations if not e.passed]
            assert [(e.check_name, e.severity) for e in failed] == [
                ("status_recorded", AssetCheckSeverity.WARN)
            ]
            assert failed[0].metadata["failed_count"].value == defects.null_statuses
            assert failed[0].metadata["failure_rate"].value == pytest.approx(
                defects.null_statuses / cleansing.rows_out
            )

            # UI metadata: job run id and a float pass rate on every DQ report, the next actions.
            for asset in DQ_ASSETS:
                node = "billing_cleansing" if asset.startswith("billing_cleans") else asset
                events = [
                    e for e in result.asset_materializations_for_node(node) if e.asset_key == AssetKey(asset)
                ]
                assert len(events) == 1
                meta = events[0].metadata
                run = recorded[asset]
                assert meta["dq/job_run_id"] == TextMetadataValue(run.job_id)
                assert meta["dq/tenant"] == TextMetadataValue(tenant)
                if asset != "billing_cleansed":
                    assert isinstance(meta["dq/pass_rate"], FloatMetadataValue)
                    assert run.summary is not None and meta["dq/pass_rate"].value == run.summary.pass_rate
            meta = result.asset_materializations_for_node("billing_validation")[0].metadata
            assert meta["dq/pass_rate"].value == pytest.approx(
                1 - defects.rows_failing_hard_rules / defects.rows
            )
            cleansed_meta = next(
                e.metadata
                for e in result.asset_materializations_for_node("billing_cleansing")
                if e.asset_key == AssetKey("billing_cleansed")
            )
            assert isinstance(cleansed_meta["dagster/column_schema"], TableSchemaMetadataValue)
            assert cleansed_meta["dq/rows_quarantined"].value == sum(quarantined.values())
    if backend.blob_names is not None:
        assert len(backend.blob_names()) >= external


# -- failures and the schedule ----------------------------------------------------------------------


def test_missing_contract_fails_fast_without_retries(tmp_path: Path) -> None:
    stores = DQStoresResource(url=f"sqlite:///{tmp_path}/dq.db")
    seed(stores)
    job = demo_defs(stores).resolve_job_def(JOB)
    # The contract disappears after the code location loaded (e.g. deleted by hand).
    with stores.open() as opened:
        assert opened.contracts.delete("TNT-002", ENVIRONMENT, "billing-contract")
    with DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(partition_key="TNT-002", instance=instance, raise_on_error=False)
    assert not result.success
    failures = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    assert {e.step_key for e in failures} == {"billing_cleansing", "billing_validation"}
    assert all(
        "no contract for dataset type 'billing' in TNT-002/prod" in str(e.step_failure_data.error)
        for e in failures
    )
    assert not [e for e in result.all_events if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY]


def test_stored_profiling_definition_drives_the_demo_sensor(tmp_path: Path) -> None:
    stores = DQStoresResource(url=f"sqlite:///{tmp_path}/dq.db")
    seed(stores)
    now = {"t": datetime(2024, 5, 2, 5, 59, tzinfo=UTC)}
    local_defs = demo_defs(stores, clock=lambda: now["t"])
    sensor = local_defs.get_sensor_def("dq_scheduled_job_definitions")
    cursor: str | None = None

    def tick(instance: DagsterInstance) -> Any:
        nonlocal cursor
        with build_sensor_context(
            instance=instance,
            cursor=cursor,
            resources={"dq_stores": stores},
            repository_def=local_defs.get_repository_def(),
        ) as context:
            data = sensor.evaluate_tick(context)
        cursor = data.cursor
        return data

    with DagsterInstance.ephemeral() as instance:
        assert not tick(instance).run_requests  # first sight: no backfill
        now["t"] = datetime(2024, 5, 2, 6, 0, 30, tzinfo=UTC)  # the bundled cron: 0 6 * * * UTC
        data = tick(instance)
        requests = sorted(data.run_requests, key=lambda r: r.partition_key or "")
        assert [r.partition_key for r in requests] == ["TNT-001", "TNT-002"]
        assert all(r.tags["dq/job_definition_id"] == "billing-daily-profiling" for r in requests)
        assert all(r.asset_selection == [AssetKey("billing_profile")] for r in requests)
        assert not tick(instance).run_requests  # the same time never runs twice

        # Retiring TNT-001's profiling definition in the store stops it at the next due time.
        with stores.open() as opened:
            current = opened.job_definitions.require("TNT-001", ENVIRONMENT, "billing-daily-profiling")
            opened.job_definitions.put(current.model_copy(update={"status": JobDefinitionStatus.RETIRED}))
        now["t"] = datetime(2024, 5, 3, 6, 0, 30, tzinfo=UTC)
        assert [r.partition_key for r in tick(instance).run_requests] == ["TNT-002"]
