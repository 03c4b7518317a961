"""``profile_table`` against ``profile``: the same snapshot on Postgres and DuckDB (counts, nulls,
distinct counts, min / max, top values, histograms and expectations exactly; mean and standard
deviation to 1e-9 relative, as float sums differ in order)."""

from __future__ import annotations

from typing import Any

import pytest

from dq_dagster.engine import profile
from dq_dagster.engine.sqlprofile import profile_table
from dq_dagster.examples import billing_contract, generate_billing
from dq_stores.models import ProfilingSnapshot
from tests.engine.conftest import SqlDb
from tests.engine.test_pushdown import edge_contract, edge_frame


def exact(snapshot: ProfilingSnapshot) -> dict[str, Any]:
    cols = []
    for c in snapshot.columns:
        d = c.model_dump(mode="json")
        d.pop("mean"), d.pop("stddev")
        cols.append(d)
    return {
        "row_count": snapshot.row_count,
        "columns": cols,
        "expectations": [e.model_dump(mode="json") for e in snapshot.expectations],
    }


def assert_same(sql: ProfilingSnapshot, ref: ProfilingSnapshot) -> None:
    a, b = exact(sql), exact(ref)
    for ca, cb in zip(a["columns"], b["columns"], strict=True):
        assert ca == cb, (ca, cb)
    assert a == b
    for ca, cb in zip(sql.columns, ref.columns, strict=True):
        for field in ("mean", "stddev"):
            va, vb = getattr(ca, field), getattr(cb, field)
            assert (va is None) == (vb is None), (ca.column, field)
            if va is not None:
                assert va == pytest.approx(vb, rel=1e-9, abs=1e-12), (ca.column, field)


def test_billing_profiles_are_identical(sql_db: SqlDb) -> None:
    df, _ = generate_billing(5_000, seed=9)
    table = sql_db.load(df, "billing")
    sql = profile_table(sql_db.engine, table, billing_contract())
    ref = profile(df, billing_contract())
    assert_same(sql, ref)
    assert sql.metadata["engine"] == f"sql:{sql_db.engine.dialect.name}"
    email = next(c for c in sql.columns if c.column == "customer_email")
    assert email.top_values_masked and all("***" in str(v.value) for v in email.top_values)


def test_edge_profiles_are_identical(sql_db: SqlDb) -> None:
    df = edge_frame()
    table = sql_db.load(df, "edges")
    assert_same(
        profile_table(sql_db.engine, table, edge_contract(), top_k=3, bins=4),
        profile(df, edge_contract(), top_k=3, bins=4),
    )
