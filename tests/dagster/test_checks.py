"""Contract rules as asset checks (``dq_dagster.checks``): specs, results, quarantine, table schema.

The builder and evaluator are checked against the real engine on generated billing data, and the
hard -> blocking mapping is checked in real Dagster runs (a failing hard check stops the
downstream asset, a failing soft one does not).
"""

# No ``from __future__ import annotations``: Dagster reads asset parameter annotations at runtime.
from typing import Any

import polars as pl
import pytest
from dagster import (
    AssetCheckSeverity,
    AssetKey,
    AssetOut,
    Output,
    TableColumn,
    asset,
    materialize,
    multi_asset,
)

from dq_dagster.checks import (
    QUARANTINE_REASON,
    build_check_specs,
    check_name,
    check_results,
    column_schema,
    quarantine_hard_failures,
)
from dq_dagster.engine import cleanse, compile_rules, validate
from dq_dagster.examples.generator import NET_RULE_ID, DefectRates, billing_contract, generate_billing
from dq_stores.models import DataContract, Severity

pytestmark = pytest.mark.dagster


def contract_with(**changes: Any) -> DataContract:
    """The billing contract with a soft not-null rule on status (and optional top-level changes)."""
    doc = billing_contract().model_dump(mode="json")
    doc["rule_templates"].append(
        {"template_id": "recorded", "rule_type": "not_null", "severity": "soft", "description": "filled in"}
    )
    doc["rule_bindings"].append(
        {"template_id": "recorded", "binding_id": "status_recorded", "column_id": "status"}
    )
    doc.update(changes)
    return DataContract.model_validate(doc)


@pytest.fixture(scope="module")
def contract() -> DataContract:
    return contract_with()


def test_check_names_are_dagster_names_and_stay_distinct() -> None:
    assert check_name("primary_key.not_null") == "primary_key__not_null"
    assert check_name("net_equals_gross_minus_tax") == "net_equals_gross_minus_tax"
    assert check_name("index.by-day ok.unique") == "index__by_day_ok__unique"
    doc = billing_contract().model_dump(mode="json")
    # Two binding ids that map to the same Dagster name still get two distinct checks.
    doc["rule_templates"].append({"template_id": "t", "rule_type": "not_null"})
    doc["rule_bindings"] += [
        {"template_id": "t", "binding_id": "a-b", "column_id": "status"},
        {"template_id": "t", "binding_id": "a_b", "column_id": "status"},
    ]
    specs = build_check_specs(DataContract.model_validate(doc), "billing")
    names = [s.name for s in specs]
    assert len(set(names)) == len(names)
    clashing = [s for s in specs if s.metadata["dq/rule_id"] in ("a-b", "a_b")]
    assert all(s.name.startswith("a_b_") and len(s.name) == len("a_b_") + 8 for s in clashing)


def test_one_spec_per_rule_hard_blocking_soft_not(contract: DataContract) -> None:
    plan = compile_rules(contract, "billing")
    specs = build_check_specs(contract, ["finance", "billing_cleansed"], dataset_type="billing")
    assert [s.metadata["dq/rule_id"] for s in specs] == [r.rule_id for r in plan.rules]
    assert all(s.asset_key == AssetKey(["finance", "billing_cleansed"]) for s in specs)
    by_rule = {s.metadata["dq/rule_id"]: s for s in specs}
    assert by_rule["primary_key.unique"].blocking is True
    assert by_rule["primary_key.unique"].name == "primary_key__unique"
    assert by_rule["primary_key.unique"].metadata["dq/severity"] == "hard"
    assert by_rule["status_recorded"].blocking is False
    assert by_rule["status_recorded"].metadata["dq/severity"] == "soft"
    assert by_rule["customer_email.regex"].metadata["dq/column"] == "customer_email"
    assert "hard rule customer_email.regex" in (by_rule["customer_email.regex"].description or "")
    assert not any(s.blocking for s in build_check_specs(contract, "x", blocking_hard=False))


