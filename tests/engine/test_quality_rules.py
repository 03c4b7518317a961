"""Quality rules (the ODCS metrics) in the polars engine: thresholded counts and percentages,
custom missing-value lists, invalid values, duplicates over one or several columns, row-count
bounds, SQL on the frame, and rules no engine here can run (custom, a regex outside the dialect)
reported as not evaluated. The SQL pushdown and streaming engines report them as not evaluated,
never with a wrong count.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pydantic
import pytest

from dq_dagster.engine import compile_rules, validate
from dq_dagster.engine.pushdown import validate_table
from dq_dagster.engine.rules import ContractRuleError, Threshold
from dq_dagster.engine.streaming import validate_file
from dq_stores.models import (
    DatasetContract,
    QualityRule,
    ReportStatus,
    RuleResult,
    ThresholdOperator,
    ValidationReport,
)
from tests.engine.conftest import SqlDb

COLUMNS = [
    {"column_id": "id", "data_type": "integer"},
    {"column_id": "email", "data_type": "string"},
    {"column_id": "amount", "data_type": "float"},
    {"column_id": "country", "data_type": "string"},
]


def dataset(*rules: dict[str, Any]) -> DatasetContract:
    return DatasetContract.model_validate(
        {
            "dataset_contract_id": "d",
            "dataset_type": "orders",
            "tenant_id": "t",
            "environment": "dev",
            "version": "1",
            "columns": COLUMNS,
            "quality_rules": list(rules),
        }
    )


FRAME = pl.DataFrame(
    {
        "id": [1, 1, 2, 3, 3, 3, None, 4],
        "email": ["a@x.org", "a@x.org", None, "", "N/A", "c@x.org", "d@x.org", "bad"],
        "amount": [1.0, 2.0, float("nan"), 4.0, None, 6.0, 7.0, 8.0],
        "country": ["DE", "DE", "FR", "xx", None, "FR", "IT", "DE"],
    }
)


def results(*rules: dict[str, Any], frame: pl.DataFrame = FRAME) -> dict[str, RuleResult]:
    return {r.rule_id: r for r in validate(frame, dataset(*rules)).rules}


def test_null_values_count_null_and_nan_in_rows_and_percent() -> None:
    r = results(
        {"metric": "null_values", "columns": ["amount"], "operator": "must_be", "threshold": 2},
        {
            "rule_id": "pct",
            "metric": "null_values",
            "columns": ["amount"],
            "operator": "must_be_less_than",
            "threshold": 25,
            "unit": "percent",
        },
    )
    assert r["amount.null_values"].measured_value == 2 and r["amount.null_values"].passed  # NaN is missing
    assert r["pct"].measured_value == pytest.approx(25.0) and not r["pct"].passed
    assert r["pct"].threshold == "< 25 percent"


def test_missing_values_take_their_own_list() -> None:
    with_null = {
        "metric": "missing_values",
        "columns": ["email"],
        "missing_values": [None, "", "N/A"],
        "operator": "must_be",
        "threshold": 0,
    }
    without = {
        "rule_id": "no_null",
        "metric": "missing_values",
        "columns": ["email"],
        "missing_values": ["", "N/A"],
        "operator": "must_be",
        "threshold": 0,
    }
    numeric = {
        "rule_id": "num",
        "metric": "missing_values",
        "columns": ["amount"],
        "missing_values": [-1, 4],
        "operator": "must_be",
        "threshold": 0,
    }
    r = results(with_null, without, numeric)
    assert r["email.missing_values"].failed_count == 3
    assert sorted(map(str, r["email.missing_values"].sample)) == ["", "N/A", "None"]
    assert r["no_null"].failed_count == 2
    assert r["num"].failed_count == 1  # 4 matches 4.0 in a float column


def test_invalid_values_by_list_or_pattern_never_count_missing_values() -> None:
    r = results(
        {
            "metric": "invalid_values",
            "columns": ["country"],
            "valid_values": ["DE", "FR", "IT"],
            "operator": "must_be",
            "threshold": 0,
        },
        {
            "rule_id": "fmt",
            "metric": "invalid_values",
            "columns": ["email"],
            "pattern": "^[^@]+@[^@]+$",
            "operator": "must_be_less_or_equal_to",
            "threshold": 3,
        },
    )
    assert r["country.invalid_values"].failed_count == 1 and r["country.invalid_values"].sample == ["xx"]
    assert r["fmt"].measured_value == 3 and r["fmt"].passed  # "", "N/A", "bad"; the null is not invalid


def test_a_pattern_outside_the_dialect_is_not_evaluated_never_a_count() -> None:
    r = results(
        {
            "metric": "invalid_values",
            "columns": ["email"],
            "pattern": "^(?=a).*$",
            "operator": "must_be",
            "threshold": 0,
        }
    )
    rule = r["email.invalid_values"]
    assert not rule.evaluated and not rule.passed and rule.measured_value is None
    assert "look-around" in (rule.description or "")


def test_duplicates_count_each_extra_copy_over_one_or_several_columns() -> None:
    r = results(
        {"metric": "duplicate_values", "columns": ["id"], "operator": "must_be", "threshold": 0},
        {"metric": "duplicate_values", "columns": ["id", "email"], "operator": "must_be", "threshold": 0},
        {
            "rule_id": "pct",
            "metric": "duplicate_values",
            "columns": ["id"],
            "operator": "must_be_less_than",
            "threshold": 40,
            "unit": "percent",
        },
    )
    assert r["id.duplicate_values"].failed_count == 3  # 1 twice (1 extra), 3 three times (2 extra)
    assert r["id+email.duplicate_values"].failed_count == 1  # only (1, a@x.org) repeats
    assert r["pct"].measured_value == pytest.approx(37.5) and r["pct"].passed


def test_row_count_bounds() -> None:
    r = results(
        {"rule_id": "between", "metric": "row_count", "operator": "must_be_between", "threshold": [1, 8]},
        {"rule_id": "outside", "metric": "row_count", "operator": "must_not_be_between", "threshold": [1, 8]},
        {"rule_id": "gt", "metric": "row_count", "operator": "must_be_greater_than", "threshold": 8},
    )
    assert r["between"].passed and r["between"].measured_value == 8
    assert not r["outside"].passed and not r["gt"].passed


@pytest.mark.parametrize(
    ("op", "value", "measured", "holds"),
    [
        ("must_be", 2, 2, True),
        ("must_not_be", 2, 2, False),
        ("must_be_greater_than", 2, 2, False),
        ("must_be_greater_or_equal_to", 2, 2, True),
        ("must_be_less_than", 2, 1, True),
        ("must_be_less_or_equal_to", 2, 3, False),
        ("must_be_between", (1, 3), 3, True),
        ("must_not_be_between", (1, 3), 1, False),
        ("must_be_less_than", 2, None, False),
    ],
)
def test_every_operator(op: str, value: Any, measured: Any, holds: bool) -> None:
    assert Threshold(ThresholdOperator(op), value).holds(measured) is holds


def test_sql_rules_run_on_the_frame_with_placeholders_and_report_their_value() -> None:
    r = results(
        {
            "rule_id": "big",
            "metric": "sql",
            "query": "SELECT COUNT(*) FROM {object} WHERE amount > 5",
            "operator": "must_be",
            "threshold": 3,
        },
        {
            "rule_id": "by_name",
            "metric": "sql",
            "columns": ["email"],
            "query": "SELECT COUNT(*) FROM orders WHERE {property} IS NULL",
            "operator": "must_be_greater_than",
            "threshold": 0,
        },
        {
            "rule_id": "broken",
            "metric": "sql",
            "query": "SELECT nope FROM {object}",
            "operator": "must_be",
            "threshold": 0,
        },
        {
            "rule_id": "rows",
            "metric": "sql",
            "query": "SELECT id FROM {object}",
            "operator": "must_be",
            "threshold": 0,
        },
    )
    assert r["big"].measured_value == 3 and r["big"].passed
    assert r["by_name"].measured_value == 1 and r["by_name"].passed
    assert not r["broken"].evaluated and not r["broken"].passed
    assert not r["rows"].evaluated and "not one value" in (r["rows"].description or "")


def test_custom_rules_are_kept_and_never_passed_text_rules_are_no_check() -> None:
    report = validate(
        FRAME,
        dataset(
            {"metric": "custom", "engine": "soda", "implementation": {"type": "duplicate_percent"}},
            {"metric": "text", "description": "a note"},
        ),
    )
    assert [r.rule_id for r in report.rules if r.rule_type in ("custom", "text")] == ["custom"]
    custom = report.rules[-1]
    assert not custom.evaluated and not custom.passed
    assert report.status == ReportStatus.FAILED


def test_only_zero_tolerance_metrics_count_failing_rows() -> None:
    tolerant = validate(
        FRAME,
        dataset(
            {"metric": "null_values", "columns": ["email"], "operator": "must_be_less_than", "threshold": 5}
        ),
    )
    strict = validate(
        FRAME, dataset({"metric": "null_values", "columns": ["email"], "operator": "must_be", "threshold": 0})
    )
    assert tolerant.status == ReportStatus.PASSED and tolerant.rows_failed == 0
    assert strict.status == ReportStatus.FAILED and strict.rows_failed == 1


def test_soft_rules_warn() -> None:
    report = validate(
        FRAME,
        dataset(
            {
                "metric": "null_values",
                "columns": ["email"],
                "operator": "must_be",
                "threshold": 0,
                "severity": "soft",
            }
        ),
    )
    assert report.status == ReportStatus.WARNING


def test_rule_ids_are_stable_and_unique() -> None:
    rule = {"metric": "null_values", "columns": ["email"], "operator": "must_be", "threshold": 0}
    plan = compile_rules(dataset(rule, rule, {**rule, "rule_id": "mine"}))
    assert [r.rule_id for r in plan.rules if r.kind == "null_values"] == [
        "email.null_values",
        "email.null_values.2",
        "mine",
    ]
    with pytest.raises(ContractRuleError, match="duplicate rule id"):
        compile_rules(dataset({**rule, "rule_id": "x"}, {**rule, "rule_id": "x"}))


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"metric": "null_values", "operator": "must_be", "threshold": 0}, "exactly one column"),
        ({"metric": "row_count", "columns": ["id"], "operator": "must_be", "threshold": 0}, "no column"),
        ({"metric": "missing_values", "columns": ["id"], "operator": "must_be", "threshold": 0}, "list"),
        (
            {"metric": "invalid_values", "columns": ["id"], "operator": "must_be", "threshold": 0},
            "valid_values",
        ),
        ({"metric": "row_count"}, "needs an operator"),
        ({"metric": "row_count", "operator": "must_be_between", "threshold": 3}, r"\[low, high\]"),
        ({"metric": "row_count", "operator": "must_be_between", "threshold": [5, 1]}, "low 5"),
        ({"metric": "row_count", "operator": "must_be_less_than", "threshold": "x"}, "a number"),
        ({"metric": "sql", "operator": "must_be", "threshold": 0}, "query"),
        ({"metric": "custom"}, "engine"),
    ],
)
def test_the_model_refuses_rules_that_cannot_mean_anything(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        QualityRule.model_validate(rule)


def test_a_rule_on_an_unknown_column_is_refused() -> None:
    with pytest.raises(pydantic.ValidationError, match=r"quality_rules\.0\.columns"):
        dataset({"metric": "null_values", "columns": ["nope"], "operator": "must_be", "threshold": 0})


QUALITY = (
    {"metric": "null_values", "columns": ["email"], "operator": "must_be", "threshold": 0},
    {"metric": "duplicate_values", "columns": ["id"], "operator": "must_be", "threshold": 0},
    {"metric": "row_count", "operator": "must_be_greater_than", "threshold": 0},
    {"rule_id": "q", "metric": "sql", "query": "SELECT 1", "operator": "must_be", "threshold": 1},
    {"metric": "custom", "engine": "soda", "implementation": "x"},
)


def _comparable(report: ValidationReport) -> list[dict[str, Any]]:
    return [r.model_dump(mode="json", exclude={"sample"}) for r in report.rules]


def test_the_sql_pushdown_engine_computes_nulls_and_row_counts_and_no_other(sql_db: SqlDb) -> None:
    contract = dataset(*QUALITY)
    frame = FRAME.with_columns(pl.col("amount").fill_nan(None))
    sql = validate_table(sql_db.engine, sql_db.load(frame, "q"), contract)
    polars = validate(frame, contract)
    computed = {"email.null_values", "row_count"}
    by_id = {r.rule_id: r for r in sql.rules}
    assert [by_id[i].model_dump(exclude={"sample"}) for i in sorted(computed)] == [
        r.model_dump(exclude={"sample"})
        for r in sorted(polars.rules, key=lambda r: r.rule_id)
        if r.rule_id in computed
    ]
    others = [
        r for r in sql.rules if r.rule_type in {q["metric"] for q in QUALITY} and r.rule_id not in computed
    ]
    assert len(others) == len(QUALITY) - 2
    assert all(not r.evaluated and not r.passed and r.measured_value is None for r in others)
    # Zero-tolerance rules count their rows as failing: the null email in both engines, plus
    # the 3 extra copies of ids in polars (not evaluated in SQL, so not counted there).
    assert (sql.rows_failed, polars.rows_failed) == (1, 4)


def test_the_streaming_engine_adds_up_row_wise_metrics_and_no_other(tmp_path: Path) -> None:
    rules = (
        *QUALITY,
        {
            "metric": "missing_values",
            "columns": ["email"],
            "missing_values": ["", "N/A"],
            "operator": "must_be",
            "threshold": 0,
        },
        {
            "metric": "invalid_values",
            "columns": ["country"],
            "valid_values": ["DE", "FR", "IT"],
            "operator": "must_be_less_than",
            "threshold": 20,
            "unit": "percent",
        },
    )
    path = tmp_path / "q.parquet"
    FRAME.write_parquet(path)
    streamed = validate_file(path, dataset(*rules), batch_rows=3)
    polars = validate(FRAME, dataset(*rules))
    whole = {"id.duplicate_values", "q", "custom"}
    by_id = {r.rule_id: r for r in polars.rules}
    for r in streamed.rules:
        if r.rule_id in whole:
            assert not r.evaluated and not r.passed
        else:
            assert r.model_dump(exclude={"sample"}) == by_id[r.rule_id].model_dump(exclude={"sample"}), (
                r.rule_id
            )
