"""The SQL engine against the polars engine: identical reports on Postgres and DuckDB.

Identical means every rule's id, type, column, severity, checked and failed counts, failure rate,
pass / fail and description, and the report's row count, rows failing hard rules, pass rate and
status. Samples may differ (SQL has no row order) but are failing values of the rule, bounded and
masked alike. Data: the billing generator's, and a fixture frame exercising every rule type at
its edges (bounds, NaN, case, multi-byte lengths, newlines and Unicode classes in regexes,
composite keys with nulls, types).
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

import polars as pl
import pytest

from dq_dagster.engine import compile_rules, validate
from dq_dagster.engine.pushdown import SqlEngineError, validate_table
from dq_dagster.examples import billing_contract, generate_billing
from dq_stores.models import DataContract, ValidationReport
from tests.engine.conftest import SqlDb

RULE_FIELDS = (
    "rule_id",
    "rule_type",
    "column",
    "severity",
    "checked_count",
    "failed_count",
    "failure_rate",
    "passed",
    "description",
    "sample_masked",
)


def summary(report: ValidationReport) -> dict[str, Any]:
    return {
        "row_count": report.row_count,
        "rows_failed": report.rows_failed,
        "pass_rate": report.pass_rate,
        "status": report.status,
        "header": (report.tenant_id, report.environment, report.contract_id, report.dataset_type),
        "rules": [{f: getattr(r, f) for f in RULE_FIELDS} for r in report.rules],
    }


def assert_same(sql: ValidationReport, ref: ValidationReport) -> None:
    a, b = summary(sql), summary(ref)
    for ra, rb in zip(a["rules"], b["rules"], strict=True):
        assert ra == rb, (ra, rb)
    assert a == b


def test_billing_reports_are_identical(sql_db: SqlDb) -> None:
    df, counts = generate_billing(20_000, seed=7)
    table = sql_db.load(df, "billing")
    sql = validate_table(sql_db.engine, table, billing_contract())
    ref = validate(df, billing_contract())
    assert_same(sql, ref)
    assert sql.metadata["engine"] == f"sql:{sql_db.engine.dialect.name}"
    assert ref.metadata["engine"] == "polars"
    assert sql.rows_failed == counts.rows_failing_hard_rules
    by_id = {r.rule_id: r for r in ref.rules}
    for rule in sql.rules:
        assert len(rule.sample) <= 20
        assert bool(rule.sample) == bool(rule.failed_count and by_id[rule.rule_id].sample), rule.rule_id
        if rule.column == "customer_email" and rule.sample:
            assert rule.sample_masked and all("***" in str(v) for v in rule.sample)


def test_a_compiled_plan_and_a_url_work(sql_db: SqlDb) -> None:
    df, _ = generate_billing(2_000, seed=3)
    table = sql_db.load(df, "billing")
    url = sql_db.engine.url.render_as_string(hide_password=False)
    sql = validate_table(url, table, compile_rules(billing_contract()), samples=False)
    assert_same(sql, validate(df, billing_contract()))
    assert all(r.sample == [] for r in sql.rules)


# -- every rule type at its edges -------------------------------------------------------------------

NAN, INF = math.nan, math.inf


def edge_frame() -> pl.DataFrame:
    rows: list[dict[str, Any]] = [
        dict(
            id=1,
            a="x",
            b=1,
            s="EUR",
            t="ab",
            d="123",
            e="a@b.io",
            x=0.0,
            n=1,
            f=1.0,
            dt=date(2024, 1, 1),
            ts=datetime(2024, 1, 1, 0, 0),
            flag=True,
            code="B",
        ),
        dict(
            id=2,
            a="x",
            b=1,
            s="eur",
            t="ab\n",
            d="\u0661\u0662\u0663",
            e="a b@c.io",
            x=10.0,
            n=5,
            f=2.5,
            dt=date(2024, 12, 31),
            ts=datetime(2023, 12, 31, 23, 59, 59),
            flag=False,
            code="M",
        ),
        dict(
            id=2,
            a="x",
            b=None,
            s="usd",
            t="a\nb",
            d="12a",
            e="a\u00a0b@c.io",
            x=-0.0,
            n=0,
            f=INF,
            dt=date(2023, 12, 31),
            ts=None,
            flag=None,
            code="a",
        ),
        dict(
            id=None,
            a=None,
            b=None,
            s="USD",
            t="axb",
            d="",
            e=None,
            x=10.000001,
            n=6,
            f=NAN,
            dt=date(2025, 1, 1),
            ts=datetime(2030, 1, 1),
            flag=True,
            code="Ä",
        ),
        dict(
            id=4,
            a="y",
            b=2,
            s="EURO",
            t=None,
            d="\u0663",
            e="x@y.COM",
            x=NAN,
            n=None,
            f=1e19,
            dt=None,
            ts=datetime(2024, 6, 1, 12),
            flag=True,
            code="L",
        ),
        dict(
            id=5,
            a="y",
            b=2,
            s=" EUR",
            t="ab",
            d="12",
            e="é@ü.de",
            x=INF,
            n=3,
            f=-3.0,
            dt=date(2024, 6, 1),
            ts=datetime(2024, 1, 1),
            flag=True,
            code=None,
        ),
        dict(
            id=6,
            a="z",
            b=3,
            s="€€€",
            t="AB",
            d="1²",
            e="a@@b.io",
            x=-INF,
            n=2,
            f=None,
            dt=date(2024, 1, 1),
            ts=datetime(2024, 1, 1),
            flag=True,
            code="A",
        ),
        dict(
            id=7,
            a="z",
            b=4,
            s="😀😀😀😀",
            t="ab",
            d="9",
            e="ok@example.org",
            x=None,
            n=4,
            f=0.0,
            dt=date(2024, 2, 29),
            ts=datetime(2024, 1, 1),
            flag=True,
            code="Z",
        ),
    ]
    return pl.DataFrame(
        rows,
        schema={
            "id": pl.Int64, "a": pl.String, "b": pl.Int64, "s": pl.String, "t": pl.String, "d": pl.String,
            "e": pl.String, "x": pl.Float64, "n": pl.Int64, "f": pl.Float64, "dt": pl.Date,
            "ts": pl.Datetime("us"), "flag": pl.Boolean, "code": pl.String,
        },
    )  # fmt: skip


def edge_contract() -> DataContract:
    def col(name: str, data_type: str, **cons: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"column_id": name, "data_type": data_type}
        if cons:
            out["constraints"] = {"severity": "soft", **cons} if name in ("t", "code") else cons
        return out

    ds = {
        "dataset_contract_id": "edges",
        "dataset_type": "edges",
        "tenant_id": "T",
        "environment": "dev",
        "version": "1",
        "primary_keys": ["id"],
        "indexes": [{"name": "ab", "columns": ["a", "b"], "unique": True}],
        "columns": [
            col("id", "integer"),
            col("a", "string", required=True),
            col("b", "integer"),
            col("s", "string", allowed_values=["EUR", "USD"], min_length=3, max_length=3, regex="^[A-Z]{3}$"),
            col("t", "string", regex="^ab$"),
            col("d", "string", regex=r"^\d+$"),
            col("e", "string", regex=r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$"),
            col("x", "decimal", min_value=0, max_value=10, disallow_nulls=True),
            col("n", "integer", min_value=1, max_value=5, allowed_values=[1, 2, 3, 4.5], unique=True),
            col("f", "integer"),
            col("dt", "date", min_value="2024-01-01", max_value="2024-12-31"),
            col("ts", "datetime", min_value="2024-01-01T00:00:00Z"),
            col("flag", "boolean", allowed_values=[True]),
            col("code", "string", min_value="B", max_value="M"),
        ],
    }
    templates = [
        {"template_id": "cross", "rule_type": "expression", "parameters": {"expression": "x / 2 <= n AND NOT (n IS NULL)"}},
        {"template_id": "dot", "rule_type": "regex", "parameters": {"pattern": "a.b"}},
        {"template_id": "len", "rule_type": "length", "parameters": {"min_length": 1, "max_length": 2}},
        {"template_id": "rng", "rule_type": "range", "severity": "soft", "parameters": {"min_value": -1, "max_value": 2}},
        {"template_id": "pair", "rule_type": "unique", "parameters": {"columns": ["s", "t"]}},
    ]  # fmt: skip
    bindings = [
        {"template_id": "cross", "binding_id": "x_within_twice_n"},
        {"template_id": "dot", "column_id": "t"},
        {"template_id": "len", "column_id": "d"},
        {"template_id": "rng", "column_id": "f"},
        {"template_id": "pair", "binding_id": "s_t_unique"},
    ]
    return DataContract.model_validate(
        {
            "contract_id": "edges",
            "tenant_id": "T",
            "environment": "dev",
            "version": "1",
            "name": "edges",
            "datasets": [ds],
            "rule_templates": templates,
            "rule_bindings": bindings,
        }
    )


def test_every_rule_type_at_its_edges_gives_identical_reports(sql_db: SqlDb) -> None:
    df = edge_frame()
    table = sql_db.load(df, "edges")
    ref = validate(df, edge_contract())
    sql = validate_table(sql_db.engine, table, edge_contract())
    assert_same(sql, ref)
    # The fixture really exercises the rules: most of them fail somewhere.
    failing = {r.rule_id for r in ref.rules if r.failed_count}
    assert len(failing) >= 20, failing
    assert {r.rule_type for r in ref.rules} >= {
        "not_null", "unique", "data_type", "min_value", "max_value", "regex", "allowed_values",
        "min_length", "max_length", "expression", "required_column",
    }  # fmt: skip
    assert all("not evaluated" not in (r.description or "") for r in sql.rules)


@pytest.mark.parametrize(
    ("pattern", "why"),
    [("(?i)^ab$", "inline flags"), (r"\bab", "word boundaries"), ("a{1,300}", "repetition count")],
)
def test_a_regex_the_database_cannot_match_exactly_is_not_evaluated(
    sql_db: SqlDb, pattern: str, why: str
) -> None:
    df = pl.DataFrame({"t": ["ab", "AB", "x"]})
    contract = DataContract.model_validate(
        {
            "contract_id": "r", "tenant_id": "T", "environment": "dev", "version": "1", "name": "r",
            "datasets": [{"dataset_contract_id": "r", "dataset_type": "r", "tenant_id": "T", "environment": "dev",
                          "version": "1", "columns": [{"column_id": "t", "data_type": "string", "constraints": {"regex": pattern}}]}],
        }
    )  # fmt: skip
    sql = validate_table(sql_db.engine, sql_db.load(df, "r"), contract)
    rule = sql.rules[0]
    assert (rule.checked_count, rule.failed_count, rule.passed) == (0, 0, False)
    assert "not evaluated" in (rule.description or "") and why in (rule.description or "")
    assert validate(df, contract).rules[0].checked_count == 3  # polars runs it


def test_text_declared_numeric_is_not_evaluated_in_sql_never_guessed(sql_db: SqlDb) -> None:
    df = pl.DataFrame({"v": ["1", " 2 ", "x", None]})
    contract = DataContract.model_validate(
        {
            "contract_id": "r", "tenant_id": "T", "environment": "dev", "version": "1", "name": "r",
            "datasets": [{"dataset_contract_id": "r", "dataset_type": "r", "tenant_id": "T", "environment": "dev",
                          "version": "1", "columns": [{"column_id": "v", "data_type": "integer", "required": True,
                                                       "constraints": {"min_value": 2}}]}],
        }
    )  # fmt: skip
    sql = validate_table(sql_db.engine, sql_db.load(df, "v"), contract)
    got = {
        r.rule_id: (r.checked_count, r.failed_count, "not evaluated" in (r.description or ""))
        for r in sql.rules
    }
    assert got == {
        "v.present": (4, 0, False),
        "v.not_null": (4, 1, False),
        "v.data_type": (0, 0, True),
        "v.min_value": (0, 0, True),
    }
    assert sql.status == "failed"


def test_an_expression_outside_the_translatable_subset_is_not_evaluated(sql_db: SqlDb) -> None:
    df = pl.DataFrame({"a": [1, 5], "b": [2, 2]})
    contract = DataContract.model_validate(
        {
            "contract_id": "r", "tenant_id": "T", "environment": "dev", "version": "1", "name": "r",
            "datasets": [{"dataset_contract_id": "r", "dataset_type": "r", "tenant_id": "T", "environment": "dev",
                          "version": "1", "columns": [{"column_id": "a", "data_type": "integer"}, {"column_id": "b", "data_type": "integer"}]}],
            "rule_templates": [{"template_id": "m", "rule_type": "expression", "parameters": {"expression": "a % b = 1"}}],
            "rule_bindings": [{"template_id": "m", "binding_id": "odd"}],
        }
    )  # fmt: skip
    sql = validate_table(sql_db.engine, sql_db.load(df, "m"), contract)
    odd = next(r for r in sql.rules if r.rule_id == "odd")
    assert "not evaluated" in (odd.description or "") and not odd.passed
    assert next(r for r in validate(df, contract).rules if r.rule_id == "odd").checked_count == 2


def test_a_missing_table_is_one_clear_error(sql_db: SqlDb) -> None:
    name = f"{sql_db.schema}.nope" if sql_db.schema else "nope"
    with pytest.raises(SqlEngineError, match=r"nope.*does not exist"):
        validate_table(sql_db.engine, name, billing_contract())


def test_missing_columns_are_reported_as_in_polars(sql_db: SqlDb) -> None:
    df, _ = generate_billing(500, seed=1)
    df = df.drop("currency", "status")
    sql = validate_table(sql_db.engine, sql_db.load(df, "partial"), billing_contract())
    assert_same(sql, validate(df, billing_contract()))


def test_postgres_nan_and_numeric_columns(sql_db: SqlDb) -> None:
    """NaN stored in the database is missing too (Postgres and DuckDB order NaN above every number)."""
    df = pl.DataFrame({"x": [1.0, NAN, None, 5.0, NAN]})
    table = sql_db.load(df, "nan")
    contract = DataContract.model_validate(
        {
            "contract_id": "n", "tenant_id": "T", "environment": "dev", "version": "1", "name": "n",
            "datasets": [{"dataset_contract_id": "n", "dataset_type": "n", "tenant_id": "T", "environment": "dev",
                          "version": "1", "columns": [{"column_id": "x", "data_type": "decimal", "constraints": {
                              "disallow_nulls": True, "unique": True, "min_value": 0, "max_value": 4,
                              "allowed_values": [1.0, 5.0]}}]}],
        }
    )  # fmt: skip
    sql = validate_table(sql_db.engine, table, contract)
    assert_same(sql, validate(df, contract))
    assert {r.rule_id: r.failed_count for r in sql.rules} == {
        "x.not_null": 3, "x.data_type": 0, "x.unique": 0, "x.min_value": 0, "x.max_value": 1, "x.allowed_values": 0,
    }  # fmt: skip


def test_schema_qualified_and_bare_names(sql_db: SqlDb) -> None:
    df = pl.DataFrame({"id": [1, 1]})
    sql_db.load(df, "solo")
    contract = DataContract.model_validate(
        {
            "contract_id": "n", "tenant_id": "T", "environment": "dev", "version": "1", "name": "n",
            "datasets": [{"dataset_contract_id": "n", "dataset_type": "n", "tenant_id": "T", "environment": "dev",
                          "version": "1", "primary_keys": ["id"], "columns": [{"column_id": "id", "data_type": "integer"}]}],
        }
    )  # fmt: skip
    schema = sql_db.schema or "main"
    report = validate_table(sql_db.engine, f"{schema}.solo", contract)
    assert report.rows_failed == 2
    with pytest.raises(SqlEngineError, match="does not exist"):
        validate_table(sql_db.engine, f"{schema}_other.solo", contract)
    with pytest.raises(ValueError, match=r"schema\.table"):
        validate_table(sql_db.engine, "a.b.c", contract)
