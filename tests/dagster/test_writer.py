"""The plain JobRun writer and the scoped store views, without Dagster (on SQLite files).

Checks that the writer records the right job run for each report type, keeps one record per
(run, step, asset, partition, output) whatever the retries, stores results inline or offloaded by
size with a verified hash, round-trips DataFrames through Parquet, and never writes a report into
another tenant's scope.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pandas as pd
import polars as pl
import pytest

from dq_dagster.scoped import ScopedJobRunStore
from dq_dagster.writer import (
    CLEANSED_DATA,
    PARQUET,
    JobRunWriter,
    OutputOrigin,
    UnsupportedOutputError,
    derive_job_id,
)
from dq_stores.canonical import canonical_json
from dq_stores.errors import NotFoundError, PayloadIntegrityError, ScopeViolationError
from dq_stores.models import (
    CleansingReport,
    ExpectationResult,
    JobRunStatus,
    ProfilingSnapshot,
    RuleResult,
    Severity,
    ValidationReport,
)
from dq_stores.registry import Stores, open_stores
from dq_stores.scope import Scope

T0 = datetime(2024, 5, 1, 6, 0, tzinfo=UTC)
SCOPE = Scope("acme", "prod")


def validation_report(status: str = "warning", **overrides: object) -> ValidationReport:
    rules = [
        RuleResult(
            rule_id="amount-positive",
            rule_type="min_value",
            column="amount",
            checked_count=1000,
            failed_count=0,
            failure_rate=0.0,
            passed=True,
        ),
        RuleResult(
            rule_id="currency-allowed",
            rule_type="allowed_values",
            column="currency",
            severity="soft",
            checked_count=1000,
            failed_count=3,
            failure_rate=0.003,
            passed=False,
            sample=["XXX", "EURO", None],
        ),
        RuleResult(
            rule_id="id-unique",
            rule_type="unique",
            column="id",
            checked_count=1000,
            failed_count=5,
            failure_rate=0.005,
            passed=False,
        ),
    ]
    document: dict[str, object] = {
        "tenant_id": "acme",
        "environment": "prod",
        "contract_id": "billing-contract",
        "contract_version": "2.1.0",
        "dataset_type": "billing",
        "started_at": T0,
        "completed_at": T0 + timedelta(seconds=8),
        "status": status,
        "row_count": 1000,
        "rows_failed": 5,
        "pass_rate": 0.995,
        "rules": [r.model_dump() for r in rules],
    }
    document.update(overrides)
    return ValidationReport.model_validate(document)


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Stores]:
    with open_stores(f"sqlite:///{tmp_path}/dq.db", offload_threshold=4096) as opened:
        yield opened


@pytest.fixture
def writer(stores: Stores) -> JobRunWriter:
    return JobRunWriter(ScopedJobRunStore(stores.job_runs, SCOPE))


def origin(**changes: str | None) -> OutputOrigin:
    values: dict[str, str | None] = {
        "run_id": "run-1",
        "step_key": "invoices",
        "asset_key": "billing/invoices",
        "partition_key": "2024-05-01",
        "output_name": "result",
        "job_name": "billing_daily",
    }
    values.update(changes)
    return OutputOrigin(**values)  # type: ignore[arg-type]


def test_writer_module_does_not_import_dagster() -> None:
    # The writer is the part that is testable (and usable) without Dagster.
    import subprocess

    code = "import sys, dq_dagster.writer, dq_dagster.scoped; print('dagster' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_job_id_is_deterministic_and_distinguishes_every_part() -> None:
    base = derive_job_id("run-1", "step", "a/b", "p", "result")
    assert base == derive_job_id("run-1", "step", "a/b", "p", "result")
    assert base.startswith("dq-") and len(base) == 35
    others = {
        derive_job_id("run-2", "step", "a/b", "p", "result"),
        derive_job_id("run-1", "step2", "a/b", "p", "result"),
        derive_job_id("run-1", "step", "a/c", "p", "result"),
        derive_job_id("run-1", "step", "a/b", "q", "result"),
        derive_job_id("run-1", "step", "a/b", None, "result"),
        derive_job_id("run-1", "step", "a/b", "p", "other"),
        # parts are length-prefixed: moving a boundary gives another id
        derive_job_id("run-1", "stepa/b", "", "p", "result"),
    }
    assert base not in others and len(others) == 7


def test_validation_report_becomes_a_job_run_with_an_inline_result(writer: JobRunWriter) -> None:
    report = validation_report("warning")
    written = writer.write(report, origin())
    run = written.job_run
    assert run.job_id == derive_job_id("run-1", "invoices", "billing/invoices", "2024-05-01", "result")
    assert (run.tenant_id, run.environment) == ("acme", "prod")
    assert run.job_type == "validation" and run.status == JobRunStatus.WARNING
    assert run.contract is not None and (run.contract.contract_id, run.contract.version) == (
        "billing-contract",
        "2.1.0",
    )
    assert run.dataset_type == "billing"
    assert run.orchestrator is not None
    assert (run.orchestrator.run_id, run.orchestrator.asset_key, run.orchestrator.partition_key) == (
        "run-1",
        "billing/invoices",
        "2024-05-01",
    )
    assert run.orchestrator.step_key == "invoices" and run.orchestrator.job_name == "billing_daily"
    assert (run.started_at, run.completed_at) == (T0, T0 + timedelta(seconds=8))
    assert run.summary is not None
    assert (run.summary.rules_total, run.summary.rules_failed, run.summary.pass_rate) == (3, 2, 0.995)
    assert written.pass_rate == 0.995 and written.row_count == 1000
    # The failed-rule table: failed rules only, worst first, no failing-value samples.
    assert written.table is not None
    assert [r["rule_id"] for r in written.table.rows] == ["id-unique", "currency-allowed"]
    assert all("sample" not in r for r in written.table.rows)

    stored = writer.job_runs.require(run.job_id)
    assert stored.result == written.result
    assert written.result.location == "inline" and written.result.result_type == "validation"
    assert writer.job_runs.get_result(run.job_id) == canonical_json(report)
    assert writer.read(run.job_id) == report


@pytest.mark.parametrize(
    ("status", "expected"),
    [("passed", JobRunStatus.SUCCEEDED), ("warning", JobRunStatus.WARNING), ("failed", JobRunStatus.FAILED)],
)
def test_validation_status_maps_to_run_status(
    writer: JobRunWriter, status: str, expected: JobRunStatus
) -> None:
    written = writer.write(validation_report(status), origin(run_id=f"run-{status}"))
    assert written.job_run.status == expected
    assert writer.job_runs.require(written.job_id).status == expected


def test_cleansing_and_profiling_succeed_unless_the_report_says_otherwise(writer: JobRunWriter) -> None:
    cleansing = CleansingReport(
        tenant_id="acme",
        rows_in=100,
        rows_out=90,
        rows_rejected=10,
        rejection_reasons={"bad_date": 7, "dup": 3},
    )
    written = writer.write(cleansing, origin(run_id="c1"))
    assert (written.job_run.job_type, written.job_run.status) == ("cleansing", JobRunStatus.SUCCEEDED)
    assert written.row_count == 90 and written.pass_rate == pytest.approx(0.9)
    assert written.table is not None and written.table.rows[0] == {"reason": "bad_date", "rows": 7}

    flagged = cleansing.model_copy(update={"metadata": {"status": "failed"}})
    assert writer.write(flagged, origin(run_id="c2")).job_run.status == JobRunStatus.FAILED

    profile = ProfilingSnapshot(row_count=50)
    written = writer.write(profile, origin(run_id="p1"))
    assert (written.job_run.job_type, written.job_run.status) == ("profiling", JobRunStatus.SUCCEEDED)
    assert written.pass_rate is None

    breached = ProfilingSnapshot(
        row_count=50,
        expectations=[
            ExpectationResult(column="a", metric="null_ratio", observed=0.2, max_threshold=0.1, passed=False),
            ExpectationResult(column="b", metric="null_ratio", observed=0.0, max_threshold=0.1, passed=True),
        ],
    )
    written = writer.write(breached, origin(run_id="p2"))
    assert written.job_run.status == JobRunStatus.WARNING  # soft expectation breached
    assert written.pass_rate == 0.5
    hard = breached.model_copy(
        update={
            "expectations": [e.model_copy(update={"severity": Severity.HARD}) for e in breached.expectations]
        }
    )
    assert writer.write(hard, origin(run_id="p3")).job_run.status == JobRunStatus.FAILED
    assert writer.read(written.job_id) == breached


def test_same_origin_twice_is_one_record_and_a_no_op(writer: JobRunWriter) -> None:
    first = writer.write(validation_report(), origin())
    etag = writer.job_runs.get_entry(first.job_id)
    second = writer.write(validation_report(), origin())
    assert second.job_id == first.job_id
    assert writer.job_runs.get_entry(first.job_id) == etag  # unchanged content: same etag
    assert len(writer.job_runs.list(asset_key="billing/invoices").items) == 1


def test_a_retry_with_another_outcome_replaces_the_record(writer: JobRunWriter) -> None:
    first = writer.write(validation_report("failed", pass_rate=0.5), origin())
    second = writer.write(validation_report("passed", pass_rate=1.0), origin())
    assert second.job_id == first.job_id
    assert second.replaced_status == JobRunStatus.FAILED
    runs = writer.job_runs.list(asset_key="billing/invoices").items
    assert [(r.job_id, r.status) for r in runs] == [(first.job_id, JobRunStatus.SUCCEEDED)]
    read = writer.read(first.job_id)
    assert isinstance(read, ValidationReport) and read.pass_rate == 1.0


def test_report_of_another_scope_is_refused_and_nothing_is_written(writer: JobRunWriter) -> None:
    with pytest.raises(ScopeViolationError, match="tenant_id 'other'"):
        writer.write(validation_report(tenant_id="other"), origin())
    with pytest.raises(ScopeViolationError, match="environment 'dev'"):
        writer.write(validation_report(environment="dev"), origin())
    assert writer.job_runs.list().items == []


def test_unsupported_output_is_refused(writer: JobRunWriter) -> None:
    with pytest.raises(UnsupportedOutputError, match="not dict"):
        writer.write({"status": "passed"}, origin())
    assert not JobRunWriter.supports([1, 2]) and JobRunWriter.supports(pl.DataFrame({"a": [1]}))


def test_polars_frame_round_trips_through_parquet_offloaded_when_large(writer: JobRunWriter) -> None:
    # Hashes do not compress, so the Parquet bytes stay well above the 4 KiB threshold.
    ids = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(2000)]
    frame = pl.DataFrame({"id": ids, "amount": [i * 0.5 for i in range(2000)]})
    written = writer.write(frame, origin(asset_key="billing/clean"))
    run = written.job_run
    assert (run.job_type, run.status, written.row_count) == ("cleansing", JobRunStatus.SUCCEEDED, 2000)
    assert written.result.content_type == PARQUET and written.result.result_type == CLEANSED_DATA
    assert written.result.location == "external"  # > 4 KiB threshold
    assert written.columns == [("id", "String"), ("amount", "Float64")]
    back = writer.read_latest("billing/clean", "2024-05-01")
    assert isinstance(back, pl.DataFrame) and back.equals(frame)
    assert writer.read(run.job_id, frame="pandas")["amount"].sum() == pytest.approx(frame["amount"].sum())


def test_pandas_frame_keeps_its_index_and_small_frames_stay_inline(writer: JobRunWriter) -> None:
    frame = pd.DataFrame({"amount": [1.5, 2.5]}, index=pd.Index(["a", "b"], name="id"))
    written = writer.write(frame, origin(asset_key="billing/small"))
    assert written.result.location == "inline"
    back = writer.read(written.job_id)
    assert isinstance(back, pd.DataFrame)
    pd.testing.assert_frame_equal(back, frame)


def test_offload_true_sends_even_small_results_to_the_results_location(stores: Stores) -> None:
    writer = JobRunWriter(ScopedJobRunStore(stores.job_runs, SCOPE), offload=True)
    written = writer.write(validation_report(), origin())
    assert written.result.location == "external" and written.result.uri is not None
    assert writer.read(written.job_id) == validation_report()


def test_a_corrupted_offloaded_result_is_not_returned(stores: Stores) -> None:
    writer = JobRunWriter(ScopedJobRunStore(stores.job_runs, SCOPE), offload=True)
    written = writer.write(validation_report(), origin())
    assert written.result.uri is not None
    path = Path(unquote(urlsplit(written.result.uri).path))
    path.write_bytes(path.read_bytes().replace(b"0.995", b"0.999"))
    with pytest.raises(PayloadIntegrityError):
        writer.read(written.job_id)


def test_read_latest_picks_the_newest_run_of_the_asset_and_partition(stores: Stores) -> None:
    clock = iter([T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2)])
    writer = JobRunWriter(ScopedJobRunStore(stores.job_runs, SCOPE), clock=lambda: next(clock))
    writer.write(validation_report(pass_rate=0.1), origin(run_id="old"))
    writer.write(validation_report(pass_rate=0.2), origin(run_id="new"))
    writer.write(validation_report(pass_rate=0.9), origin(run_id="other", partition_key="2024-05-02"))
    assert writer.read_latest("billing/invoices", "2024-05-01").pass_rate == 0.2
    assert writer.read_latest("billing/invoices", "2024-05-02").pass_rate == 0.9
    with pytest.raises(NotFoundError, match="no job run recorded for billing/other"):
        writer.read_latest("billing/other")


def test_another_tenant_sees_none_of_the_runs(stores: Stores) -> None:
    JobRunWriter(ScopedJobRunStore(stores.job_runs, SCOPE)).write(validation_report(), origin())
    other = JobRunWriter(ScopedJobRunStore(stores.job_runs, Scope("globex", "prod")))
    assert other.find_latest("billing/invoices") is None
    with pytest.raises(NotFoundError):
        other.read(origin().job_id)
