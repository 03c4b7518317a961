"""ODCS v3 import and export (``dq_stores.transfer.odcs``) on the standard's own examples and
datacontract-cli's (tests/fixtures/odcs/README.md says where each comes from), the mapping field
by field, the CLI (`dq-stores import` / `export --format odcs` on real SQLite files), and the
same rules stated in ODCS and natively giving identical reports on the billing generator's data.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from click.testing import CliRunner

from dq_dagster.engine import compile_rules, validate
from dq_dagster.examples.generator import billing_contract, generate_billing
from dq_stores.canonical import content_hash
from dq_stores.cli import cli
from dq_stores.models import DataContract, QualityMetric, Severity, ValidationReport
from dq_stores.registry import open_stores
from dq_stores.transfer.odcs import (
    OdcsError,
    from_odcs,
    is_odcs,
    load_odcs,
    to_odcs,
    to_odcs_yaml,
    validate_odcs,
)

FIXTURES = Path(__file__).parent / "fixtures" / "odcs"
EXAMPLES = sorted(p for sub in ("bitol", "datacontract-cli") for p in (FIXTURES / sub).glob("*.odcs.yaml"))


def _v31(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` as the export writes it: v3.1.0, the tenant given on import, and the two
    v3.0 spellings the import reads in v3.1 terms (``rule`` -> ``metric``, a team member's
    ``comment`` -> ``description``, a boolean exclusive bound -> the bound itself)."""
    doc = copy.deepcopy(document)
    doc["apiVersion"] = "v3.1.0"
    doc.setdefault("tenant", "acme")
    if isinstance(doc.get("team"), list):
        doc["team"] = [
            {("description" if k == "comment" else k): v for k, v in m.items()} for m in doc["team"]
        ]
    for obj in doc.get("schema") or []:
        for prop in obj.get("properties") or []:
            options = prop.get("logicalTypeOptions") or {}
            for bound, flag in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
                if isinstance(options.get(flag), bool) and options.pop(flag) and bound in options:
                    options[flag] = options.pop(bound)
        for node in [obj, *(obj.get("properties") or [])]:
            for q in node.get("quality") or []:
                if "rule" in q and "metric" not in q and q.get("type", "library") == "library":
                    q["metric"] = q.pop("rule")
    return doc


