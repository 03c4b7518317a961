"""Unit tests of the canonical models: the fixtures validate and round-trip byte-identically,
unknown fields are refused with the field named (nested too), model rules hold."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pydantic
import pytest

from dq_stores.canonical import canonical_json
from dq_stores.errors import InvalidArtifactError
from dq_stores.kinds import KINDS
from dq_stores.models import (
    ALLOWED_TRANSITIONS,
    ActionProfile,
    Checkpoint,
    ColumnContract,
    DataContract,
    JobDefinition,
    JobRun,
    JobRunStatus,
    RunSummary,
)
from dq_stores.models.job_runs import allowed_previous, check_transition
from dq_stores.testing import FIXTURE_FILES, load_fixture, make_contract, make_run

SHARED_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "canonical"


def _refusal(model: type[pydantic.BaseModel], document: dict[str, Any]) -> InvalidArtifactError:
    with pytest.raises(pydantic.ValidationError) as exc_info:
        model.model_validate(document)
    return InvalidArtifactError.from_pydantic(exc_info.value, what="test document")


# -- fixtures ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(FIXTURE_FILES))
def test_fixture_validates_and_round_trips(kind: str) -> None:
    document = load_fixture(kind)
    model = KINDS[kind].model.model_validate(document)
    encoded = canonical_json(model)
    assert encoded == canonical_json(document)
    again = KINDS[kind].model.model_validate_json(encoded)
    assert again == model
    assert canonical_json(again) == encoded


@pytest.mark.parametrize("kind", sorted(FIXTURE_FILES))
def test_fixture_can_move_scope(kind: str) -> None:
    document = load_fixture(kind, tenant="acme", environment="qa")
    model = KINDS[kind].model.model_validate(document)
    assert (model.tenant_id, model.environment) == ("acme", "qa")
    if isinstance(model, DataContract):
        assert {(d.tenant_id, d.environment) for d in model.datasets} == {("acme", "qa")}


@pytest.mark.parametrize("name", sorted(p.name for p in SHARED_FIXTURES.glob("*.json")) or ["<none>"])
def test_packaged_fixtures_match_the_shared_ones(name: str) -> None:
    if name == "<none>":
        pytest.skip(f"no shared fixtures at {SHARED_FIXTURES} (outside the dq-stores workspace)")
    packaged = Path(__file__).resolve().parents[1] / "dq_stores" / "testing" / "fixtures" / name
    assert json.loads(packaged.read_text()) == json.loads((SHARED_FIXTURES / name).read_text())


# -- unknown fields ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "path", "field"),
    [
        ("contracts", (), "bogus"),
        ("contracts", ("lifecycle",), "lifecycle.bogus"),
        ("contracts", ("datasets", 0), "datasets.0.bogus"),
        ("contracts", ("datasets", 0, "columns", 3), "datasets.0.columns.3.bogus"),
        ("contracts", ("datasets", 0, "columns", 0, "constraints"), "datasets.0.columns.0.constraints.bogus"),
        ("contracts", ("datasets", 0, "quality_slos", 0), "datasets.0.quality_slos.0.bogus"),
        ("job_definitions", (), "bogus"),
        ("job_definitions", ("data_contract",), "data_contract.bogus"),
        ("job_definitions", ("on_failure",), "on_failure.bogus"),
        ("action_profiles", ("actions", 1), "actions.1.bogus"),
        ("job_runs", ("summary",), "summary.bogus"),
        ("job_runs", ("orchestrator",), "orchestrator.bogus"),
        ("job_runs", ("actions", 0), "actions.0.bogus"),
    ],
)
def test_unknown_fields_are_refused_with_their_path(kind: str, path: tuple[Any, ...], field: str) -> None:
    document = load_fixture(kind)
    target: Any = document
    for part in path:
        target = target[part]
    target["bogus"] = 1
    error = _refusal(KINDS[kind].model, document)
    assert error.field == field
    assert (field, "unknown field") in error.errors
    assert field in str(error)


def test_unknown_field_inside_a_trigger_is_named() -> None:
    document = load_fixture("job_definitions")
    document["trigger"]["bogus"] = 1
    error = _refusal(JobDefinition, document)
    # pydantic puts the union tag into the path (trigger.EXTERNAL_EVENT.bogus).
    assert error.field is not None
    assert error.field.startswith("trigger.")
    assert error.field.endswith(".bogus")


def test_every_problem_is_reported() -> None:
    document = load_fixture("contracts")
    document["bogus_a"] = 1
    document["datasets"][0]["bogus_b"] = 2
    document["version"] = "../1"
    error = _refusal(DataContract, document)
    fields = {f for f, _ in error.errors}
    assert {"bogus_a", "datasets.0.bogus_b", "version"} <= fields


def test_free_form_maps_accept_any_keys() -> None:
    document = load_fixture("action_profiles")
    document["metadata"] = {"anything": {"nested": [1, None]}, "Ünïcode": True}
    document["actions"][0]["parameters"]["new_option"] = "x"
    model = ActionProfile.model_validate(document)
    assert canonical_json(model) == canonical_json(document)


# -- model rules -------------------------------------------------------------------------------


def test_dataset_contracts_must_share_the_contract_scope() -> None:
    document = load_fixture("contracts")
    document["datasets"][0]["tenant_id"] = "someone-else"
    error = _refusal(DataContract, document)
    assert "datasets.0" in str(error)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"primary_keys": ["not_a_column"]}, "datasets.0"),
        ({"dataset_type": ""}, "datasets.0.dataset_type"),
        ({"version": "1/2"}, "datasets.0.version"),
    ],
)
def test_dataset_contract_rules(change: dict[str, Any], field: str) -> None:
    document = load_fixture("contracts")
    document["datasets"][0].update(change)
    assert _refusal(DataContract, document).field == field


def test_column_ids_are_unique() -> None:
    document = load_fixture("contracts")
    columns = document["datasets"][0]["columns"]
    columns.append(dict(columns[0]))
    assert "unique" in str(_refusal(DataContract, document))


@pytest.mark.parametrize(
    ("trigger", "field"),
    [
        ({"trigger_type": "SCHEDULED", "cron": "every day"}, "trigger.SCHEDULED.cron"),
        ({"trigger_type": "SCHEDULED", "cron": "0 6 * * * *"}, "trigger.SCHEDULED.cron"),
        (
            {"trigger_type": "SCHEDULED", "cron": "0 6 * * *", "timezone": "Mars/Base"},
            "trigger.SCHEDULED.timezone",
        ),
        ({"trigger_type": "EXTERNAL_EVENT", "event_source": ""}, "trigger.EXTERNAL_EVENT.event_source"),
        ({"trigger_type": "CRON"}, "trigger"),
    ],
)
def test_trigger_rules(trigger: dict[str, Any], field: str) -> None:
    document = load_fixture("job_definitions")
    document["trigger"] = trigger
    assert _refusal(JobDefinition, document).field == field


def test_scheduled_trigger_round_trips() -> None:
    document = load_fixture("job_definitions")
    document["trigger"] = {
        "trigger_type": "SCHEDULED",
        "cron": "0 6 * * MON-FRI",
        "timezone": "Europe/Berlin",
    }
    assert canonical_json(JobDefinition.model_validate(document)) == canonical_json(document)


def test_ids_inside_documents_are_validated() -> None:
    document = load_fixture("job_definitions")
    document["data_contract"]["contract_id"] = "../other-tenant"
    assert _refusal(JobDefinition, document).field == "data_contract.contract_id"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"result": {"location": "external", "sha256": "a" * 64, "size_bytes": 1}}, "result"),
        ({"result": {"location": "inline", "sha256": "A" * 64, "size_bytes": 1}}, "result.sha256"),
        ({"result": {"location": "inline", "sha256": "a" * 64, "size_bytes": -1}}, "result.size_bytes"),
        ({"summary": {"pass_rate": 1.5}}, "summary.pass_rate"),
        ({"summary": {"row_count": -1}}, "summary.row_count"),
        ({"summary": {"pass_rate": float("nan")}}, "summary.pass_rate"),
        ({"summary": {"metrics": {"x": float("inf")}}}, "summary.metrics.x"),
        ({"status": "done"}, "status"),
        ({"job_type": "quality"}, "job_type"),
        ({"dataset_type": "x" * 129}, "dataset_type"),
    ],
)
def test_job_run_rules(change: dict[str, Any], field: str) -> None:
    document = load_fixture("job_runs")
    document.update(change)
    assert _refusal(JobRun, document).field == field


def test_nan_in_free_form_map_is_refused() -> None:
    # Canonical JSON has no NaN: a NaN in metadata must be refused, not silently written as null.
    run = make_run("t", "dev", metadata={"ratio": float("nan")})
    with pytest.raises(InvalidArtifactError):
        canonical_json(run)
    contract = make_contract("t", "dev", metadata={"x": float("-inf")})
    with pytest.raises(InvalidArtifactError):
        canonical_json(contract)


def test_timestamps_become_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    run = make_run(
        "t",
        "dev",
        submitted_at=datetime(2024, 5, 1, 14, 0, tzinfo=plus_two),
        started_at=datetime(2024, 5, 1, 12, 0, 1),
    )
    assert run.submitted_at == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert run.started_at is not None
    assert run.started_at.tzinfo == UTC
    encoded = canonical_json(run)
    assert b'"submitted_at":"2024-05-01T12:00:00Z"' in encoded
    assert b'"started_at":"2024-05-01T12:00:01Z"' in encoded
    parsed = JobRun.model_validate({**json.loads(encoded), "completed_at": "2024-05-01T14:00:02+02:00"})
    assert parsed.completed_at == datetime(2024, 5, 1, 12, 0, 2, tzinfo=UTC)


def test_only_set_fields_are_written() -> None:
    run = JobRun.model_validate(
        {"job_id": "r", "tenant_id": "t", "environment": "e", "job_type": "profiling"}
    )
    assert run.status == JobRunStatus.PENDING
    assert json.loads(canonical_json(run)) == {
        "environment": "e",
        "job_id": "r",
        "job_type": "profiling",
        "tenant_id": "t",
    }


def test_sort_time_falls_back_in_order() -> None:
    t0, t1, t2 = (datetime(2024, 5, 1, h, tzinfo=UTC) for h in (1, 2, 3))
    assert make_run("t", "e", submitted_at=t0, started_at=t1, completed_at=t2).sort_time == t0
    assert make_run("t", "e", started_at=t1, completed_at=t2).sort_time == t1
    assert make_run("t", "e", completed_at=t2).sort_time == t2
    assert make_run("t", "e").sort_time is None


def test_status_transitions() -> None:
    terminal = {JobRunStatus.SUCCEEDED, JobRunStatus.FAILED, JobRunStatus.WARNING, JobRunStatus.CANCELLED}
    assert ALLOWED_TRANSITIONS[JobRunStatus.PENDING] == frozenset(JobRunStatus)
    assert JobRunStatus.PENDING not in ALLOWED_TRANSITIONS[JobRunStatus.RUNNING]
    for status in terminal:
        assert status.is_terminal
        assert ALLOWED_TRANSITIONS[status] == {status}
    assert not check_transition(JobRunStatus.SUCCEEDED, JobRunStatus.RUNNING)
    assert check_transition(JobRunStatus.RUNNING, JobRunStatus.FAILED)
    for new in JobRunStatus:
        assert set(allowed_previous(new)) == {old for old in JobRunStatus if check_transition(old, new)}


def test_contract_helpers() -> None:
    contract = DataContract.model_validate(load_fixture("contracts"))
    contract2 = make_contract("t", "dev", dataset_types=["Orders", "orders", "Billing"])
    assert contract2.dataset_types == ["billing", "orders"]
    assert contract.dataset("BILLING").dataset_contract_id == "billing-dataset"
    with pytest.raises(KeyError):
        contract.dataset("orders")
    billing = contract.dataset("billing")
    assert billing.column("customer_email").is_pii
    assert not billing.column("invoice_id").is_pii
    with pytest.raises(KeyError):
        billing.column("nope")
    assert ColumnContract(column_id="c", data_type="string", sensitivity_tags=["GDPR:health"]).is_pii
    assert not contract.is_retired
    assert contract.status_value == "approved"
    assert contract.artifact_id == "billing-contract"


def test_checkpoint_is_a_job_definition() -> None:
    assert Checkpoint is JobDefinition


def test_models_validate_assignment() -> None:
    summary = RunSummary(row_count=1)
    with pytest.raises(pydantic.ValidationError):
        summary.pass_rate = 2.0
    with pytest.raises(pydantic.ValidationError):
        summary.row_count = -5
