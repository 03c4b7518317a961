"""Sources and their engines: files by streaming (identical reports to the in-memory engine,
uniqueness out of core), tables in place, frames in memory; the engine recorded in every report."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from dq_dagster.engine import (
    FileSource,
    SourceError,
    TableSource,
    engine_for,
    profile,
    profile_source,
    validate,
    validate_file,
    validate_source,
)
from dq_dagster.examples import billing_contract, generate_billing
from tests.engine.conftest import SqlDb
from tests.engine.test_pushdown import assert_same, edge_contract, edge_frame


@pytest.mark.parametrize(("buckets", "batch_rows"), [(1, 1_000_000), (5, 7_000), (None, 2_999)])
def test_parquet_streaming_equals_in_memory(tmp_path: Path, buckets: int | None, batch_rows: int) -> None:
    df, counts = generate_billing(30_000, seed=4)
    path = tmp_path / "billing.parquet"
    df.write_parquet(path, row_group_size=4_000)
    report = validate_file(
        path, billing_contract(), buckets=buckets, batch_rows=batch_rows, spill_dir=tmp_path
    )
    assert_same(report, validate(df, billing_contract()))
    assert report.metadata["engine"] == "polars-streaming"
    assert report.rows_failed == counts.rows_failing_hard_rules
    assert "unexpected_columns" not in report.metadata  # the row number column stays internal
    assert [p.name for p in tmp_path.iterdir()] == ["billing.parquet"]  # spill removed


@pytest.mark.parametrize("chunk", [64 * 1024 * 1024, 50_000, 4_000])
def test_csv_streaming_equals_in_memory(tmp_path: Path, chunk: int) -> None:
    df, _ = generate_billing(8_000, seed=2)
    # Quoted fields with commas, doubled quotes and newlines must not be cut.
    odd = ['a "quoted", name\nover two lines', "x\r\ny", '""', ",", "plain"]
    df = df.with_columns(pl.Series("note", [odd[i % len(odd)] for i in range(df.height)]))
    path = tmp_path / "billing.csv"
    df.write_csv(path)
    report = validate_file(path, billing_contract(), buckets=3, csv_chunk_bytes=chunk)
    assert_same(report, validate(pl.read_csv(path), billing_contract()))
    assert report.row_count == 8_000


def test_every_rule_type_streams_identically(tmp_path: Path) -> None:
    df = edge_frame()
    path = tmp_path / "edges.parquet"
    df.write_parquet(path)
    assert_same(validate_file(path, edge_contract(), buckets=2), validate(df, edge_contract()))


def test_file_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.parquet"):
        validate_file(tmp_path / "nope.parquet", billing_contract())
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ValueError, match="unknown file format 'json'"):
        validate_file(tmp_path / "x.json", billing_contract())


def test_table_source_config() -> None:
    src = TableSource.from_config({"table": "sales.billing", "connection": {"env": "DQ_TEST_WAREHOUSE"}})
    assert (src.table, src.connection_env, src.connection) == ("sales.billing", "DQ_TEST_WAREHOUSE", None)
    assert TableSource.from_config({"table": "t", "connection_env": "X"}).connection_env == "X"
    assert TableSource.from_config({"table": "t", "connection": "duckdb:///x.db"}).url() == "duckdb:///x.db"
    with pytest.raises(SourceError, match="password"):
        TableSource.from_config({"table": "t", "connection": "postgresql://u:secret@h/db"})
    with pytest.raises(SourceError, match="exactly one"):
        TableSource.from_config({"table": "t"})
    with pytest.raises(SourceError, match=r"source\.table"):
        TableSource.from_config({"table": "a.b.c", "connection_env": "X"})
    with pytest.raises(SourceError, match="unknown field"):
        TableSource.from_config({"table": "t", "connection_env": "X", "dsn": "y"})
    with pytest.raises(SourceError, match="DQ_TEST_UNSET_VARIABLE is not set"):
        TableSource(table="t", connection_env="DQ_TEST_UNSET_VARIABLE").url()
    assert "secret" not in repr(TableSource(table="t", connection_env="X"))


def test_validate_source_runs_each_engine_where_the_data_lives(
    sql_db: SqlDb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    df, _ = generate_billing(3_000, seed=8)
    table = sql_db.load(df, "billing")
    monkeypatch.setenv("DQ_TEST_WAREHOUSE", sql_db.engine.url.render_as_string(hide_password=False))
    path = tmp_path / "billing.parquet"
    df.write_parquet(path)
    sources = {
        "sql": TableSource(table=table, connection_env="DQ_TEST_WAREHOUSE"),
        "polars-streaming": FileSource(str(path)),
        "polars": df,
    }
    ref = validate(df, billing_contract())
    for expected, source in sources.items():
        assert engine_for(source) == expected
        report = validate_source(source, billing_contract())
        assert report.metadata["engine"].split(":")[0] == expected
        assert_same(report, ref)
    snap = profile_source(sources["sql"], billing_contract())
    assert snap.metadata["engine"] == f"sql:{sql_db.engine.dialect.name}"
    assert snap.row_count == 3_000
    file_snap = profile_source(str(path), billing_contract())
    assert file_snap.columns == profile(df, billing_contract()).columns
