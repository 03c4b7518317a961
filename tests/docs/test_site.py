"""The data-docs site built from real stores (SQLite, filesystem, Postgres, Azure Blob on
Azurite): what the pages hold, the numbers in their tables and charts, incremental rebuilds
(proved by mtimes and hashes), removed runs, memory, escaping, the ``--tenant`` / ``--since``
selections and the ``dq-stores docs build`` command.
"""

from __future__ import annotations

import hashlib
import json
import os
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from dq_stores.cli import cli
from dq_stores.docs import MANIFEST, build_site, run_page_path
from dq_stores.docs.render import dataset_slug
from dq_stores.errors import ScopeViolationError
from dq_stores.models import ActionOutcome, JobRun, RuleResult, ValidationReport
from dq_stores.scope import Scope
from dq_stores.scoped import ScopedJobRunStore
from dq_stores.stores import Stores, open_stores
from dq_stores.testing import make_job_definition
from dq_stores.testing.history import HistorySpec, pass_rate, row_count, rule_failure_rate, write_history
from dq_stores.writer import JobRunWriter, OutputOrigin
from tests.docs.htmlpage import Element, parse

PROD = Scope("acme", "prod")
DEV = Scope("acme", "dev")
OTHER = Scope("globex", "prod")


@pytest.fixture(
    params=[
        "sqlite",
        "file",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("blob", marks=pytest.mark.azurite),
    ]
)
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    if request.param == "sqlite":
        opened = open_stores(f"sqlite:///{tmp_path / 'dq.db'}", use_env=False)
    elif request.param == "file":
        opened = open_stores((tmp_path / "store").as_uri(), use_env=False)
    elif request.param == "blob":
        container = request.getfixturevalue("blob_container")
        opened = open_stores(
            container.url("dq"), connection_string=container.connection_string, use_env=False
        )
    else:
        schema = request.getfixturevalue("pg_schema")
        opened = open_stores(request.getfixturevalue("pg_url"), schema=schema, use_env=False)
    with opened:
        yield opened


