"""Anomaly detection end to end: a ``DataQualityComponent`` profiles one tenant's billing file run
after run; the contract's ``anomaly_detection`` block follows the row count, a null ratio and a
rule's failure rate. After a normal history, a delivery three times the usual size: its WARN
check fails, the stored snapshot holds the anomaly (observed, band, history size), the job run
warns, and the job definition's ``on_anomaly`` action profile runs (a real local webhook).
"""

# No ``from __future__ import annotations``: Dagster reads asset parameter annotations at runtime.
import json
from pathlib import Path

import pytest
from dagster import AssetCheckSeverity, DagsterInstance, build_sensor_context

from dq_dagster.checks import anomaly_check_name
from dq_dagster.component import DataQualityComponent, DatasetAttributes, SourceAttributes
from dq_dagster.engine import compile_rules
from dq_dagster.examples.generator import DefectRates, billing_contract, write_billing_csv
from dq_dagster.resources import DQStoresResource
from dq_stores.models import DataContract, JobDefinition, JobRunStatus, JobType, ProfilingSnapshot
from tests.dagster.test_component import _Hook

pytestmark = pytest.mark.dagster

TENANT = "TNT-001"
ENV = "prod"


def _contract() -> tuple[DataContract, str]:
    contract = billing_contract(TENANT, ENV)
    rule_id = compile_rules(contract, "billing").rules[0].rule_id
    doc = json.loads(contract.model_dump_json(exclude_unset=True))
    doc["datasets"][0]["anomaly_detection"] = {
        "metrics": ["row_count", "customer_email.null_ratio", f"rule:{rule_id}.failure_rate"],
        "min_history": 5,
        "columns": {"customer_email": {"direction": "up"}},
    }
    return DataContract.model_validate(doc), rule_id


def _definition() -> JobDefinition:
    return JobDefinition.model_validate(
        {
            "job_definition_id": "billing-checks",
            "name": "billing checks",
            "tenant_id": TENANT,
            "environment": ENV,
            "version": "1.0.0",
            "data_contract": {"contract_id": "billing-contract"},
            "job_types": ["validation", "profiling"],
            "on_anomaly": {"action_profile_id": "hook"},
            "status": "active",
        }
    )


