"""Rule semantics measured against Great Expectations' own expectation test cases.

``data/gx_expectation_cases.json`` holds GX's JSON test definitions (data, arguments, expected
outcome; provenance inside). Each case is mapped to a contract when our contracts can state the
same rule (``express``); a case they cannot state is counted with the reason, never compared.
Every expressible case must agree with GX (unexpected count, and success where GX has no
``mostly``) on every input type and engine: pandas, polars, and DuckDB and Postgres through the
SQL engine (a rule the SQL engine reports as not evaluated fails the comparison: it gives no count).
What we refuse at compile time (min > max, a numeric bound on text, a regex outside the Rust
dialect) is a refusal, not a count: it is checked to be refused with the column named.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pytest

from dq_dagster.engine import ContractRuleError, validate
from dq_dagster.engine.pushdown import validate_table
from dq_stores.models import DatasetContract, ValidationReport
from tests.engine.conftest import SqlDb

CASES = json.loads((Path(__file__).parent / "data" / "gx_expectation_cases.json").read_text())["cases"]


class Unexpressible(Exception):
    """Our contracts cannot state this case (the reason says why)."""


def _declared(values: list[Any], pandas_dtype: str | None) -> str:
    present = [v for v in values if v is not None]
    if pandas_dtype and pandas_dtype.startswith("datetime"):
        raise Unexpressible("datetime parsing of free-form text (pandas dtype) has no contract field")
    if not present:
        return "string"
    kinds = {type(v) for v in present}
    if kinds == {bool}:
        return "boolean"
    if kinds <= {int}:
        return "integer"
    if kinds <= {int, float}:
        return "decimal"
    if kinds == {str}:
        return "string"
    raise Unexpressible(f"a column of mixed types {sorted(k.__name__ for k in kinds)}")


_IGNORED_ARGS = {"result_format", "catch_exceptions", "include_config"}


def express(case: dict[str, Any]) -> tuple[dict[str, Any], str, bool]:
    """(dataset contract, rule id, success comparable) for a case; raises ``Unexpressible``."""
    args = dict(case["in"])
    kind = case["expectation_type"]
    mostly = args.pop("mostly", None)
    for key in _IGNORED_ARGS:
        args.pop(key, None)
    if "row_condition" in args or "condition_parser" in args:
        raise Unexpressible("row_condition: a contract rule applies to every row")
    data = case["data"]
    schema = case.get("pandas_schema") or {}
    keys: list[str] = []
    cons: dict[str, Any] = {}
    rule = ""
    if kind == "expect_compound_columns_to_be_unique":
        keys = list(args.pop("column_list"))
        ignore = args.pop("ignore_row_if", "all_values_are_missing")
        partial = any(
            any(data[k][i] is None for k in keys) and not all(data[k][i] is None for k in keys)
            for i in range(len(data[keys[0]]))
        )
        if ignore != "any_value_is_missing" and partial:
            raise Unexpressible("compound uniqueness checking rows with some key values missing")
        column = None
        rule = "index.keys.unique"
    else:
        column = args.pop("column", None)
        if column is None:
            raise Unexpressible("no column argument")
    if kind == "expect_column_values_to_not_be_null":
        cons["disallow_nulls"] = True
        rule = f"{column}.not_null"
    elif kind == "expect_column_values_to_be_between":
        for flag in ("strict_min", "strict_max"):
            if args.pop(flag, False):
                raise Unexpressible("strict (exclusive) bounds have no contract field")
        if args.get("parse_strings_as_datetimes") or args.get("allow_cross_type_comparisons"):
            raise Unexpressible("parse_strings_as_datetimes / allow_cross_type_comparisons")
        lo, hi = args.pop("min_value", None), args.pop("max_value", None)
        if lo is None and hi is None:
            raise Unexpressible("no bound at all (GX raises)")
        if lo is not None:
            cons["min_value"] = lo
        if hi is not None:
            cons["max_value"] = hi
        rule = f"{column}.min_value" if lo is not None else f"{column}.max_value"
    elif kind == "expect_column_values_to_be_in_set":
        if args.get("parse_strings_as_datetimes"):
            raise Unexpressible("parse_strings_as_datetimes")
        args.pop("parse_strings_as_datetimes", None)
        cons["allowed_values"] = args.pop("value_set")
        rule = f"{column}.allowed_values"
    elif kind == "expect_column_values_to_be_unique":
        cons["unique"] = True
        rule = f"{column}.unique"
    elif kind == "expect_column_values_to_match_regex":
        cons["regex"] = args.pop("regex")
        rule = f"{column}.regex"
    elif kind in ("expect_column_value_lengths_to_be_between", "expect_column_value_lengths_to_equal"):
        for flag in ("strict_min", "strict_max"):
            if args.pop(flag, False):
                raise Unexpressible("strict (exclusive) bounds have no contract field")
        if kind.endswith("_equal"):
            lo = hi = args.pop("value")
        else:
            lo, hi = args.pop("min_value", None), args.pop("max_value", None)
        if lo is None and hi is None:
            raise Unexpressible("no bound at all (GX raises)")
        if lo is not None:
            cons["min_length"] = lo
        if hi is not None:
            cons["max_length"] = hi
        rule = f"{column}.min_length" if lo is not None else f"{column}.max_length"
    elif kind == "expect_column_to_exist":
        if args.pop("column_index", None) is not None:
            raise Unexpressible("column position: a contract does not order columns")
        rule = f"{column}.present"
    if args:
        raise Unexpressible(f"arguments without a contract field: {sorted(args)}")

    columns = []
    targets = set(keys) | ({column} if column else set())
    for name, values in data.items():
        try:
            declared = _declared(values, schema.get(name))
        except Unexpressible:
            if name in targets:
                raise
            continue  # a column the rule does not read: left out of the contract and the data
        col: dict[str, Any] = {"column_id": name, "data_type": declared}
        if name == column:
            if kind == "expect_column_to_exist":
                col["required"] = True
            elif cons:
                col["constraints"] = cons
        columns.append(col)
    if kind == "expect_column_to_exist" and column not in data:
        columns.append({"column_id": column, "data_type": "string", "required": True})
    ds: dict[str, Any] = {
        "dataset_contract_id": "gx",
        "dataset_type": "gx",
        "tenant_id": "T",
        "environment": "dev",
        "version": "1",
        "columns": columns,
    }
    if keys:
        ds["indexes"] = [{"name": "keys", "columns": keys, "unique": True}]
    return ds, rule, mostly is None


def _expected(out: dict[str, Any]) -> tuple[bool | None, int | None]:
    result = out.get("result") or {}
    count = result.get("unexpected_count")
    if count is None and "unexpected_list" in out:
        count = len(out["unexpected_list"])
    return out.get("success"), count


def _data(case: dict[str, Any], ds: DatasetContract) -> dict[str, list[Any]]:
    kept = {c.column_id for c in ds.columns}
    return {k: v for k, v in case["data"].items() if k in kept}


def _pandas(case: dict[str, Any], ds: DatasetContract) -> pd.DataFrame:
    df = pd.DataFrame(_data(case, ds))
    for name, dtype in (case.get("pandas_schema") or {}).items():
        if name in df.columns and dtype in ("int", "float", "float64", "int64", "Int64Dtype"):
            df[name] = df[name].astype("Int64" if dtype == "Int64Dtype" else dtype)
    return df


def _polars(case: dict[str, Any], ds: DatasetContract) -> pl.DataFrame:
    return pl.DataFrame({k: pl.Series(k, v, strict=False) for k, v in _data(case, ds).items()})


RUNNERS = {
    "pandas": lambda case, ds: validate(_pandas(case, ds), ds),
    "polars": lambda case, ds: validate(_polars(case, ds), ds),
}


def _ids() -> list[str]:
    return [f"{c['expectation_type'][7:]}:{c['title']}" for c in CASES]


def _is_error_case(case: dict[str, Any]) -> bool:
    out = case["out"]
    return not out or "traceback_substring" in out


def _rule(report: ValidationReport, rule_id: str) -> Any:
    return next(r for r in report.rules if r.rule_id == rule_id)


def classify(case: dict[str, Any]) -> str:
    try:
        ds, _, _ = express(case)
    except Unexpressible as exc:
        return f"unexpressible: {exc}"
    try:
        from dq_dagster.engine import compile_rules

        compile_rules(DatasetContract.model_validate(ds))
    except (ContractRuleError, ValueError) as exc:
        return f"refused: {str(exc).splitlines()[0]}"
    return "error expected" if _is_error_case(case) else "expressible"


@pytest.mark.parametrize("engine", sorted(RUNNERS))
@pytest.mark.parametrize("case", CASES, ids=_ids())
def test_gx_case(case: dict[str, Any], engine: str) -> None:
    check_case(case, engine, RUNNERS[engine])


@pytest.mark.parametrize("case", [c for c in CASES if classify(c) == "expressible"], ids=lambda c: c["title"])
def test_gx_case_in_sql(case: dict[str, Any], sql_db: SqlDb) -> None:
    """The same cases pushed down into DuckDB and Postgres (tables typed from the data)."""

    def run(case: dict[str, Any], ds: DatasetContract) -> ValidationReport:
        return validate_table(sql_db.engine, sql_db.load(_polars(case, ds), "gx"), ds)

    check_case(case, sql_db.engine.dialect.name, run)


def check_case(case: dict[str, Any], engine: str, runner: Any) -> None:
    status = classify(case)
    if status.startswith("unexpressible"):
        return  # counted in test_coverage_of_the_gx_cases
    if status.startswith("refused") or status == "error expected":
        # GX raises or we refuse at compile: neither gives a count to compare. A case GX answers
        # but we refuse must be one of the refusals the rule semantics define.
        if status.startswith("refused") and not _is_error_case(case):
            assert any(
                why in status for why in ("> max_", "compared as text", "regex", "not a valid", "no order")
            ), status
        return
    ds_doc, rule_id, success_comparable = express(case)
    ds = DatasetContract.model_validate(ds_doc)
    success, count = _expected(case["out"])
    report = runner(case, ds)
    ours = _rule(report, rule_id)
    assert "not evaluated" not in (ours.description or ""), (engine, ours.description)
    if rule_id.endswith(".min_value") and f"{rule_id[: -len('min_value')]}max_value" in {
        r.rule_id for r in report.rules
    }:
        # between = min rule + max rule: a row fails at most one of them
        other = _rule(report, rule_id[: -len("min_value")] + "max_value")
        failed, passed = ours.failed_count + other.failed_count, ours.passed and other.passed
    elif rule_id.endswith(".min_length") and f"{rule_id[: -len('min_length')]}max_length" in {
        r.rule_id for r in report.rules
    }:
        other = _rule(report, rule_id[: -len("min_length")] + "max_length")
        failed, passed = ours.failed_count + other.failed_count, ours.passed and other.passed
    else:
        failed, passed = ours.failed_count, ours.passed
    if count is not None:
        assert failed == count, (engine, case["title"], ours)
    if success is not None and success_comparable:
        assert passed == success, (engine, case["title"], ours)


def test_coverage_of_the_gx_cases() -> None:
    """Most GX cases are stated by a contract; the rest are counted with their reasons."""
    statuses = Counter(classify(c).split(":")[0] for c in CASES)
    assert statuses["expressible"] >= 80, statuses
    assert sum(statuses.values()) == len(CASES)


def test_nan_is_missing_like_null_in_every_rule() -> None:
    """The issue's example: ``[1.0, NaN, null, 5.0]`` (NaN is missing, as null is)."""
    ds = DatasetContract.model_validate(
        {
            "dataset_contract_id": "n",
            "dataset_type": "n",
            "tenant_id": "T",
            "environment": "dev",
            "version": "1",
            "columns": [
                {
                    "column_id": "x",
                    "data_type": "decimal",
                    "constraints": {
                        "disallow_nulls": True,
                        "unique": True,
                        "min_value": 0,
                        "max_value": 10,
                        "allowed_values": [1.0, 5.0],
                    },
                }
            ],
        }
    )
    values = [1.0, math.nan, None, 5.0, math.nan]
    frames = {
        "polars": pl.DataFrame({"x": values}),
        "pandas": pd.DataFrame({"x": values}),
        "polars text": pl.DataFrame({"x": ["1.0", "NaN", None, "5.0", "nan"]}),
    }
    for name, frame in frames.items():
        report = validate(frame, ds)
        got = {r.rule_id: (r.failed_count, r.checked_count) for r in report.rules}
        assert got == {
            "x.not_null": (3, 5),
            "x.data_type": (0, 2),
            "x.unique": (0, 2),
            "x.min_value": (0, 2),
            "x.max_value": (0, 2),
            "x.allowed_values": (0, 2),
        }, name