def _quality_entries(document: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for obj in document.get("schema") or []:
        for node in [*(obj.get("properties") or []), obj]:
            out += list(node.get("quality") or [])
    return out


def test_the_examples_are_there() -> None:
    assert len(EXAMPLES) >= 25
    assert all(is_odcs(load_odcs(p)) for p in EXAMPLES)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_example_imports_becomes_checks_and_round_trips(path: Path) -> None:
    source = load_odcs(path)
    contract = from_odcs(source, tenant="acme", environment="dev")

    # Its quality rules become checks: one rule of the plan per ODCS quality entry (text is
    # documentation), with the ODCS id as rule id where it has one.
    entries = [q for q in _quality_entries(source) if q.get("type") != "text"]
    planned = []
    for ds in contract.datasets:
        plan = compile_rules(contract, ds.dataset_type)
        generated = {r.rule_id for r in ds.quality_rules if (r.metadata.get("odcs") or {}).get("generated")}
        kinds = {m.value for m in QualityMetric}
        planned += [r for r in plan.rules if r.kind in kinds and r.rule_id not in generated]
    assert len(planned) == len(entries)
    ids = {r.rule_id for r in planned}
    assert all(
        str(q["id"]) in ids or any(i.endswith(f".{q['id']}") for i in ids) for q in entries if "id" in q
    )

    # Export writes valid ODCS v3.1.0, equal to the source (in v3.1 terms), and re-imports to the
    # same contract (same canonical hash).
    exported = to_odcs(contract)
    validate_odcs(exported)
    assert exported == _v31(source)
    again = from_odcs(yaml.safe_load(to_odcs_yaml(contract)), environment="dev")
    assert content_hash(again) == content_hash(contract)


def test_the_native_billing_contract_round_trips_through_odcs() -> None:
    native = billing_contract()
    exported = to_odcs(native)
    validate_odcs(exported)
    assert content_hash(from_odcs(exported, environment="prod")) == content_hash(native)


def test_an_invalid_document_is_refused_naming_the_path_inside_it() -> None:
    with pytest.raises(OdcsError) as err:
        from_odcs(
            load_odcs(FIXTURES / "invalid" / "tests__fixtures__postgres__odcs.odcs.yaml"), environment="dev"
        )
    assert err.value.field == "schema[0].properties[0]"
    assert "isNullable" in str(err.value)

    doc = load_odcs(FIXTURES / "bitol" / "quality__column-validity.odcs.yaml")
    doc["schema"][0]["properties"][0]["quality"][0]["mustBeLessOrEqualTo"] = "five"
    with pytest.raises(OdcsError) as err:
        from_odcs(doc, tenant="acme", environment="dev")
    assert err.value.field is not None and err.value.field.startswith("schema[0].properties[0].quality[0]")

    with pytest.raises(OdcsError, match="apiVersion"):
        from_odcs({**doc, "apiVersion": "v4.0.0"}, tenant="acme", environment="dev")
    with pytest.raises(OdcsError, match="--env"):
        from_odcs(load_odcs(FIXTURES / "bitol" / "quality__column-validity.odcs.yaml"), tenant="acme")
    with pytest.raises(OdcsError, match="--tenant"):
        from_odcs(load_odcs(FIXTURES / "bitol" / "quality__column-validity.odcs.yaml"), environment="dev")


MAPPED = """
apiVersion: v3.0.2
kind: DataContract
id: urn:orders:v1
version: 1.2.0
status: deprecated
tenant: shop
name: Orders
domain: sales
dataProduct: checkout
tags: [finance]
slaProperties: [{property: latency, value: 4, unit: d}]
description: {purpose: All orders, usage: analytics}
servers: [{server: prod, type: postgres, host: db, port: 5432, database: shop, schema: public}]
schema:
  - name: orders
    physicalName: orders_tbl
    properties:
      - {name: line, logicalType: integer, primaryKey: true, primaryKeyPosition: 2}
      - {name: order_id, logicalType: string, primaryKey: true, primaryKeyPosition: 1, required: true,
         unique: true, businessName: Order, logicalTypeOptions: {pattern: "^O-\\\\d+$", maxLength: 12}}
      - {name: email, logicalType: string, classification: pii, tags: [contact]}
      - {name: amount, logicalType: number, physicalType: "numeric(10,2)",
         logicalTypeOptions: {minimum: 0, maximum: 100, exclusiveMaximum: true}}
      - {name: code, logicalType: string, logicalTypeOptions: {pattern: "^(?!X)\\\\w+$"}}
      - {name: placed, logicalType: date, physicalType: timestamp}
"""


def test_the_mapping_field_by_field() -> None:
    c = from_odcs(MAPPED, environment="prod")
    assert (c.contract_id, c.version, c.tenant_id, c.environment, c.name) == (
        "urn_orders_v1",
        "1.2.0",
        "shop",
        "prod",
        "Orders",
    )
    assert c.lifecycle.status == "approved" and c.metadata["odcs"]["status"] == "deprecated"
    assert c.description == "All orders" and c.metadata["odcs"]["description"] == {"usage": "analytics"}
    assert c.metadata["domain"] == "sales" and c.metadata["data_product"] == "checkout"
    assert c.metadata["tags"] == ["finance"] and c.metadata["sla_properties"][0]["property"] == "latency"
    assert c.metadata["odcs"]["id"] == "urn:orders:v1"  # kept: a native id has no ':'
    assert c.metadata["odcs"]["servers"][0]["host"] == "db"  # no native field: kept
    ds = c.dataset("orders")
    assert ds.metadata["physical_name"] == "orders_tbl"
    assert ds.primary_keys == ["order_id", "line"]  # by primaryKeyPosition
    order_id, email, amount = ds.column("order_id"), ds.column("email"), ds.column("amount")
    assert order_id.required and order_id.constraints is not None
    assert (order_id.constraints.unique, order_id.constraints.regex, order_id.constraints.max_length) == (
        True,
        "^O-\\d+$",
        12,
    )
    assert order_id.metadata["odcs"]["businessName"] == "Order"
    assert (
        email.is_pii and email.metadata["classification"] == "pii" and email.metadata["tags"] == ["contact"]
    )
    assert amount.data_type == "decimal" and amount.constraints is not None
    assert amount.constraints.min_value == 0 and amount.constraints.max_value is None
    assert ds.column("placed").data_type == "timestamp"
    rules = {r.rule_id: r for r in ds.quality_rules}
    assert rules["amount.exclusiveMaximum"].query is not None  # an exclusive bound, checked by SQL
    assert rules["code.pattern"].pattern == "^(?!X)\\w+$"  # outside the regex dialect: kept

    frame = pl.DataFrame(
        {
            "line": [1, 2, 1],
            "order_id": ["O-1", "O-1", "bad"],
            "email": ["a@x.org", "b@x.org", None],
            "amount": [5.0, 100.0, 50.0],
            "code": ["A", "B", "C"],
            "placed": ["2024-01-01 10:00:00"] * 3,
        }
    )
    report = validate(frame, c)
    by_id = {r.rule_id: r for r in report.rules}
    assert (
        by_id["amount.exclusiveMaximum"].measured_value == 1 and not by_id["amount.exclusiveMaximum"].passed
    )
    assert not by_id["code.pattern"].passed and not by_id["code.pattern"].evaluated
    assert "not evaluated" in (by_id["code.pattern"].description or "")
    assert by_id["order_id.regex"].failed_count == 1
    assert by_id["primary_key.unique"].passed  # (order_id, line) differs on every row

    exported = to_odcs(c)
    validate_odcs(exported)
    assert exported == _v31(yaml.safe_load(MAPPED) | {"tenant": "shop"})


def test_severity_dimension_unit_and_every_operator() -> None:
    doc = load_odcs(FIXTURES / "bitol" / "quality__column-validity.odcs.yaml")
    prop = doc["schema"][0]["properties"][0]
    ops: list[tuple[str, Any, bool]] = [
        ("mustBe", 2, True),
        ("mustNotBe", 2, False),
        ("mustBeGreaterThan", 1, True),
        ("mustBeGreaterOrEqualTo", 3, False),
        ("mustBeLessThan", 2, False),
        ("mustBeLessOrEqualTo", 2, True),
        ("mustBeBetween", [2, 5], True),
        ("mustNotBeBetween", [1, 2], False),
    ]
    prop["quality"] = [
        {
            "id": f"q{i}",
            "metric": "nullValues",
            op: value,
            "severity": "warning" if i % 2 else "error",
            "dimension": "completeness",
        }
        for i, (op, value, _) in enumerate(ops)
    ]
    prop["quality"].append({"id": "pct", "metric": "nullValues", "mustBeLessThan": 50, "unit": "percent"})
    c = from_odcs(doc, tenant="acme", environment="dev")
    rules = {r.rule_id: r for r in c.datasets[0].quality_rules}
    assert rules["q0"].severity == Severity.HARD and rules["q1"].severity == Severity.SOFT
    assert rules["q0"].dimension == "completeness"
    frame = pl.DataFrame({"air_quality_status": ["good", None, None, "bad", "ok"]})
    report = validate(frame, c)
    by_id = {r.rule_id: r for r in report.rules}
    for i, (_, _, passes) in enumerate(ops):
        assert by_id[f"q{i}"].measured_value == 2
        assert by_id[f"q{i}"].passed is passes, ops[i]
    assert by_id["pct"].measured_value == pytest.approx(40.0) and by_id["pct"].passed
    assert by_id["pct"].threshold == "< 50 percent"
    exported = to_odcs(c)
    validate_odcs(exported)
    assert exported["schema"][0]["properties"][0]["quality"] == prop["quality"]


def test_rules_the_engine_cannot_run_are_kept_verbatim_and_not_evaluated() -> None:
    doc = load_odcs(FIXTURES / "bitol" / "quality__column-validity.odcs.yaml")
    doc["schema"][0]["quality"] = [
        {"id": "odd_unit", "metric": "rowCount", "mustBeGreaterThan": 1, "unit": "kilorows"},
        {"id": "no_property", "metric": "nullValues", "mustBe": 0},
    ]
    c = from_odcs(json.dumps(doc), tenant="acme", environment="dev")  # JSON text reads too
    report = validate(pl.DataFrame({"air_quality_status": ["good"]}), c)
    by_id = {r.rule_id: r for r in report.rules}
    for rule_id in ("odd_unit", "no_property"):
        assert not by_id[rule_id].evaluated and not by_id[rule_id].passed
    assert to_odcs(c)["schema"][0]["quality"] == doc["schema"][0]["quality"]


def _comparable(report: ValidationReport) -> dict[str, Any]:
    data = report.model_dump(mode="json")
    data.pop("started_at")
    data.pop("completed_at")
    return data


def test_odcs_and_native_contracts_with_the_same_rules_give_identical_reports() -> None:
    odcs = from_odcs(load_odcs(FIXTURES / "billing" / "billing.odcs.yaml"), environment="prod")
    native = DataContract.model_validate(
        yaml.safe_load((FIXTURES / "billing" / "billing.native.yaml").read_text())
    )
    frame, counts = generate_billing(20_000, 11)
    a, b = validate(frame, odcs), validate(frame, native)
    assert _comparable(a) == _comparable(b)

    by_id = {r.rule_id: r for r in a.rules}
    assert by_id["customer_email.null_values"].measured_value == pytest.approx(
        100 * counts.null_emails / counts.rows
    )
    assert by_id["email_format"].measured_value == counts.bad_emails
    bad_currency = counts.unknown_currencies + counts.lowercase_currencies + counts.padded_currencies
    assert by_id["currency.invalid_values"].failed_count == bad_currency
    assert (
        by_id["status.invalid_values"].measured_value == counts.mixed_case_statuses
    )  # nulls are not invalid
    assert by_id["invoice_id+customer_email.duplicate_values"].failed_count == counts.exact_duplicate_rows
    assert by_id["billing_rows"].measured_value == counts.rows and by_id["billing_rows"].passed
    assert by_id["net_matches"].measured_value == counts.net_mismatches
    assert not by_id["custom"].evaluated and not by_id["custom"].passed
    assert "text" not in {r.rule_type for r in a.rules}  # documentation only


def test_the_run_record_lists_what_quality_rules_measured(tmp_path: Path) -> None:
    from dq_stores.scope import Scope
    from dq_stores.scoped import ScopedJobRunStore
    from dq_stores.writer import JobRunWriter, OutputOrigin

    c = from_odcs(load_odcs(FIXTURES / "billing" / "billing.odcs.yaml"), environment="prod")
    frame, counts = generate_billing(5_000, 5)
    with open_stores(f"sqlite:///{tmp_path}/dq.db") as stores:
        writer = JobRunWriter(ScopedJobRunStore(stores.job_runs, Scope("TNT-001", "prod")))
        written = writer.write(validate(frame, c), OutputOrigin(run_id="r1", asset_key="billing"))
    assert written.table is not None
    measured = {r["rule_id"]: r["measured"] for r in written.table.rows}
    assert measured["net_matches"] == f"{counts.net_mismatches} (must be < 10)"
    assert measured["custom"] == "not evaluated"
    assert measured["invoice_id.regex"] is None  # a plain rule: its counts say it


@pytest.mark.dagster
def test_odcs_rules_become_asset_checks_with_stable_names() -> None:
    from dq_dagster.checks import build_check_specs, check_results

    c = from_odcs(load_odcs(FIXTURES / "billing" / "billing.odcs.yaml"), environment="prod")
    specs = build_check_specs(c, "billing")
    names = {s.name for s in specs}
    assert {
        "email_format",
        "billing_rows",
        "net_matches",
        "invoice_id_customer_email__duplicate_values",
    } <= names
    frame, _ = generate_billing(5_000, 2)
    outcome = check_results(validate(frame, c), specs)
    by_name = {r.check_name: r for r in outcome.results}
    assert by_name["custom"].passed is False
    assert by_name["custom"].metadata["evaluated"].value is False
    assert by_name["billing_rows"].metadata["measured_value"].value == "5000"


def test_cli_imports_odcs_and_exports_it_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'dq.db'}"
    files = [
        FIXTURES / "bitol" / "quality__column-validity.odcs.yaml",
        FIXTURES / "datacontract-cli" / "examples__orders__orders.odcs.yaml",
    ]
    runner = CliRunner()
    result = runner.invoke(cli, ["--url", url, "import", *map(str, files), "--env", "dev"])
    assert result.exit_code != 0 and "--tenant" in result.output  # the first one states no tenant
    result = runner.invoke(
        cli, ["--url", url, "import", *map(str, files), "--tenant", "acme", "--env", "dev"]
    )
    assert result.exit_code == 0, result.output
    assert "2 created" in result.output

    out = tmp_path / "out"
    result = runner.invoke(cli, ["--url", url, "export", str(out), "--format", "odcs", "--all-scopes"])
    assert result.exit_code == 0, result.output
    written = sorted(out.rglob("*.odcs.yaml"))
    assert len(written) == 2
    for path in written:
        validate_odcs(load_odcs(path))
    orders = load_odcs(
        out / "acme" / "dev" / "contracts" / "urn_datacontract_checkout_orders" / "1.0.0.odcs.yaml"
    )
    assert orders["id"] == "urn:datacontract:checkout:orders"

    # Re-importing the export changes nothing: the same contracts.
    result = runner.invoke(cli, ["--url", url, "import", str(out), "--env", "dev"])
    assert result.exit_code == 0, result.output
    assert "2 unchanged" in result.output
    with open_stores(url) as stores:
        stored = stores.contracts.get_latest_for_dataset("acme", "dev", "Air_Quality")
        assert (
            stored is not None and stored.datasets[0].quality_rules[0].metric == QualityMetric.INVALID_VALUES
        )

    bad = runner.invoke(cli, ["--url", url, "import", str(FIXTURES / "invalid"), "--env", "dev"])
    assert bad.exit_code != 0 and "schema[0].properties[0]" in bad.output


