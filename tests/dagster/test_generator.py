"""The billing data generator: deterministic, the contract's columns, and defect counts that
match the data when counted directly with polars (not with the engine under test)."""

from __future__ import annotations

from dataclasses import fields
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from dq_dagster.examples import (
    DefectCounts,
    DefectRates,
    billing_contract,
    generate_billing,
    write_billing_csv,
)
from dq_dagster.examples.generator import BILLING_COLUMNS

EMAIL_RE = r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$"
ALLOWED = ["EUR", "USD", "GBP"]


@pytest.fixture(scope="module")
def generated() -> tuple[pl.DataFrame, DefectCounts]:
    return generate_billing(20_000, seed=123)


def test_same_seed_same_data_other_seed_or_tenant_other_data() -> None:
    a, ca = generate_billing(2_000, seed=1)
    b, cb = generate_billing(2_000, seed=1)
    assert a.equals(b)
    assert ca == cb
    assert not a.equals(generate_billing(2_000, seed=2)[0])
    assert not a.equals(generate_billing(2_000, seed=1, tenant="TNT-002")[0])


def test_columns_and_types_follow_the_contract(generated: tuple[pl.DataFrame, DefectCounts]) -> None:
    df, counts = generated
    assert tuple(df.columns) == BILLING_COLUMNS
    assert [c.column_id for c in billing_contract().datasets[0].columns] == list(BILLING_COLUMNS)
    assert df.height == counts.rows == 20_000
    assert df.schema == pl.Schema(
        {
            "invoice_id": pl.String,
            "customer_email": pl.String,
            "currency": pl.String,
            "gross_amount": pl.Float64,
            "tax_amount": pl.Float64,
            "net_amount": pl.Float64,
            "invoice_date": pl.Date,
            "status": pl.String,
        }
    )
    ids = df.get_column("invoice_id").drop_nulls()
    well_formed = ids.str.contains(r"^INV-[0-9]{8}$")
    assert int((~well_formed).sum()) == counts.malformed_invoice_ids
    first, last = df.select(
        pl.col("invoice_date").min().alias("lo"), pl.col("invoice_date").max().alias("hi")
    ).row(0)
    assert date(2024, 1, 1) <= first <= last <= date(2024, 12, 31)
    # Amounts have two decimals.
    cents = (df.get_column("gross_amount") * 100).round(6)
    assert (cents == cents.round(0)).all()


def test_defect_counts_match_the_data(generated: tuple[pl.DataFrame, DefectCounts]) -> None:
    df, n = generated
    email, cur = pl.col("customer_email"), pl.col("currency")
    net_gap = (pl.col("net_amount") - (pl.col("gross_amount") - pl.col("tax_amount"))).abs()
    got = df.select(
        null_invoice_ids=pl.col("invoice_id").is_null().sum(),
        rows_sharing_an_id=(pl.col("invoice_id").is_duplicated() & pl.col("invoice_id").is_not_null()).sum(),
        exact_duplicate_rows=pl.struct(pl.all()).is_duplicated().sum() // 2,
        null_emails=email.is_null().sum(),
        bad_emails=(~email.str.contains(EMAIL_RE)).sum(),
        long_emails=(email.str.len_chars() > 254).sum(),
        unknown_currencies=(~cur.str.strip_chars().str.to_uppercase().is_in(ALLOWED)).sum(),
        lowercase_currencies=((cur != cur.str.to_uppercase()) & cur.str.to_uppercase().is_in(ALLOWED)).sum(),
        padded_currencies=(cur != cur.str.strip_chars()).sum(),
        negative_amounts=(pl.col("gross_amount") < 0).sum(),
        negative_tax=(pl.col("tax_amount") < 0).sum(),
        negative_net=(pl.col("net_amount") < 0).sum(),
        net_mismatches=(net_gap > 0.01).sum(),
        null_net_amounts=pl.col("net_amount").is_null().sum(),
        mixed_case_statuses=(~pl.col("status").is_in(["open", "paid", "void"])).sum(),
        null_statuses=pl.col("status").is_null().sum(),
    ).row(0, named=True)
    assert got == {
        "null_invoice_ids": n.null_invoice_ids,
        "rows_sharing_an_id": n.rows_sharing_an_id,
        "exact_duplicate_rows": n.exact_duplicate_rows,
        "null_emails": n.null_emails,
        "bad_emails": n.bad_emails,
        "long_emails": n.long_emails,
        "unknown_currencies": n.unknown_currencies,
        "lowercase_currencies": n.lowercase_currencies,
        "padded_currencies": n.padded_currencies,
        "negative_amounts": n.negative_amounts,
        "negative_tax": n.negative_amounts,
        "negative_net": n.negative_amounts,
        "net_mismatches": n.net_mismatches,
        "null_net_amounts": n.null_net_amounts,
        "mixed_case_statuses": n.mixed_case_statuses,
        "null_statuses": n.null_statuses,
    }
    rates = DefectRates()
    for f in fields(DefectRates):
        assert getattr(n, f.name) == int(20_000 * getattr(rates, f.name)) > 0, f.name
    assert n.duplicate_invoice_ids + n.exact_duplicate_rows == n.rows_sharing_an_id // 2