def test_results_carry_the_report_counts_and_severities(contract: DataContract) -> None:
    frame, defects = generate_billing(5_000, seed=3, tenant="TNT-001")
    report = validate(frame, contract)
    specs = build_check_specs(contract, "billing")
    outcome = check_results(report, specs)
    assert outcome.undeclared == [] and outcome.not_evaluated == []
    assert [r.check_name for r in outcome.results] == [s.name for s in specs]
    expected = {**defects.expected_failures(), "status_recorded": defects.null_statuses}
    for result in outcome.results:
        rule_id = str(result.metadata["rule_id"].value)
        assert result.metadata["failed_count"].value == expected.get(rule_id, 0), rule_id
        assert result.passed is (expected.get(rule_id, 0) == 0)
        assert result.severity is (
            AssetCheckSeverity.WARN if rule_id == "status_recorded" else AssetCheckSeverity.ERROR
        )
    net = next(r for r in outcome.results if r.check_name == NET_RULE_ID)
    checked = 5_000 - defects.null_net_amounts  # null operands are not checked
    assert net.metadata["failure_rate"].value == pytest.approx(defects.net_mismatches / checked)
    assert net.metadata["checked_count"].value == checked
    assert net.metadata["dq/contract_version"].value == "2.1.0"
    # Failing values (personal data in customer_email) never reach check metadata.
    email = next(r for r in outcome.results if r.check_name == "customer_email__regex")
    assert not any("sample" in key for key in email.metadata)


def test_declared_and_run_time_rules_are_matched_by_id(contract: DataContract) -> None:
    specs = build_check_specs(contract, "billing")
    # At run time the tenant's contract dropped the soft rule, made the regex soft and added a rule.
    doc = contract.model_dump(mode="json")
    doc["rule_bindings"] = [b for b in doc["rule_bindings"] if b["binding_id"] != "status_recorded"]
    doc["datasets"][0]["columns"][1]["constraints"]["severity"] = "soft"
    doc["datasets"][0]["columns"][7]["constraints"]["min_length"] = 5
    frame, _ = generate_billing(2_000, seed=1)
    outcome = check_results(validate(frame, DataContract.model_validate(doc)), specs)
    assert outcome.undeclared == ["status.min_length"]
    assert outcome.not_evaluated == ["status_recorded"]
    by_name = {r.check_name: r for r in outcome.results}
    assert len(by_name) == len(specs)
    missing = by_name["status_recorded"]
    assert missing.passed is False and missing.severity is AssetCheckSeverity.WARN
    assert missing.metadata["evaluated"].value is False
    assert "has no rule 'status_recorded'" in (missing.description or "")
    # The run-time contract decides the severity: a soft failure is WARN, which never blocks.
    assert by_name["customer_email__regex"].severity is AssetCheckSeverity.WARN
    assert by_name["customer_email__regex"].passed is False


def test_specs_not_built_here_are_refused(contract: DataContract) -> None:
    from dagster import AssetCheckSpec

    report = validate(generate_billing(100, seed=1)[0], contract)
    with pytest.raises(ValueError, match="not built by build_check_specs"):
        check_results(report, [AssetCheckSpec("x", asset="billing")])


def test_quarantine_keeps_exactly_the_rows_passing_every_hard_rule(contract: DataContract) -> None:
    frame, defects = generate_billing(10_000, seed=9, tenant="TNT-002")
    plan = compile_rules(contract, "billing")
    cleansed = cleanse(frame, plan).frame
    q = quarantine_hard_failures(cleansed, plan)
    assert q.kept.height + q.rejected.height == cleansed.height
    assert q.kept.columns == cleansed.columns
    after = validate(q.kept, plan)
    assert all(r.passed for r in after.rules if Severity(r.severity) is Severity.HARD)
    # Soft failures stay: quarantine is for hard rules only.
    assert {r.rule_id for r in after.failed_rules} == {"status_recorded"}
    # Defects land on disjoint rows, so each quarantined row is counted under its own defect's
    # first rule (contract order); what cleansing repairs or drops is not quarantined.
    assert q.reasons == {
        "invoice_id.regex": defects.malformed_invoice_ids,
        "customer_email.not_null": defects.null_emails,
        "customer_email.regex": defects.bad_emails,
        "customer_email.max_length": defects.long_emails,
        "currency.allowed_values": defects.unknown_currencies,
        "gross_amount.min_value": defects.negative_amounts,
        "net_amount.not_null": defects.null_net_amounts,
        NET_RULE_ID: defects.net_mismatches,
    }
    assert q.rejected.get_column(QUARANTINE_REASON).value_counts().height == len(q.reasons)
    # Input order is kept on both sides.
    ids = cleansed.get_column("invoice_id")
    assert (
        q.kept.get_column("invoice_id").to_list()
        == ids.filter(ids.is_in(q.kept["invoice_id"].implode())).to_list()
    )