def test_a_date_exclusive_bound_is_a_rule_reported_not_evaluated_never_passed() -> None:
    """ODCS ``exclusiveMinimum`` on a date has no native check: it must show up as a rule that was
    not evaluated (and survive export), not vanish into metadata as if it held."""
    import polars as pl

    from dq_dagster.engine import validate
    from dq_stores.transfer.odcs import from_odcs, to_odcs

    doc = {
        "apiVersion": "v3.1.0",
        "kind": "DataContract",
        "id": "bounds",
        "version": "1.0.0",
        "status": "active",
        "schema": [
            {
                "name": "orders",
                "properties": [
                    {
                        "name": "ordered_on",
                        "logicalType": "date",
                        "logicalTypeOptions": {"exclusiveMinimum": "2020-01-01"},
                    }
                ],
            }
        ],
    }
    contract = from_odcs(doc, tenant="t1", environment="dev")
    rules = contract.datasets[0].quality_rules
    assert [(r.rule_id, r.metric.value) for r in rules] == [("ordered_on.exclusiveMinimum", "custom")]
    from datetime import date

    report = validate(pl.DataFrame({"ordered_on": [date(2019, 5, 1)]}), contract, dataset_type="orders")
    result = next(r for r in report.rules if r.rule_id == "ordered_on.exclusiveMinimum")
    assert result.evaluated is False and result.passed is False
    exported = to_odcs(contract)
    prop = exported["schema"][0]["properties"][0]
    assert prop["logicalTypeOptions"] == {"exclusiveMinimum": "2020-01-01"}
    assert "quality" not in prop or all(q.get("type") != "custom" for q in prop["quality"])
