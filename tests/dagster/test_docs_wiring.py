"""Data docs from Dagster: with a docs folder on the stores resource (or the component), each DQ
materialization refreshes the site and links its run page as ``dq/report``; without one, nothing
is written and no link is added. Real ``materialize`` runs on a SQLite store."""

# No ``from __future__ import annotations``: Dagster reads asset parameter annotations at runtime.
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dagster import StaticPartitionsDefinition, UrlMetadataValue, asset, materialize

from dq_dagster.component import DataQualityComponent, DatasetAttributes, SourceAttributes, StoresAttributes
from dq_dagster.io_manager import JobRunIOManager
from dq_dagster.resources import DQStoresResource
from dq_stores.docs.render import dataset_slug
from dq_stores.models import RuleResult, ValidationReport
from tests.docs.htmlpage import parse

pytestmark = pytest.mark.dagster

T0 = datetime(2026, 2, 1, 6, 0, tzinfo=UTC)
TENANTS = StaticPartitionsDefinition(["acme", "globex"])


@asset(partitions_def=TENANTS, io_manager_key="dq_io")
def billing_validation() -> ValidationReport:
    return ValidationReport(
        dataset_type="billing",
        contract_id="billing-contract",
        contract_version="2.0.0",
        started_at=T0,
        completed_at=T0,
        status="failed",
        row_count=500,
        rows_failed=25,
        pass_rate=0.95,
        rules=[
            RuleResult(
                rule_id="amount_positive",
                rule_type="range",
                column="amount",
                checked_count=500,
                failed_count=25,
                failure_rate=0.05,
                passed=False,
            )
        ],
    )


@pytest.fixture(autouse=True)
def _no_docs_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DQ_STORES_DOCS_DIR", raising=False)
    monkeypatch.delenv("DQ_STORES_DOCS_URL", raising=False)


def _materialize(stores: DQStoresResource, tenant: str) -> dict[str, object]:
    io = JobRunIOManager(stores=stores, environment="prod")
    result = materialize([billing_validation], resources={"dq_io": io}, partition_key=tenant)
    assert result.success
    [event] = result.get_asset_materialization_events()
    metadata = event.event_specific_data.materialization.metadata  # type: ignore[union-attr]
    return dict(metadata)


def test_each_materialization_refreshes_the_site_and_links_its_run_page(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    stores = DQStoresResource(url=f"sqlite:///{tmp_path / 'dq.db'}", docs_dir=str(docs))
    meta = _materialize(stores, "acme")
    link = meta["dq/report"]
    assert isinstance(link, UrlMetadataValue)
    job_id = meta["dq/job_run_id"].value  # type: ignore[attr-defined]
    page = docs / "acme" / "prod" / "runs" / f"{job_id}.html"
    assert link.value == page.as_uri()
    rules = parse(page).by_id("rules").table_rows()
    assert rules[0][:2] == ["amount_positive", "range"] and rules[0][5] == "25"
    assert (docs / "acme" / "prod" / "datasets" / f"{dataset_slug('billing')}.html").is_file()

    # The next tenant's run joins the same site; the first tenant's pages are left as they were.
    before = page.stat().st_mtime_ns
    meta = _materialize(stores, "globex")
    index = [row[0] for row in parse(docs / "index.html").by_id("scopes").table_rows()]
    assert index == ["acme", "globex"]
    assert page.stat().st_mtime_ns == before
    assert str(meta["dq/report"].value).endswith(f"/globex/prod/runs/{meta['dq/job_run_id'].value}.html")  # type: ignore[attr-defined]


def test_docs_url_names_where_the_site_is_served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DQ_STORES_DOCS_DIR", str(tmp_path / "site"))
    monkeypatch.setenv("DQ_STORES_DOCS_URL", "https://dqdocs.example.com/site/")
    meta = _materialize(DQStoresResource(url=f"sqlite:///{tmp_path / 'dq.db'}"), "acme")
    job_id = meta["dq/job_run_id"].value  # type: ignore[attr-defined]
    assert meta["dq/report"].value == f"https://dqdocs.example.com/site/acme/prod/runs/{job_id}.html"  # type: ignore[attr-defined]
    assert (tmp_path / "site" / "acme" / "prod" / "runs" / f"{job_id}.html").is_file()


def test_no_docs_folder_no_site_and_no_link(tmp_path: Path) -> None:
    meta = _materialize(DQStoresResource(url=f"sqlite:///{tmp_path / 'dq.db'}"), "acme")
    assert "dq/report" not in meta
    assert not list(tmp_path.rglob("*.html"))


def test_component_passes_its_docs_attributes_to_the_stores_resource(tmp_path: Path) -> None:
    component = DataQualityComponent(
        datasets=[DatasetAttributes(dataset_type="billing", source=SourceAttributes(asset="raw_billing"))],
        stores=StoresAttributes(docs_dir=str(tmp_path / "docs"), docs_url="https://docs.example.com"),
    )
    resource = component.stores_resource(resolved=True)
    assert resource.docs_location() == ((tmp_path / "docs").resolve(), "https://docs.example.com")