def test_quarantine_of_clean_data_and_of_rules_it_cannot_apply() -> None:
    clean, _ = generate_billing(2_000, seed=5, rates=DefectRates.none())
    q = quarantine_hard_failures(clean, billing_contract())
    assert q.kept.equals(clean) and q.rejected.height == 0 and q.reasons == {}
    assert QUARANTINE_REASON in q.rejected.columns
    # Soft rules never quarantine; primary-key rules are always hard.
    frame, defects = generate_billing(2_000, seed=5)
    soft = billing_contract().model_dump(mode="json")
    for col in soft["datasets"][0]["columns"]:
        col["constraints"]["severity"] = "soft"
    soft["rule_bindings"][0]["severity"] = "soft"
    q = quarantine_hard_failures(frame, DataContract.model_validate(soft))
    assert q.reasons == {
        "primary_key.not_null": defects.null_invoice_ids,
        "primary_key.unique": defects.rows_sharing_an_id,
    }
    # A frame without the net columns: the expression rule cannot run, so it quarantines nothing
    # (validation reports it as not evaluated); the other rules still apply.
    partial = frame.drop("gross_amount", "tax_amount", "net_amount")
    q = quarantine_hard_failures(partial, billing_contract())
    assert NET_RULE_ID not in q.reasons and "customer_email.regex" in q.reasons


def test_column_schema_from_the_contract(contract: DataContract) -> None:
    schema = column_schema(contract, "billing")
    cols: dict[str, TableColumn] = {c.name: c for c in schema.columns}
    assert list(cols) == [c.column_id for c in contract.datasets[0].columns]
    assert cols["invoice_id"].type == "string"
    assert cols["invoice_id"].constraints.nullable is False and cols["invoice_id"].constraints.unique is True
    assert "matches ^INV-[0-9]{8}$" in cols["invoice_id"].constraints.other
    assert cols["gross_amount"].type == "decimal" and ">= 0" in cols["gross_amount"].constraints.other
    assert cols["currency"].constraints.other == ["one of EUR, USD, GBP"]
    assert cols["status"].constraints.nullable is True
    assert cols["customer_email"].tags == {"dq/sensitivity": "pii,gdpr:personal_data", "dq/pii": "true"}
    assert cols["invoice_date"].constraints.other == ["format ISO-8601"]
    assert schema.constraints is not None and schema.constraints.other == ["primary key (invoice_id)"]
    # A bare dataset contract works too.
    assert column_schema(contract.datasets[0]) == schema


def _pipeline(contract: DataContract, frame: pl.DataFrame, ran: list[str]) -> list[Any]:
    specs = build_check_specs(contract, "checked")

    @multi_asset(outs={"checked": AssetOut()}, check_specs=specs)
    def checked() -> Any:
        yield Output(frame, output_name="checked")
        yield from check_results(validate(frame, contract), specs).results

    @asset(deps=["checked"])
    def downstream() -> None:
        ran.append("downstream")

    return [checked, downstream]


def test_a_failing_hard_check_blocks_downstream_in_dagster(contract: DataContract) -> None:
    frame, _ = generate_billing(2_000, seed=2)
    ran: list[str] = []
    result = materialize(_pipeline(contract, frame, ran), raise_on_error=False)
    assert not result.success and ran == []
    failed = {e.check_name: e.severity for e in result.get_asset_check_evaluations() if not e.passed}
    assert failed["primary_key__unique"] is AssetCheckSeverity.ERROR
    assert failed["status_recorded"] is AssetCheckSeverity.WARN


def test_failing_soft_checks_do_not_block(contract: DataContract) -> None:
    frame, _ = generate_billing(2_000, seed=2)
    frame = frame.filter(pl.col("status").is_null() | pl.col("status").is_in(["open", "paid", "void"]))
    clean = quarantine_hard_failures(cleanse(frame, contract).frame, contract).kept
    ran: list[str] = []
    result = materialize(_pipeline(contract, clean, ran))
    assert result.success and ran == ["downstream"]
    evaluations = result.get_asset_check_evaluations()
    assert [e.check_name for e in evaluations if not e.passed] == ["status_recorded"]