def _files(out: Path) -> dict[str, tuple[int, str]]:
    """Every page: (mtime in ns, sha256)."""
    return {
        str(p.relative_to(out)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in out.rglob("*.html")
    }


def _touch_back(out: Path) -> None:
    """Age every page by a minute, so a rewrite shows in its mtime whatever the clock's grain."""
    for p in out.rglob("*.html"):
        st = p.stat()
        os.utime(p, ns=(st.st_atime_ns - 60_000_000_000, st.st_mtime_ns - 60_000_000_000))


def test_incremental_rebuild_rewrites_only_the_pages_new_runs_touch(stores: Stores, tmp_path: Path) -> None:
    write_history(stores, HistorySpec(PROD, runs=30))
    write_history(stores, HistorySpec(PROD, dataset="orders", runs=6))
    write_history(stores, HistorySpec(OTHER, runs=9))
    out = tmp_path / "site"

    first = build_site(stores, out)
    assert first.runs == 45 and first.scopes == 2
    pages = _files(out)
    # index + 2 scope pages + 3 dataset pages + 45 run pages
    assert len(pages) == 1 + 2 + 3 + 45
    assert sorted(first.written) == sorted(pages)
    manifest = json.loads((out / MANIFEST).read_text())
    assert {p: e["sha256"] for p, e in manifest["pages"].items()} == {p: sha for p, (_, sha) in pages.items()}

    _touch_back(out)
    before = _files(out)
    again = build_site(stores, out)
    assert again.written == [] and again.removed == []
    assert again.reports_read == 0, "an unchanged store must not read a single report"
    assert _files(out) == before

    new = write_history(stores, HistorySpec(PROD, runs=10, first=30))
    third = build_site(stores, out)
    after = _files(out)
    new_pages = {run_page_path("acme", "prod", w.job_id) for w in new}
    touched = new_pages | {
        f"acme/prod/datasets/{dataset_slug('billing')}.html",
        "acme/prod/index.html",
        "index.html",
    }
    assert set(third.written) == touched
    for path, (mtime, sha) in after.items():
        if path in touched:
            assert path not in before or before[path] != (mtime, sha), path
        else:
            assert before[path] == (mtime, sha), f"{path} was rewritten"
    # The new runs' reports, and the latest validation for the dataset page's rule table.
    assert third.reports_read == 10 + 1
    manifest = json.loads((out / MANIFEST).read_text())
    assert {p: e["sha256"] for p, e in manifest["pages"].items()} == {p: sha for p, (_, sha) in after.items()}


def test_pages_of_deleted_runs_are_removed(stores: Stores, tmp_path: Path) -> None:
    written = write_history(stores, HistorySpec(PROD, runs=6))
    out = tmp_path / "site"
    build_site(stores, out)
    gone = written[-1].job_id
    assert (out / run_page_path("acme", "prod", gone)).is_file()
    stores.job_runs.delete_with_result("acme", "prod", gone)
    result = build_site(stores, out)
    assert result.removed == [run_page_path("acme", "prod", gone)]
    assert not (out / run_page_path("acme", "prod", gone)).exists()
    dataset = parse(out / f"acme/prod/datasets/{dataset_slug('billing')}.html")
    assert gone not in {row[0] for row in dataset.by_id("runs").table_rows()}


def _points(page: Element, chart: str, series: str) -> list[float]:
    figure = page.by_id(chart)
    return [float(c.attrs["data-value"]) for c in figure.find_all("circle", class_="pt", data_series=series)]


def test_dataset_page_charts_hold_the_run_history(tmp_path: Path) -> None:
    with open_stores(f"sqlite:///{tmp_path / 'dq.db'}", use_env=False) as stores:
        write_history(
            stores,
            HistorySpec(PROD, runs=36, versions=((0, "1.0.0"), (6, "1.1.0")), anomaly_at=frozenset({8})),
        )
        build_site(stores, tmp_path / "site")
    page = parse(tmp_path / "site" / f"acme/prod/datasets/{dataset_slug('billing')}.html")
    batches = range(12)
    assert _points(page, "chart-pass-rate", "validation") == [pass_rate(b) for b in batches]
    assert _points(page, "chart-row-count", "validation") == [row_count(b) for b in batches]
    assert _points(page, "chart-rows-rejected", "rows rejected") == [b % 5 for b in batches]
    assert _points(page, "chart-rule-failure-rate", "amount_positive") == [
        rule_failure_rate(b) for b in batches
    ]
    assert _points(page, "chart-null-ratio", "amount") == [round(0.01 * (b % 4), 4) for b in batches]
    # Contract version changes are marked on every chart, at the first run of version 1.1.0.
    marks = page.by_id("chart-pass-rate").find_all("line", class_="version-change")
    assert [m.attrs["data-version"] for m in marks] == ["1.1.0"]
    # The anomaly: the observed point ringed, the expected band shaded behind the profiling series.
    row_chart = page.by_id("chart-row-count")
    anomalies = row_chart.find_all("circle", class_="anomaly")
    assert [float(a.attrs["data-observed"]) for a in anomalies] == [3.0 * row_count(8)]
    assert [b.attrs["data-series"] for b in row_chart.find_all("polygon", class_="band")] == ["profiling"]
    # The rule table of the latest validation, samples masked where the engine masked them.
    rules = {row[0]: row for row in page.by_id("rules").table_rows()}
    assert rules["amount_positive"][5] == str(round(row_count(11) * rule_failure_rate(11)))
    assert "(masked)" in rules["email_format"][8] and "a***@***" in rules["email_format"][8]
    assert "-1.5" in rules["amount_positive"][8] and "(masked)" not in rules["amount_positive"][8]


def test_run_pages_hold_the_whole_report_job_definition_and_actions(tmp_path: Path) -> None:
    with open_stores(f"sqlite:///{tmp_path / 'dq.db'}", use_env=False) as stores:
        stores.job_definitions.put(
            make_job_definition("acme", "prod", "billing-daily", contract_id="billing-contract")
        )
        written = write_history(stores, HistorySpec(PROD, runs=6, job_definition_id="billing-daily"))
        validation, _, profiling = written[3:6]
        run = stores.job_runs.get("acme", "prod", validation.job_id)
        assert isinstance(run, JobRun)
        outcome = ActionOutcome(
            action_type="webhook",
            action_profile_id="notify-ops",
            status="failed",
            attempts=3,
            error="HTTP 503",
        )
        stores.job_runs.put(run.model_copy(update={"actions": [outcome]}))
        build_site(stores, tmp_path / "site")
    page = parse(tmp_path / "site" / run_page_path("acme", "prod", validation.job_id))
    rules = {row[0]: row for row in page.by_id("rules").table_rows()}
    assert rules["amount_positive"][4:7] == [f"{row_count(1):,}", str(round(row_count(1) * 0.01)), "0.01"]
    assert page.by_id("actions").table_rows() == [["webhook", "notify-ops", "failed", "3", "HTTP 503", "-"]]
    definition = json.loads(page.by_id("job-definition").text)
    assert definition["job_definition_id"] == "billing-daily"
    facts = page.by_id("run-facts").text
    assert "billing-contract version 1.0.0" in facts

    profile = parse(tmp_path / "site" / run_page_path("acme", "prod", profiling.job_id))
    bars = profile.by_id("histogram-0").find_all("rect", class_="bar")
    assert [int(b.attrs["data-count"]) for b in bars] == [3, 400, 500, row_count(1) - 903]
    assert profile.by_id("top-values-1").table_rows() == [['"DE"', "600"], ['"FR"', "300"]]
    columns = {row[0]: row for row in profile.by_id("columns").table_rows()}
    assert columns["amount"][4] == "0.01"


def test_tenant_and_since_select_what_is_built(tmp_path: Path) -> None:
    with open_stores(f"sqlite:///{tmp_path / 'dq.db'}", use_env=False) as stores:
        write_history(stores, HistorySpec(PROD, runs=9))
        write_history(stores, HistorySpec(DEV, runs=3))
        write_history(stores, HistorySpec(OTHER, runs=3))
        out = tmp_path / "site"
        only = build_site(stores, out, tenant="globex")
        assert only.scopes == 1 and only.runs == 3
        assert not (out / "acme").exists()
        # Another scope built later joins the index; the first one's pages stay as they were.
        before = _files(out)
        build_site(stores, out, tenant="acme", environment="prod", since=datetime(2026, 1, 5, 7, tzinfo=UTC))
        index = [row[:2] for row in parse(out / "index.html").by_id("scopes").table_rows()]
        assert index == [["acme", "prod"], ["globex", "prod"]]
        assert all(_files(out)[p] == v for p, v in before.items() if p.startswith("globex/"))
        prod_runs = list((out / "acme/prod/runs").glob("*.html"))
        assert len(prod_runs) == 6  # batches 1 and 2: runs at or after 07:00
        # A full build afterwards brings in the rest.
        full = build_site(stores, out)
        assert full.scopes == 3 and len(list((out / "acme/prod/runs").glob("*.html"))) == 9


def test_cli_builds_the_site(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'dq.db'}"
    with open_stores(url, use_env=False) as stores:
        write_history(stores, HistorySpec(PROD, runs=6))
    out = tmp_path / "site"
    runner = CliRunner()
    result = runner.invoke(cli, ["--url", url, "docs", "build", str(out)])
    assert result.exit_code == 0, result.output
    assert "6 runs in 1 scope(s): 9 page(s) written" in result.output
    assert (out / "index.html").is_file()
    again = runner.invoke(
        cli, ["--url", url, "docs", "build", str(out), "--tenant", "acme", "--since", "2026-01-05T07:00"]
    )
    assert again.exit_code == 0, again.output
    assert "3 runs in 1 scope(s)" in again.output
    unknown = runner.invoke(cli, ["--url", url, "docs", "build", str(out), "--tenant", "acmee"])
    assert unknown.exit_code != 0
    assert "acmee holds nothing" in unknown.output and "tenants there: acme" in unknown.output
    bad = runner.invoke(cli, ["--url", url, "docs", "build", str(out), "--since", "yesterday"])
    assert bad.exit_code != 0
    assert "--since 'yesterday' is neither an ISO time nor a duration" in bad.output


def test_a_changed_run_record_rewrites_its_page_only(stores: Stores, tmp_path: Path) -> None:
    written = write_history(stores, HistorySpec(PROD, runs=6))
    out = tmp_path / "site"
    build_site(stores, out)
    run = stores.job_runs.get("acme", "prod", written[0].job_id)
    assert run is not None
    outcome = ActionOutcome(action_type="email", status="succeeded", attempts=1)
    stores.job_runs.put(run.model_copy(update={"actions": [outcome]}))
    result = build_site(stores, out)
    # The dataset page shows no action outcomes: only the run page changes.
    assert result.written == [run_page_path("acme", "prod", run.job_id)]
    page = parse(out / run_page_path("acme", "prod", run.job_id))
    assert page.by_id("actions").table_rows()[0][:3] == ["email", "-", "succeeded"]


def test_list_documents_pages_the_records_as_stored(stores: Stores) -> None:
    write_history(stores, HistorySpec(PROD, runs=7))
    write_history(stores, HistorySpec(DEV, runs=2))
    decoded: list[str] = []
    cursor: str | None = None
    while True:
        documents, cursor = stores.job_runs.list_documents("acme", "prod", limit=3, cursor=cursor)
        assert len(documents) <= 3
        decoded += [stores.job_runs.decode_in_scope("acme", "prod", d).job_id for d in documents]
        if cursor is None:
            break
    assert decoded == [r.job_id for r in stores.job_runs.list("acme", "prod", limit=100).items]
    documents, _ = stores.job_runs.list_documents("acme", "dev")
    with pytest.raises(ScopeViolationError):
        stores.job_runs.decode_in_scope("acme", "prod", documents[0])


def test_text_from_the_store_is_escaped(tmp_path: Path) -> None:
    hostile = '<img src=x onerror="alert(1)">'
    with open_stores(f"sqlite:///{tmp_path / 'dq.db'}", use_env=False) as stores:
        [written] = write_history(stores, HistorySpec(PROD, dataset=hostile, runs=1))
        run = stores.job_runs.get("acme", "prod", written.job_id)
        assert run is not None
        stores.job_runs.put(run.model_copy(update={"message": "<script>alert(2)</script>"}))
        build_site(stores, tmp_path / "site")
    for page in (tmp_path / "site").rglob("*.html"):
        text = page.read_text()
        assert "<script" not in text and "<img" not in text, page
        document = parse(page)
        assert not document.find_all("script") and not document.find_all("img")
    run_page = (tmp_path / "site" / run_page_path("acme", "prod", written.job_id)).read_text()
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in run_page
    assert (tmp_path / "site" / f"acme/prod/datasets/{dataset_slug(hostile)}.html").is_file()


def _write_big_validations(stores: Stores, first: int, count: int) -> None:
    """Validation runs whose reports are large (~200 KB: 20 rules, each with 20 long sample
    values) while their records stay small (20 per-rule figures)."""
    job_runs = ScopedJobRunStore(stores.job_runs, PROD)
    for i in range(first, first + count):
        rules = [
            RuleResult(
                rule_id=f"rule_{r:03d}",
                rule_type="regex",
                column=f"col_{r:03d}",
                checked_count=1000,
                failed_count=20,
                failure_rate=0.02,
                passed=False,
                sample=[f"{i}-{r}-{k}-" + "x" * 500 for k in range(20)],
            )
            for r in range(20)
        ]
        report = ValidationReport(
            dataset_type="wide", status="failed", row_count=1000, rows_failed=20, pass_rate=0.98, rules=rules
        )
        JobRunWriter(job_runs).write(report, OutputOrigin(run_id=f"wide-{i:05d}", step_key="validate"))


def test_a_build_holds_one_report_at_a_time(tmp_path: Path) -> None:
    """Memory grows with the number of run records (small rows), not with their reports."""

    def peak_of_build(out: Path) -> int:
        with open_stores(f"sqlite:///{tmp_path / 'dq.db'}", use_env=False) as stores:
            tracemalloc.start()
            try:
                build_site(stores, out)
                return tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()

    with open_stores(f"sqlite:///{tmp_path / 'dq.db'}", use_env=False) as stores:
        _write_big_validations(stores, 0, 10)
    small = peak_of_build(tmp_path / "small")
    with open_stores(f"sqlite:///{tmp_path / 'dq.db'}", use_env=False) as stores:
        _write_big_validations(stores, 10, 90)
        one_report = len(
            b"".join(stores.job_runs.iter_run_result(stores.job_runs.list("acme", "prod", limit=1).items[0]))
        )
    large = peak_of_build(tmp_path / "large")
    # 90 more reports of ~200 KB each: holding them together would add over 18 MB (more as
    # models); one at a time adds the runs' rows, manifest entries and the longer dataset page
    # (measured: under 2 MB).
    assert one_report > 200_000
    assert large - small < 90 * one_report / 4, (small, large, one_report)
    # A chart draws the 10 highest of the 20 rules' lines; the rule table lists all 20.
    page = parse(tmp_path / "large" / f"acme/prod/datasets/{dataset_slug('wide')}.html")
    chart = page.by_id("chart-rule-failure-rate")
    assert "(the 10 highest of 20)" in chart.find_all("figcaption")[0].text
    assert len(chart.find_all("polyline")) == 10
    assert len(page.by_id("rules").table_rows()) == 20