def test_cleansing_turns_nan_into_null() -> None:
    from dq_dagster.engine import cleanse

    ds = DatasetContract.model_validate(
        {
            "dataset_contract_id": "n",
            "dataset_type": "n",
            "tenant_id": "T",
            "environment": "dev",
            "version": "1",
            "primary_keys": ["k"],
            "columns": [
                {"column_id": "k", "data_type": "decimal"},
                {"column_id": "s", "data_type": "decimal"},
            ],
        }
    )
    result = cleanse(pl.DataFrame({"k": [1.0, math.nan, 2.0], "s": ["1", "NaN", "x"]}), ds)
    assert result.frame.to_dict(as_series=False) == {"k": [1.0, 2.0], "s": [1.0, None]}
    assert result.report.rejection_reasons["null_primary_key"] == 1
    steps = {(t.name, t.column): t.rows_affected for t in result.report.transformations}
    assert steps[("nan_to_null", "k")] == 1 and steps[("nan_to_null", "s")] == 1
    assert {c.column: c.values_nulled for c in result.report.column_changes} == {"k": 0, "s": 1}


@pytest.mark.parametrize(
    ("constraints", "message"),
    [
        ({"min_value": 10}, "numeric bound 10 on column 'x' declared string"),
        ({"max_value": "10"}, "numeric bound '10' on column 'x' declared string"),
        ({"min_length": 5, "max_length": 2}, "column 'x' has min_length 5 > max_length 2"),
        ({"regex": "(?<=a)b"}, "look-around"),
        ({"regex": "(a)\\1"}, "backreferences"),
    ],
)
def test_contracts_that_cannot_mean_what_they_say_are_refused(
    constraints: dict[str, Any], message: str
) -> None:
    from dq_dagster.engine import compile_rules

    ds = DatasetContract.model_validate(
        {
            "dataset_contract_id": "n",
            "dataset_type": "n",
            "tenant_id": "T",
            "environment": "dev",
            "version": "1",
            "columns": [{"column_id": "x", "data_type": "string", "constraints": constraints}],
        }
    )
    with pytest.raises(ContractRuleError, match=message.replace("(", r"\(").replace("?", r"\?")) as err:
        compile_rules(ds)
    assert str(err.value).startswith("columns.0.constraints.")
    assert "\n" not in str(err.value)


def test_min_above_max_is_refused_for_numbers_dates_and_bindings() -> None:
    from dq_dagster.engine import compile_rules

    def ds(col: dict[str, Any]) -> DatasetContract:
        return DatasetContract.model_validate(
            {"dataset_contract_id": "n", "dataset_type": "n", "tenant_id": "T", "environment": "dev",
             "version": "1", "columns": [{"column_id": "x", **col}]}
        )  # fmt: skip

    with pytest.raises(ContractRuleError, match="min_value 5 > max_value 1"):
        compile_rules(ds({"data_type": "integer", "constraints": {"min_value": 5, "max_value": 1}}))
    with pytest.raises(ContractRuleError, match="min_value"):
        compile_rules(
            ds({"data_type": "date", "constraints": {"min_value": "2024-02-01", "max_value": "2024-01-01"}})
        )
    with pytest.raises(ContractRuleError, match="declared json"):
        compile_rules(ds({"data_type": "json", "constraints": {"min_value": 1}}))
    compile_rules(
        ds({"data_type": "string", "constraints": {"min_value": "A", "max_value": "M"}})
    )  # text bounds are fine
