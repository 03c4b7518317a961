"""The DQ engine (validate / cleanse / profile) on generated billing data and hand-made frames.

No Dagster here: the engine is pure functions on frames. Expected numbers come either from the
generator's injected defect counts or from direct computation on tiny frames.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest

from dq_dagster.engine import (
    REJECT_REASON,
    ROW_INDEX,
    ContractRuleError,
    cleanse,
    compile_rules,
    mask_value,
    profile,
    validate,
)
from dq_dagster.examples import DefectRates, billing_contract, generate_billing, write_billing_csv
from dq_stores.canonical import canonical_json
from dq_stores.models import (
    DataContract,
    DatasetContract,
    ReportStatus,
    RuleResult,
    Severity,
    ValidationReport,
)
from dq_stores.models.reports import MAX_SAMPLE

FIXTURE = Path("/work/shared/fixtures/canonical/data_contract.billing-contract.json")


def dataset(
    columns: list[dict[str, Any]], primary_keys: tuple[str, ...] = (), **extra: Any
) -> DatasetContract:
    return DatasetContract.model_validate(
        {
            "dataset_contract_id": "ds",
            "dataset_type": "things",
            "tenant_id": "TNT-9",
            "environment": "dev",
            "version": "1.0.0",
            "primary_keys": list(primary_keys),
            "columns": columns,
            **extra,
        }
    )


def contract_with_rules(
    columns: list[dict[str, Any]],
    templates: list[dict[str, Any]],
    bindings: list[dict[str, Any]],
    primary_keys: tuple[str, ...] = (),
) -> DataContract:
    ds = dataset(columns, primary_keys)
    return DataContract.model_validate(
        {
            "contract_id": "c1",
            "tenant_id": "TNT-9",
            "environment": "dev",
            "version": "3.0.0",
            "name": "things",
            "datasets": [ds.model_dump(mode="json")],
            "rule_templates": templates,
            "rule_bindings": bindings,
        }
    )


def rule(report: ValidationReport, rule_id: str) -> RuleResult:
    matches = [r for r in report.rules if r.rule_id == rule_id]
    assert len(matches) == 1, f"{rule_id} not in {[r.rule_id for r in report.rules]}"
    return matches[0]


def failed(report: ValidationReport) -> dict[str, int]:
    return {r.rule_id: r.failed_count for r in report.rules if r.failed_count}


@pytest.fixture(scope="module")
def billing() -> tuple[pl.DataFrame, Any]:
    return generate_billing(10_000, seed=11)


# -- generated billing data: exact counts, rule by rule -----------------------------------------


def test_billing_failures_equal_injected_defects_rule_by_rule(billing: tuple[pl.DataFrame, Any]) -> None:
    df, counts = billing
    report = validate(df, billing_contract())
    expected = counts.expected_failures()
    assert {r.rule_id: r.failed_count for r in report.rules} == {
        r.rule_id: expected.get(r.rule_id, 0) for r in report.rules
    }
    assert set(expected) <= {r.rule_id for r in report.rules}
    assert all(v > 0 for v in expected.values()), "every defect kind must be injected at 10k rows"
    assert report.row_count == 10_000
    assert report.rows_failed == counts.rows_failing_hard_rules
    assert report.pass_rate == pytest.approx(1 - counts.rows_failing_hard_rules / 10_000)
    assert report.status == ReportStatus.FAILED
    # Checked counts: not-null rules see every row, value rules only non-null values.
    assert rule(report, "customer_email.not_null").checked_count == 10_000
    assert rule(report, "customer_email.regex").checked_count == 10_000 - counts.null_emails
    email = rule(report, "customer_email.regex")
    assert email.failure_rate == pytest.approx(counts.bad_emails / (10_000 - counts.null_emails))


def test_billing_report_header_is_filled(billing: tuple[pl.DataFrame, Any]) -> None:
    df, _ = billing
    report = validate(df, billing_contract("TNT-042", "staging"))
    assert (report.tenant_id, report.environment) == ("TNT-042", "staging")
    assert (report.contract_id, report.contract_version, report.dataset_type) == (
        "billing-contract",
        "2.1.0",
        "billing",
    )
    assert report.started_at is not None
    assert report.completed_at is not None
    assert report.started_at <= report.completed_at
    assert report.metadata["dataset_contract_id"] == "billing-dataset"


def test_the_canonical_fixture_contract_validates_generated_data(billing: tuple[pl.DataFrame, Any]) -> None:
    df, counts = billing
    fixture = DataContract.model_validate_json(FIXTURE.read_bytes())
    report = validate(df, fixture, dataset_type="BILLING")
    expected = counts.expected_failures()
    expected.pop("net_equals_gross_minus_tax")  # the fixture has no expression rule
    assert failed(report) == {k: v for k, v in expected.items() if v}
    # Same rules and ids as the example contract, minus the bound one.
    assert [r.rule_id for r in report.rules] == [
        r.rule_id
        for r in compile_rules(billing_contract()).rules
        if r.rule_id != "net_equals_gross_minus_tax"
    ]


def test_clean_data_passes_every_rule() -> None:
    df, _ = generate_billing(3_000, seed=5, rates=DefectRates.none())
    report = validate(df, billing_contract())
    assert report.status == ReportStatus.PASSED
    assert all(r.passed and r.failed_count == 0 and r.sample == [] for r in report.rules)
    assert (report.rows_failed, report.pass_rate) == (0, 1.0)


def test_csv_strings_give_the_same_counts(tmp_path: Path) -> None:
    path = tmp_path / "billing.csv"
    counts = write_billing_csv(path, 5_000, seed=3)
    df = pl.read_csv(path)  # invoice_date stays a string and is parsed by the engine
    assert df.schema["invoice_date"] == pl.String
    report = validate(df, billing_contract())
    assert failed(report) == {k: v for k, v in counts.expected_failures().items() if v}
    assert rule(report, "invoice_date.data_type").checked_count == 5_000


def test_pandas_input_gives_the_same_report(billing: tuple[pl.DataFrame, Any]) -> None:
    df, counts = billing
    report = validate(df.to_pandas(), billing_contract())
    assert failed(report) == {k: v for k, v in counts.expected_failures().items() if v}
    assert report.rows_failed == counts.rows_failing_hard_rules


def test_a_compiled_plan_can_be_reused(billing: tuple[pl.DataFrame, Any]) -> None:
    df, _ = billing
    plan = compile_rules(billing_contract())
    assert validate(df, plan).rules == validate(df, billing_contract()).rules


# -- every constraint type on tiny frames ------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "values", "rule_id", "failed_count", "checked"),
    [
        (
            {"data_type": "string", "constraints": {"disallow_nulls": True}},
            ["a", None, None],
            "x.not_null",
            2,
            3,
        ),
        ({"data_type": "string", "required": True}, ["a", None], "x.not_null", 1, 2),
        ({"data_type": "integer", "constraints": {"unique": True}}, [1, 1, 2, None, None], "x.unique", 2, 3),
        (
            {"data_type": "decimal", "constraints": {"min_value": 0}},
            [0.0, -0.01, 5.0, None],
            "x.min_value",
            1,
            3,
        ),
        ({"data_type": "decimal", "constraints": {"max_value": 10}}, [10.0, 10.5, None], "x.max_value", 1, 2),
        ({"data_type": "integer", "constraints": {"min_value": 2}}, [1, 2, 3, None], "x.min_value", 1, 3),
        (
            {"data_type": "string", "constraints": {"regex": "^[A-Z]{3}$"}},
            ["ABC", "abc", "ABCD", None],
            "x.regex",
            2,
            3,
        ),
        (
            {"data_type": "string", "constraints": {"allowed_values": ["a", "b"]}},
            ["a", "c", "A", None],
            "x.allowed_values",
            2,
            3,
        ),
        (
            {"data_type": "integer", "constraints": {"allowed_values": [1, 2]}},
            [1, 2, 3],
            "x.allowed_values",
            1,
            3,
        ),
        (
            {"data_type": "string", "constraints": {"min_length": 2}},
            ["ab", "a", "", None],
            "x.min_length",
            2,
            3,
        ),
        (
            {"data_type": "string", "constraints": {"max_length": 3}},
            ["abc", "abcd", "é" * 3],
            "x.max_length",
            1,
            3,
        ),
        ({"data_type": "integer"}, ["1", " 2 ", "x", "2.5", None], "x.data_type", 2, 4),
        ({"data_type": "decimal"}, ["1.5", "-3", "1,5", "abc"], "x.data_type", 2, 4),
        ({"data_type": "boolean"}, ["yes", "False", "1", "maybe"], "x.data_type", 1, 4),
        ({"data_type": "date"}, ["2024-02-29", "2023-02-29", "2024/01/01", None], "x.data_type", 2, 3),
        (
            {"data_type": "datetime"},
            ["2024-01-01T10:00:00Z", "2024-01-01 10:00", "2024-01-01", "noon"],
            "x.data_type",
            1,
            4,
        ),
        ({"data_type": "integer"}, [1.0, 2.5, None], "x.data_type", 1, 2),
        (
            {"data_type": "date", "constraints": {"min_value": "2024-01-01"}},
            ["2023-12-31", "2024-01-01", None],
            "x.min_value",
            1,
            2,
        ),
    ],
)
def test_constraint_types(
    column: dict[str, Any], values: list[Any], rule_id: str, failed_count: int, checked: int
) -> None:
    report = validate(pl.DataFrame({"x": values}, strict=False), dataset([{"column_id": "x", **column}]))
    result = rule(report, rule_id)
    assert (result.failed_count, result.checked_count) == (failed_count, checked)
    assert result.passed is (failed_count == 0)
    assert result.failure_rate == pytest.approx(failed_count / checked)
    # Samples show distinct failing values (none for nulls).
    if rule_id.endswith("not_null"):
        assert result.sample == []
    else:
        assert 0 < len(result.sample) <= failed_count
        assert len({repr(v) for v in result.sample}) == len(result.sample)
    # Hard by default: a failure fails the report and counts its rows.
    assert report.status == ReportStatus.FAILED
    assert report.rows_failed == failed_count


def test_date_and_datetime_columns_compare_with_contract_bounds() -> None:
    from datetime import date, datetime

    df = pl.DataFrame(
        {
            "d": [date(2023, 12, 31), date(2024, 1, 1)],
            "t": [datetime(2024, 1, 1, 9), datetime(2024, 1, 1, 11)],
        }
    ).with_columns(tz=pl.col("t").dt.replace_time_zone("Europe/Berlin"))
    ds = dataset(
        [
            {"column_id": "d", "data_type": "date", "constraints": {"min_value": "2024-01-01"}},
            {"column_id": "t", "data_type": "datetime", "constraints": {"max_value": "2024-01-01T10:00:00"}},
            # 10:00 UTC is 11:00 in Berlin: only the 11:00+01:00 row (10:00 UTC) is not later.
            {
                "column_id": "tz",
                "data_type": "timestamp",
                "constraints": {"max_value": "2024-01-01T09:30:00Z"},
            },
        ]
    )
    report = validate(df, ds)
    assert failed(report) == {"d.min_value": 1, "t.max_value": 1, "tz.max_value": 1}
    assert rule(report, "tz.max_value").sample == ["2024-01-01T11:00:00+01:00"]


def test_composite_primary_key() -> None:
    df = pl.DataFrame({"a": [1, 1, 1, 2, None, None], "b": ["x", "x", "y", "x", "x", "x"]})
    ds = dataset(
        [{"column_id": "a", "data_type": "integer"}, {"column_id": "b", "data_type": "string"}],
        primary_keys=("a", "b"),
    )
    report = validate(df, ds)
    assert failed(report) == {"primary_key.unique": 2, "primary_key.not_null": 2}
    unique = rule(report, "primary_key.unique")
    assert unique.checked_count == 4
    assert unique.column is None
    assert unique.sample == ["1|x"]
    assert report.rows_failed == 4


def test_unique_index_rule() -> None:
    df = pl.DataFrame({"a": [1, 1, 2], "b": [1, 1, 1]})
    ds = dataset(
        [{"column_id": "a", "data_type": "integer"}, {"column_id": "b", "data_type": "integer"}],
        indexes=[{"name": "ab", "columns": ["a", "b"], "unique": True}, {"columns": ["b"]}],
    )
    assert failed(validate(df, ds)) == {"index.ab.unique": 2}


def test_soft_failures_warn_and_do_not_count_as_failed_rows() -> None:
    ds = dataset(
        [
            {"column_id": "x", "data_type": "integer", "constraints": {"min_value": 0, "severity": "soft"}},
            {"column_id": "y", "data_type": "integer", "constraints": {"max_value": 9}},
        ]
    )
    report = validate(pl.DataFrame({"x": [-1, 1, -2], "y": [1, 2, 3]}), ds)
    result = rule(report, "x.min_value")
    assert (result.severity, result.failed_count, result.passed) == (Severity.SOFT, 2, False)
    assert report.status == ReportStatus.WARNING
    assert (report.rows_failed, report.pass_rate) == (0, 1.0)


def test_missing_required_column_is_a_failed_rule_not_a_crash() -> None:
    ds = dataset(
        [
            {"column_id": "id", "data_type": "integer", "required": True},
            {"column_id": "email", "data_type": "string", "required": True, "constraints": {"regex": "@"}},
            {"column_id": "note", "data_type": "string", "constraints": {"max_length": 3}},
        ]
    )
    report = validate(pl.DataFrame({"id": [1, 2, 3], "other": ["a", "b", "c"]}), ds)
    present = rule(report, "email.present")
    assert (present.passed, present.failed_count, present.failure_rate) == (False, 3, 1.0)
    regex = rule(report, "email.regex")
    assert not regex.passed
    assert regex.checked_count == 0
    assert "missing" in (regex.description or "")
    # An absent optional column has nothing to check.
    note = rule(report, "note.max_length")
    assert note.passed
    assert note.checked_count == 0
    assert rule(report, "id.present").passed
    assert report.status == ReportStatus.FAILED
    assert (report.rows_failed, report.pass_rate) == (3, 0.0)
    assert report.metadata["unexpected_columns"] == ["other"]


def test_all_null_column() -> None:
    ds = dataset(
        [
            {
                "column_id": "amount",
                "data_type": "decimal",
                "required": True,
                "constraints": {"min_value": 0},
            },
            {"column_id": "code", "data_type": "string", "constraints": {"regex": "^x$", "unique": True}},
        ]
    )
    df = pl.DataFrame({"amount": [None, None, None], "code": [None, None, None]})
    assert df.schema["amount"] == pl.Null
    report = validate(df, ds)
    assert failed(report) == {"amount.not_null": 3}
    assert rule(report, "amount.min_value").checked_count == 0
    assert rule(report, "code.unique").passed
    snapshot = profile(df, ds)
    amount = snapshot.columns[0]
    assert (amount.count, amount.null_count, amount.null_ratio, amount.distinct_count) == (0, 3, 1.0, 0)
    assert amount.min is None
    assert amount.mean is None
    assert amount.histogram is None


def test_empty_frames() -> None:
    ds = dataset(
        [{"column_id": "x", "data_type": "integer", "required": True, "constraints": {"min_value": 1}}]
    )
    report = validate(pl.DataFrame(schema={"x": pl.Int64}), ds)
    assert report.status == ReportStatus.PASSED
    assert (report.row_count, report.rows_failed, report.pass_rate) == (0, 0, 1.0)
    assert all(r.checked_count == 0 and r.failure_rate == 0.0 for r in report.rules)
    # No columns at all: the required column is missing, still no exception.
    report = validate(pl.DataFrame(), ds)
    assert report.status == ReportStatus.FAILED
    assert not rule(report, "x.present").passed
    assert profile(pl.DataFrame(), ds).row_count == 0
    result = cleanse(pl.DataFrame(schema={"x": pl.String}), ds)
    assert (result.report.rows_in, result.report.rows_out, result.frame.schema["x"]) == (0, 0, pl.Int64())


def test_lazy_frames_are_accepted() -> None:
    ds = dataset([{"column_id": "x", "data_type": "integer", "constraints": {"min_value": 1}}])
    assert failed(validate(pl.LazyFrame({"x": [0, 1, 2]}), ds)) == {"x.min_value": 1}


def test_other_inputs_are_refused() -> None:
    ds = dataset([{"column_id": "x", "data_type": "integer"}])
    with pytest.raises(TypeError, match="polars DataFrame"):
        validate([{"x": 1}], ds)
    with pytest.raises(TypeError, match="cannot convert the pandas frame"):
        validate(pd.DataFrame({"x": [1, "two", 3.0]}), ds)


def test_pandas_object_columns_and_nan() -> None:
    ds = dataset(
        [
            {
                "column_id": "amount",
                "data_type": "decimal",
                "required": True,
                "constraints": {"min_value": 0},
            },
            {"column_id": "code", "data_type": "string", "constraints": {"allowed_values": ["a", "b"]}},
        ]
    )
    pdf = pd.DataFrame({"amount": [1.0, float("nan"), -2.0], "code": ["a", None, "z"]}, index=[10, 20, 30])
    report = validate(pdf, ds)
    assert failed(report) == {"amount.not_null": 1, "amount.min_value": 1, "code.allowed_values": 1}
    assert "unexpected_columns" not in report.metadata  # the pandas index is not a column


# -- rule templates and bindings ---------------------------------------------------------------


AMOUNTS = [
    {"column_id": "gross", "data_type": "decimal"},
    {"column_id": "tax", "data_type": "decimal"},
    {"column_id": "net", "data_type": "decimal"},
]


def test_expression_rule_compares_columns() -> None:
    c = contract_with_rules(
        AMOUNTS,
        [
            {
                "template_id": "net",
                "rule_type": "expression",
                "severity": "soft",
                "parameters": {"expression": "abs(net - (gross - tax)) <= {tol}", "tol": 0.01},
            }
        ],
        [{"template_id": "net", "column_id": "net"}],
    )
    df = pl.DataFrame(
        {
            "gross": [100.0, 100.0, 100.0, None],
            "tax": [20.0, 20.0, 20.0, 1.0],
            "net": [80.0, 80.005, 81.0, 5.0],
        }
    )
    report = validate(df, c)
    result = rule(report, "net.net")
    # The null-gross row is not a failure (a null operand, as in SQL CHECK) and is not counted.
    assert (result.failed_count, result.checked_count, result.severity) == (1, 3, Severity.SOFT)
    assert result.sample == [81.0]
    assert report.status == ReportStatus.WARNING


def test_expression_rule_on_string_columns_uses_the_declared_types() -> None:
    c = contract_with_rules(
        AMOUNTS,
        [{"template_id": "t", "rule_type": "expression", "parameters": {"expression": "net = gross - tax"}}],
        [{"template_id": "t", "binding_id": "net-ok"}],
        primary_keys=("gross",),
    )
    df = pl.DataFrame({"gross": ["10", "20"], "tax": ["1", "2"], "net": ["9", "17"]})
    result = rule(validate(df, c), "net-ok")
    assert result.failed_count == 1
    assert result.sample == [20.0]  # no column bound: the failing rows' primary keys


def test_expression_rule_that_cannot_run_is_reported_not_raised() -> None:
    c = contract_with_rules(
        AMOUNTS,
        [
            {"template_id": "missing", "rule_type": "expression", "parameters": {"expression": "nope > 0"}},
            {
                "template_id": "numeric",
                "rule_type": "expression",
                "parameters": {"expression": "gross + tax"},
            },
        ],
        [{"template_id": "missing"}, {"template_id": "numeric"}],
    )
    report = validate(pl.DataFrame({"gross": [1.0], "tax": [2.0], "net": [3.0]}), c)
    assert not rule(report, "missing").passed
    assert "nope" in (rule(report, "missing").description or "")
    assert not rule(report, "numeric").passed
    assert "boolean" in (rule(report, "numeric").description or "")
    assert report.status == ReportStatus.FAILED


def test_column_rule_types_through_bindings() -> None:
    c = contract_with_rules(
        [{"column_id": "code", "data_type": "string"}, {"column_id": "n", "data_type": "integer"}],
        [
            {"template_id": "re", "rule_type": "regex", "parameters": {"pattern": "^[a-z]+$"}},
            {"template_id": "in", "rule_type": "allowed_values", "parameters": {"values": ["a", "b"]}},
            {"template_id": "range", "rule_type": "range", "parameters": {"min_value": 0, "max_value": 5}},
            {"template_id": "nn", "rule_type": "not_null"},
            {"template_id": "uq", "rule_type": "unique"},
            {"template_id": "len", "rule_type": "length", "parameters": {"max_length": 1}},
        ],
        [
            {"template_id": "re", "column_id": "code"},
            {"template_id": "in", "column_id": "code", "severity": "soft"},
            {"template_id": "range", "column_id": "n"},
            {"template_id": "nn", "column_id": "n"},
            {"template_id": "uq", "column_id": "n"},
            {"template_id": "len", "column_id": "code"},
            {"template_id": "uq", "column_id": "code", "dataset_contract_id": "another-dataset"},
        ],
    )
    df = pl.DataFrame({"code": ["a", "B", "cc", None], "n": [1, 1, 9, None]})
    report = validate(df, c)
    assert failed(report) == {
        "code.re": 1,
        "code.in": 2,
        "n.range.max_value": 1,
        "n.nn": 1,
        "n.uq": 2,
        "code.len.max_length": 1,  # range / length bindings get one rule per bound
    }
    assert "code.uq" not in {r.rule_id for r in report.rules}  # bound to another dataset
    assert rule(report, "code.in").severity == Severity.SOFT


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (
            {"columns": [{"column_id": "x", "data_type": "string", "constraints": {"regex": "(["}}]},
            "columns.0.constraints.regex",
        ),
        (
            {"columns": [{"column_id": "x", "data_type": "decimal", "constraints": {"min_value": "ten"}}]},
            "columns.0.constraints.min_value",
        ),
        (
            {
                "columns": [
                    {"column_id": "x", "data_type": "date", "constraints": {"max_value": "2024-13-01"}}
                ]
            },
            "columns.0.constraints.max_value",
        ),
    ],
)
def test_broken_constraints_raise_naming_the_field(change: dict[str, Any], field: str) -> None:
    ds = dataset(**change)
    with pytest.raises(ContractRuleError) as info:
        compile_rules(ds)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("templates", "bindings", "field"),
    [
        (
            [{"template_id": "t", "rule_type": "expression", "parameters": {"expression": "abs(x - "}}],
            [{"template_id": "t"}],
            "rule_templates.0.parameters.expression",
        ),
        (
            [{"template_id": "t", "rule_type": "expression"}],
            [{"template_id": "t"}],
            "rule_templates.0.parameters.expression",
        ),
        (
            [{"template_id": "t", "rule_type": "great_expectations"}],
            [{"template_id": "t"}],
            "rule_templates.0.rule_type",
        ),
        ([], [{"template_id": "ghost"}], "rule_bindings.0.template_id"),
        (
            [{"template_id": "t", "rule_type": "not_null"}],
            [{"template_id": "t"}],
            "rule_bindings.0.column_id",
        ),
        (
            [{"template_id": "t", "rule_type": "not_null"}],
            [{"template_id": "t", "column_id": "x"}, {"template_id": "t", "column_id": "x"}],
            "rule_bindings.1",
        ),
        (
            [{"template_id": "t", "rule_type": "not_null"}],
            [{"template_id": "t", "column_id": "x", "binding_id": "x.not_null"}],
            "rule_bindings.0",
        ),
    ],
)
def test_broken_rule_templates_raise_naming_the_field(
    templates: list[dict[str, Any]], bindings: list[dict[str, Any]], field: str
) -> None:
    c = contract_with_rules(
        [{"column_id": "x", "data_type": "integer", "required": True}], templates, bindings
    )
    with pytest.raises(ContractRuleError) as info:
        compile_rules(c)
    assert info.value.field == field


def test_dataset_selection() -> None:
    c = billing_contract()
    with pytest.raises(ContractRuleError, match="no dataset of type"):
        compile_rules(c, "shipping")
    two = c.model_copy(
        update={"datasets": [c.datasets[0], c.datasets[0].model_copy(update={"dataset_type": "b2"})]}
    )
    with pytest.raises(ContractRuleError, match="pass dataset_type"):
        compile_rules(two)
    assert compile_rules(two, "b2").dataset.dataset_type == "b2"


# -- samples and PII ---------------------------------------------------------------------------


def test_mask_value() -> None:
    assert mask_value("john.doe@example.com") == "j***@example.com"
    assert mask_value("a@b.co") == "a***@b.co"
    assert mask_value("jane doe@example.com") == "***"
    assert mask_value("no-at-sign") == "***"
    assert mask_value("x@") == "***"
    assert mask_value(42) == "***"
    assert mask_value(None) is None


def test_samples_are_bounded_distinct_and_raw_for_non_pii() -> None:
    ds = dataset([{"column_id": "code", "data_type": "string", "constraints": {"regex": "^ok$"}}])
    values = [f"bad-{i % 30}" for i in range(1_000)] + ["ok"]
    result = rule(validate(pl.DataFrame({"code": values}), ds), "code.regex")
    assert result.failed_count == 1_000
    assert result.sample == [f"bad-{i}" for i in range(MAX_SAMPLE)]
    assert result.sample_masked is False


def test_pii_never_appears_unmasked_in_any_report(billing: tuple[pl.DataFrame, Any]) -> None:
    df, _ = billing
    c = billing_contract()
    # Make the emails themselves the failing values of several rule kinds, and key the
    # expression rule's sample by email.
    c.datasets[0].primary_keys = ["customer_email"]
    reports = [validate(df, c), profile(df, c), cleanse(df, c).report]
    blob = b"".join(canonical_json(r) for r in reports).decode("utf-8")
    emails = df.get_column("customer_email").drop_nulls().unique().to_list()
    leaked = [e for e in emails if e in blob]
    assert leaked == []
    report = reports[0]
    assert isinstance(report, ValidationReport)
    for rid in ("customer_email.regex", "customer_email.max_length", "primary_key.unique"):
        result = rule(report, rid)
        assert result.sample
        assert result.sample_masked
        assert all(v == "***" or (isinstance(v, str) and "***@" in v) for v in result.sample)
    assert rule(report, "currency.allowed_values").sample_masked is False


# -- cleansing ---------------------------------------------------------------------------------


def test_cleansing_fixes_what_the_contract_allows(billing: tuple[pl.DataFrame, Any]) -> None:
    df, counts = billing
    c = billing_contract()
    result = cleanse(df, c)
    report = result.report
    assert report.rejection_reasons == counts.expected_cleansing()
    assert report.rows_in == 10_000
    assert report.rows_rejected == sum(counts.expected_cleansing().values()) == result.rejected.height
    assert report.rows_out == result.frame.height == 10_000 - report.rows_rejected
    steps = {(t.name, t.column): t.rows_affected for t in report.transformations}
    assert steps[("trim", "currency")] == counts.padded_currencies
    # Padded ones are upper-case: after the trim only the lower-case ones need their case fixed.
    assert steps[("normalise_case", "currency")] == counts.lowercase_currencies
    assert steps[("normalise_case", "status")] == counts.mixed_case_statuses
    changes = {ch.column: ch for ch in report.column_changes}
    assert changes["currency"].values_changed == counts.lowercase_currencies + counts.padded_currencies
    assert changes["gross_amount"].values_changed == 0
    assert result.frame.columns == df.columns
    assert set(result.rejected.get_column(REJECT_REASON).unique()) == set(counts.expected_cleansing())

    after = validate(result.frame, c)
    remaining = failed(after)
    assert "primary_key.unique" not in remaining
    assert "primary_key.not_null" not in remaining
    assert remaining["currency.allowed_values"] == counts.unknown_currencies
    assert "status.allowed_values" not in remaining
    assert remaining["customer_email.regex"] == counts.bad_emails


def test_cleansing_casts_trims_dedupes_and_rejects() -> None:
    ds = dataset(
        [
            {"column_id": "id", "data_type": "integer", "required": True},
            {
                "column_id": "cur",
                "data_type": "string",
                "constraints": {"allowed_values": ["EUR", "usd", "a", "A"]},
            },
            {"column_id": "amount", "data_type": "decimal"},
            {"column_id": "day", "data_type": "date"},
        ],
        primary_keys=("id",),
    )
    df = pl.DataFrame(
        {
            "id": [" 1", "2", "2", "x", None, "3", "3", "4"],
            "cur": ["eur ", "USD", "USD", "EUR", "EUR", "a", "a", "Eu"],
            "amount": ["1.50", "2", "2", "3", "4", "oops", "oops", "5"],
            "day": [
                "2024-01-01",
                "2024-01-02",
                "2024-01-02",
                "2024-01-03",
                None,
                "2024-02-30",
                "2024-02-30",
                "2024-01-05",
            ],
            "extra": [" keep ", "b", "b", "c", "d", "e", "e", "f"],
        }
    )
    result = cleanse(df, ds)
    out = result.frame
    assert out.schema == pl.Schema(
        {"id": pl.Int64, "cur": pl.String, "amount": pl.Float64, "day": pl.Date, "extra": pl.String}
    )
    assert out.get_column("id").to_list() == [1, 2, 3, 4]
    # 'eur ' -> trimmed and mapped; 'A' and 'a' are both allowed, so 'a' stays as it is;
    # 'Eu' matches nothing and is left for validation to report.
    assert out.get_column("cur").to_list() == ["EUR", "usd", "a", "Eu"]
    assert out.get_column("amount").to_list() == [1.5, 2.0, None, 5.0]
    assert out.get_column("extra").to_list() == [" keep ", "b", "e", "f"]  # not in the contract
    report = result.report
    assert report.rejection_reasons == {
        "null_primary_key": 2,
        "exact_duplicate": 2,
        "duplicate_primary_key": 0,
    }
    assert result.rejected.get_column(ROW_INDEX).to_list() == [3, 4, 2, 6]
    changes = {ch.column: (ch.values_changed, ch.values_nulled) for ch in report.column_changes}
    assert changes == {"id": (1, 1), "cur": (3, 0), "amount": (0, 2), "day": (0, 2)}
    assert (report.tenant_id, report.contract_id, report.contract_version) == ("TNT-9", None, "1.0.0")


def test_duplicate_primary_keys_keep_the_first_row() -> None:
    ds = dataset(
        [{"column_id": "id", "data_type": "string"}, {"column_id": "v", "data_type": "integer"}], ("id",)
    )
    result = cleanse(pl.DataFrame({"id": ["a", "b", "a", "a"], "v": [1, 2, 3, 1]}), ds)
    assert result.frame.rows() == [("a", 1), ("b", 2)]
    assert result.report.rejection_reasons == {
        "null_primary_key": 0,
        "exact_duplicate": 1,
        "duplicate_primary_key": 1,
    }
    assert result.rejected.select(ROW_INDEX, REJECT_REASON).rows() == [
        (3, "exact_duplicate"),
        (2, "duplicate_primary_key"),
    ]


def test_reject_null_required_is_opt_in() -> None:
    ds = dataset(
        [
            {"column_id": "id", "data_type": "integer"},
            {"column_id": "email", "data_type": "string", "required": True},
            {
                "column_id": "soft",
                "data_type": "string",
                "constraints": {"disallow_nulls": True, "severity": "soft"},
            },
        ]
    )
    df = pl.DataFrame({"id": [1, 2, 3], "email": ["a@b.co", None, "c@d.co"], "soft": ["x", "y", None]})
    assert cleanse(df, ds).report.rows_out == 3
    result = cleanse(df, ds, reject_null_required=True)
    assert result.frame.get_column("id").to_list() == [1, 3]
    assert result.report.rejection_reasons["null_required"] == 1


def test_cleansing_accepts_pandas() -> None:
    ds = dataset([{"column_id": "c", "data_type": "string", "constraints": {"allowed_values": ["EUR"]}}])
    result = cleanse(pd.DataFrame({"c": [" eur", "EUR"]}), ds)
    assert result.frame.get_column("c").to_list() == ["EUR"]
    assert result.report.rejection_reasons == {"exact_duplicate": 1}


# -- profiling ---------------------------------------------------------------------------------


def test_profile_numbers_match_direct_computation() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(100, 15, 2_000).round(2).tolist()
    amounts: list[float | None] = [*values, None, None]
    codes = ["a"] * 5 + ["b"] * 5 + ["c"] * 3 + [None] * 1 + [f"u{i}" for i in range(1_988)]
    ds = dataset(
        [
            {"column_id": "amount", "data_type": "decimal"},
            {"column_id": "as_text", "data_type": "decimal"},
            {"column_id": "code", "data_type": "string"},
        ]
    )
    df = pl.DataFrame(
        {"amount": amounts, "as_text": [None if v is None else str(v) for v in amounts], "code": codes}
    )
    snap = profile(df, ds, top_k=3, bins=10)
    assert snap.row_count == 2_002
    finite = [v for v in amounts if v is not None]
    counts, edges = np.histogram(finite, bins=10)
    for col in snap.columns[:2]:
        assert (col.count, col.null_count, col.distinct_count) == (2_000, 2, len(set(finite)))
        assert col.null_ratio == pytest.approx(2 / 2_002)
        assert (col.min, col.max) == (min(finite), max(finite))
        assert col.mean == pytest.approx(statistics.fmean(finite))
        assert col.stddev == pytest.approx(statistics.stdev(finite))
        assert col.histogram is not None
        assert col.histogram.counts == counts.tolist()
        assert col.histogram.edges == pytest.approx(edges.tolist())
    code = snap.columns[2]
    assert (code.count, code.null_count, code.distinct_count) == (2_001, 1, 1_991)
    assert [(v.value, v.count) for v in code.top_values] == [("a", 5), ("b", 5), ("c", 3)]
    assert (code.min, code.max, code.mean, code.histogram) == ("a", "u999", None, None)
    assert code.top_values_masked is False


def test_profile_of_constant_and_extra_columns() -> None:
    ds = dataset([{"column_id": "k", "data_type": "integer"}])
    snap = profile(pl.DataFrame({"k": [7, 7, 7], "other": [1.5, float("nan"), 2.5]}), ds)
    k, other = snap.columns
    assert k.histogram is not None
    assert (k.histogram.edges, k.histogram.counts) == ([7.0, 7.0], [3])
    assert k.stddev == 0.0
    assert k.top_values[0].count == 3
    # Columns outside the contract are profiled with their polars type; NaN is left out of stats.
    assert (other.column, other.data_type, other.mean, other.max) == ("other", "Float64", 2.0, 2.5)
    assert json.loads(canonical_json(snap))  # no NaN reached the report


def test_profiling_expectations_flag_anomalies(billing: tuple[pl.DataFrame, Any]) -> None:
    df, _counts = billing
    c = billing_contract()
    net = c.datasets[0].column("net_amount")
    assert profile(df, c).anomalies == []  # 0.2% null net amounts, threshold 1%
    noisy, noisy_counts = generate_billing(2_000, seed=2, rates=DefectRates(null_net_amounts=0.05))
    snap = profile(noisy, c)
    [anomaly] = snap.anomalies
    assert (anomaly.column, anomaly.metric, anomaly.severity) == ("net_amount", "null_ratio", Severity.SOFT)
    assert anomaly.observed == pytest.approx(noisy_counts.null_net_amounts / 2_000)
    assert net.profiling_expectations[0].max_threshold == anomaly.max_threshold == 0.01


def test_every_expectation_metric() -> None:
    def exp(metric: str, lo: float | None = None, hi: float | None = None) -> dict[str, Any]:
        return {"metric": metric, "min_threshold": lo, "max_threshold": hi}

    ds = dataset(
        [
            {"column_id": "x", "data_type": "integer", "profiling_expectations": [
                exp("null_count", hi=0), exp("null_ratio", hi=0.5), exp("distinct_count", lo=3),
                exp("distinct_ratio", lo=1.0), exp("min", lo=0), exp("max", hi=3), exp("mean", 1, 2),
                exp("stddev", hi=0.1), exp("row_count", lo=4)]},
            {"column_id": "email", "data_type": "string", "sensitivity_tags": ["pii"],
             "profiling_expectations": [exp("min", lo=0)]},
            {"column_id": "gone", "data_type": "string", "profiling_expectations": [exp("null_ratio", hi=1)]},
        ]
    )  # fmt: skip
    df = pl.DataFrame({"x": [1, 2, 3, None], "email": ["a@b.co", "c@d.co", None, None]})
    results = {(e.column, e.metric): (e.observed, e.passed) for e in profile(df, ds).expectations}
    assert results == {
        ("x", "null_count"): (1.0, False),
        ("x", "null_ratio"): (0.25, True),
        ("x", "distinct_count"): (3.0, True),
        ("x", "distinct_ratio"): (1.0, True),
        ("x", "min"): (1.0, True),
        ("x", "max"): (3.0, True),
        ("x", "mean"): (2.0, True),
        ("x", "stddev"): (1.0, False),
        ("x", "row_count"): (4.0, True),
        ("email", "min"): (None, False),  # a string column has no numeric min
        ("gone", "null_ratio"): (None, False),  # the column is missing
    }


def test_profile_masks_pii_columns() -> None:
    ds = dataset(
        [
            {"column_id": "email", "data_type": "string", "sensitivity_tags": ["PII"]},
            {"column_id": "salary", "data_type": "decimal", "sensitivity_tags": ["gdpr:special"],
             "profiling_expectations": [{"metric": "max", "max_threshold": 100}]},
        ]
    )  # fmt: skip
    df = pl.DataFrame({"email": ["ann@x.org", "ann@x.org", "bob@y.org"], "salary": [50.0, 70.0, 120.0]})
    snap = profile(df, ds)
    email, salary = snap.columns
    assert [(v.value, v.count) for v in email.top_values] == [("a***@x.org", 2), ("b***@y.org", 1)]
    assert email.top_values_masked
    assert (email.min, email.max) == ("a***@x.org", "b***@y.org")
    assert (salary.min, salary.max, salary.histogram) == ("***", "***", None)
    [exp] = snap.expectations
    assert (exp.observed, exp.passed) == (None, False)  # breached, but the value is not shown
    blob = canonical_json(snap).decode()
    assert "ann@x.org" not in blob
    assert "120" not in blob


def test_reports_are_canonical_json(billing: tuple[pl.DataFrame, Any]) -> None:
    df, _ = billing
    c = billing_contract()
    for report in (validate(df, c), profile(df, c), cleanse(df, c).report):
        data = canonical_json(report)
        again = type(report).model_validate_json(data)
        assert canonical_json(again) == data
        assert not any(isinstance(v, float) and math.isnan(v) for v in json.loads(data).values())
