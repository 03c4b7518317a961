"""Metric series in the stores: the keys a report records in its job run's ``summary.metrics``, and
reading one dataset's history as ONE list call served by the history index (SQLite and Postgres).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dq_stores import open_stores
from dq_stores.base import JobRunStore, RunFilters
from dq_stores.metrics import metric_history, report_metrics, rule_key
from dq_stores.models import (
    ColumnProfile,
    JobRun,
    OrchestratorInfo,
    ProfilingSnapshot,
    RuleResult,
    RunSummary,
    ValidationReport,
)
from dq_stores.scope import Scope
from dq_stores.scoped import ScopedJobRunStore
from dq_stores.stores import Stores
from dq_stores.writer import JobRunWriter, OutputOrigin

T0 = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)
TENANT, ENV = "acme", "prod"


def _snapshot(rows: int, at: datetime) -> ProfilingSnapshot:
    return ProfilingSnapshot(
        tenant_id=TENANT,
        environment=ENV,
        dataset_type="billing",
        started_at=at,
        completed_at=at,
        row_count=rows,
        columns=[
            ColumnProfile(
                column="amount",
                count=rows - 2,
                null_count=2,
                null_ratio=2 / rows,
                distinct_count=10,
                min=1,
                max=99.5,
                mean=50.25,
                stddev=3.0,
            ),
            ColumnProfile(
                column="email",
                count=rows,
                null_count=0,
                null_ratio=0.0,
                distinct_count=rows,
                min="***",
                max="***",
            ),
        ],
    )


def test_a_profiling_and_a_validation_run_record_their_series() -> None:
    metrics = report_metrics(_snapshot(100, T0))
    assert metrics == {
        "row_count": 100.0,
        "amount.null_ratio": 0.02,
        "amount.distinct_ratio": 10 / 98,
        "amount.mean": 50.25,
        "amount.stddev": 3.0,
        "amount.min": 1.0,
        "amount.max": 99.5,
        "email.null_ratio": 0.0,
        "email.distinct_ratio": 1.0,
        # masked / text bounds are no series
    }
    report = ValidationReport(
        tenant_id=TENANT,
        environment=ENV,
        dataset_type="billing",
        status="passed",
        row_count=10,
        pass_rate=0.9,
        rules=[
            RuleResult(
                rule_id="amount.min_value",
                rule_type="min_value",
                checked_count=10,
                failed_count=1,
                failure_rate=0.1,
                passed=False,
            )
        ],
    )
    assert report_metrics(report) == {"row_count": 10.0, rule_key("amount.min_value"): 0.1}
    assert rule_key("amount.min_value") == "rule:amount.min_value.failure_rate"


def test_the_writer_puts_the_series_in_the_job_run_summary(tmp_path: Path) -> None:
    with open_stores(f"sqlite:///{tmp_path}/dq.db") as stores:
        writer = JobRunWriter(ScopedJobRunStore(stores.job_runs, Scope(TENANT, ENV)))
        written = writer.write(_snapshot(100, T0), OutputOrigin(run_id="r1", asset_key="billing_profile"))
        stored = stores.job_runs.get(TENANT, ENV, written.job_run.job_id)
    assert stored is not None and stored.summary is not None
    assert stored.summary.metrics["amount.mean"] == 50.25
    assert stored.summary.metrics["columns"] == 2.0  # what was there before stays


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    if request.param == "sqlite":
        opened = open_stores(f"sqlite:///{tmp_path}/dq.db")
    else:
        url: str = request.getfixturevalue("pg_url")
        schema: str = request.getfixturevalue("pg_schema")
        opened = open_stores(url, schema=schema)
    with opened:
        yield opened


def _run(i: int, dataset_type: str, job_type: str) -> JobRun:
    return JobRun(
        job_id=f"{dataset_type}-{job_type}-{i:04d}",
        tenant_id=TENANT,
        environment=ENV,
        job_type=job_type,
        status="succeeded",
        dataset_type=dataset_type,
        submitted_at=T0 + timedelta(days=i),
        orchestrator=OrchestratorInfo(run_id=f"dagster-{i}"),
        summary=RunSummary(row_count=1000 + i, metrics={"row_count": 1000.0 + i}),
    )


def test_a_datasets_history_is_one_list_call(stores: Stores, monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[JobRun] = []
    for i in range(120):
        runs += [
            _run(i, "billing", "profiling"),
            _run(i, "billing", "validation"),
            _run(i, "orders", "profiling"),
        ]
    stores.job_runs.put_many(runs)
    calls: list[RunFilters] = []
    real = type(stores.job_runs)._list_runs

    def counted(self: JobRunStore, *args: object) -> object:
        calls.append(args[-1])  # type: ignore[arg-type]
        return real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(type(stores.job_runs), "_list_runs", counted)
    history = metric_history(
        stores.job_runs, TENANT, ENV, "billing", "profiling", limit=56, before=T0 + timedelta(days=100)
    )
    assert len(calls) == 1, "one query for the whole history, not one per run"
    assert calls[0].dataset_type == "billing" and calls[0].job_type == "profiling"
    # The 56 newest before day 100 (exclusive), oldest first, with their Dagster run ids.
    assert [p.metrics["row_count"] for p in history] == [1000.0 + i for i in range(44, 100)]
    assert history[0].dagster_run_id == "dagster-44"
    assert all(p.at < T0 + timedelta(days=100) for p in history)


def test_the_history_query_is_served_by_the_history_index(tmp_path: Path) -> None:
    from dq_stores.sql.queries import RUN_FILTER_COLUMNS, list_runs_query

    path = tmp_path / "dq.db"
    with open_stores(f"sqlite:///{path}") as stores:
        stores.job_runs.put_many([_run(i, "billing", "profiling") for i in range(50)])
        dialect = stores.job_runs._db.engine.dialect  # type: ignore[attr-defined]
    filters = tuple(c for c in RUN_FILTER_COLUMNS if c in {"dataset_type", "job_type"})
    compiled = list_runs_query(True, False, filters, False, True, 57).compiled(dialect)
    params = {
        "tenant": TENANT,
        "environment": ENV,
        "f_dataset_type": "billing",
        "f_job_type": "profiling",
        "until": T0 + timedelta(days=30),
    }
    with sqlite3.connect(path) as raw:
        plan = " ".join(
            str(r[-1]) for r in raw.execute("EXPLAIN QUERY PLAN " + compiled.sql, compiled.bind(params))
        )
    assert "ix_dq_job_runs_dataset_type" in plan, plan
    assert "TEMP B-TREE" not in plan, plan  # newest first straight from the index, no sort