def test_a_spike_after_a_normal_history_warns_is_stored_and_runs_on_anomaly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path}/dq.db"
    stores = DQStoresResource(url=url)
    contract, rule_id = _contract()
    hook = _Hook()
    monkeypatch.setenv("DQ_ACTION_HOOK", hook.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    try:
        with stores.open(shared=False) as opened:
            opened.contracts.put(contract)
            opened.job_definitions.put(_definition())
            opened.action_profiles.put(
                {
                    "action_profile_id": "hook",
                    "name": "hook",
                    "tenant_id": TENANT,
                    "environment": ENV,
                    "version": "1.0.0",
                    "actions": [{"action_type": "CALL_WEBHOOK", "parameters": {"url_env": "DQ_ACTION_HOOK"}}],
                }
            )
        component = DataQualityComponent(
            datasets=[
                DatasetAttributes(
                    dataset_type="billing",
                    source=SourceAttributes(path=str(tmp_path / "{tenant}.csv")),
                    jobs=["validation", "profiling"],
                )
            ]
        )
        state = component.read_state(stores)
        assert state.datasets["billing"].anomaly[TENANT][0] == "row_count"
        defs = component.build_defs_for_state(state, backend=stores)
        job = defs.resolve_job_def("billing_dq_pipeline")
        names = {
            key: anomaly_check_name(key)
            for key in ("row_count", "customer_email.null_ratio", f"rule:{rule_id}.failure_rate")
        }
        declared = {spec.name for spec in defs.resolve_assets_def("billing_profile").check_specs}
        assert declared == set(names.values())
        sensor = defs.get_sensor_def("dq_actions_on_success")
        cursor: str | None = None
        with DagsterInstance.ephemeral() as instance:

            def tick() -> None:
                nonlocal cursor
                with build_sensor_context(
                    instance=instance,
                    cursor=cursor,
                    resources={"dq_stores": stores},
                    repository_def=defs.get_repository_def(),
                ) as context:
                    cursor = sensor.evaluate_tick(context).cursor

            tick()  # the first tick only sets the cursor
            sizes = [1000, 1012, 991, 1004, 996, 1008, 3000]
            evaluations = []
            for i, rows in enumerate(sizes):
                # Clean deliveries: validation passes, so the only thing to report is the anomaly.
                write_billing_csv(
                    tmp_path / f"{TENANT}.csv", rows, seed=i, tenant=TENANT, rates=DefectRates.none()
                )
                result = job.execute_in_process(
                    partition_key=TENANT, instance=instance, tags={"dq/job_definition_id": "billing-checks"}
                )
                assert result.success  # a WARN check never fails the run
                evaluations.append({e.check_name: e for e in result.get_asset_check_evaluations()})
                tick()
                if i < len(sizes) - 1:
                    assert hook.bodies == [], f"run {i}: no anomaly yet, on_anomaly must not run"
            spike_run = result.run_id

        # Too little history is never an alarm; the sixth run is judged and normal; the spike is not.
        for i in range(5):
            assert evaluations[i][names["row_count"]].passed
            assert "not evaluated" in (evaluations[i][names["row_count"]].description or "")
        assert evaluations[5][names["row_count"]].passed
        assert "within" in (evaluations[5][names["row_count"]].description or "")
        spike = evaluations[6][names["row_count"]]
        assert not spike.passed and spike.severity == AssetCheckSeverity.WARN
        assert spike.metadata["dq/observed"].value == 3000.0
        # The validation of the same Dagster run gives the observed failure rate.
        assert evaluations[6][names[f"rule:{rule_id}.failure_rate"]].metadata["dq/evaluated"].value is True

        with stores.open(shared=False) as opened:
            runs = opened.job_runs.list(
                TENANT, ENV, dagster_run_id=spike_run, job_type=JobType.PROFILING
            ).items
            assert len(runs) == 1
            profiling = runs[0]
            snapshot = opened.job_runs.get_result_model(TENANT, ENV, profiling.job_id)
        assert isinstance(snapshot, ProfilingSnapshot)
        assert profiling.status == JobRunStatus.WARNING
        assert profiling.summary is not None and profiling.summary.metrics["row_count"] == 3000.0
        checks = {c.key: c for c in snapshot.anomaly_checks}
        row_count = checks["row_count"]
        assert row_count.anomalous and row_count.evaluated
        assert row_count.observed == 3000.0 and row_count.history_size == 6
        assert row_count.expected_low is not None and row_count.expected_high is not None
        assert row_count.expected_low < 1000 < row_count.expected_high < 3000
        assert checks["customer_email.null_ratio"].expected_low is None  # direction up, per column
        assert not checks["customer_email.null_ratio"].anomalous

        # on_anomaly ran once, for the spike's run, with the reason.
        assert len(hook.bodies) == 1
        body = hook.bodies[0]
        assert body["event"] == "anomaly"
        assert "row_count" in json.dumps(body)
    finally:
        hook.close()


def test_anomaly_checks_without_the_component() -> None:
    from dq_dagster.checks import anomaly_check_results, build_anomaly_check_specs
    from dq_stores.models import AnomalyCheck

    specs = build_anomaly_check_specs(["row_count", "amount.null_ratio", "row_count"], "billing_profile")
    assert [s.name for s in specs] == ["anomaly_row_count", "anomaly_amount__null_ratio"]
    assert not any(s.blocking for s in specs)
    checks = [
        AnomalyCheck(
            metric="row_count",
            observed=3000.0,
            expected_low=970.0,
            expected_high=1040.0,
            history_size=6,
            anomalous=True,
        ),
    ]
    results = {
        r.check_name: r
        for r in anomaly_check_results(checks, "billing_profile", ["row_count", "amount.null_ratio"])
    }
    assert not results["anomaly_row_count"].passed
    assert results["anomaly_row_count"].severity == AssetCheckSeverity.WARN
    assert results["anomaly_row_count"].description == "3000 outside [970, 1040] learned from 6 runs"
    assert results["anomaly_amount__null_ratio"].passed  # not followed: says so, never an alarm
    assert results["anomaly_amount__null_ratio"].description == "not followed by the run's contract"