def test_defects_are_on_disjoint_rows(generated: tuple[pl.DataFrame, DefectCounts]) -> None:
    df, n = generated
    email = pl.col("customer_email")
    flags = [
        pl.col("invoice_id").is_null(),
        ~pl.col("invoice_id").str.contains("^INV-"),
        pl.col("invoice_id").is_duplicated() & pl.col("invoice_id").is_not_null(),
        email.is_null() | ~email.str.contains(EMAIL_RE) | (email.str.len_chars() > 254),
        ~pl.col("currency").is_in(["EUR", "USD", "GBP"]),
        pl.col("gross_amount") < 0,
        (pl.col("net_amount") - (pl.col("gross_amount") - pl.col("tax_amount"))).abs() > 0.01,
        pl.col("net_amount").is_null(),
        ~pl.col("status").is_in(["open", "paid", "void"]),
    ]
    per_row = df.select(pl.sum_horizontal([f.fill_null(False).cast(pl.Int32) for f in flags]).alias("k"))
    assert per_row.get_column("k").max() == 1
    assert int(per_row.get_column("k").sum()) == n.rows_failing_hard_rules


def test_no_defects() -> None:
    df, n = generate_billing(1_000, seed=9, rates=DefectRates.none())
    assert all(v == 0 for k, v in n.as_dict().items() if k != "rows")
    assert df.null_count().row(0) == (0,) * 8
    assert df.get_column("invoice_id").is_unique().all()


def test_small_and_impossible_sizes() -> None:
    assert generate_billing(0, seed=1)[0].height == 0
    df, n = generate_billing(50, seed=1)
    assert df.height == 50
    assert n.null_emails == 0
    with pytest.raises(ValueError, match="defect rates need"):
        generate_billing(100, seed=1, rates=DefectRates(null_emails=0.6, bad_emails=0.6))
    with pytest.raises(ValueError, match="rows must be"):
        generate_billing(-1, seed=1)


def test_write_billing_csv(tmp_path: Path) -> None:
    path = tmp_path / "billing.csv"
    counts = write_billing_csv(path, 1_000, seed=4)
    back = pl.read_csv(path, try_parse_dates=True)
    df, same = generate_billing(1_000, seed=4)
    assert counts == same
    assert back.height == 1_000
    assert back.get_column("invoice_id").to_list() == df.get_column("invoice_id").to_list()
    assert back.get_column("invoice_date").to_list() == df.get_column("invoice_date").to_list()
    # Whitespace-padded currencies survive the round trip (cleansing is what trims them).
    assert back.get_column("currency").to_list() == df.get_column("currency").to_list()
