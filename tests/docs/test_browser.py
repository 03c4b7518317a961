"""The data-docs site in a real browser (headless Chromium over the DevTools protocol): pages
load from ``file://`` with nothing fetched from anywhere else, charts and tables render with the
right numbers (read from the rendered DOM: positions and sizes, not only attributes), and the
screenshots the README shows are saved to ``docs/images/``.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from dq_stores.docs import build_site, run_page_path
from dq_stores.docs.render import dataset_slug
from dq_stores.models import ActionOutcome
from dq_stores.scope import Scope
from dq_stores.stores import open_stores
from dq_stores.testing import make_job_definition
from dq_stores.testing.history import HistorySpec, pass_rate, row_count, write_history
from tests.plugins.chromium import Browser

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "docs" / "images"
PROD = Scope("acme", "prod")
ANOMALY_BATCH = 9

# Every resource the page asked for, and each chart's rendered points (value, screen y, radius).
RESOURCES = "performance.getEntriesByType('resource').map(e => e.name)"
POINTS = """
(chart, series) => [...document.querySelectorAll(`#${chart} circle.pt[data-series="${series}"]`)].map(c => {
  const r = c.getBoundingClientRect();
  return {value: parseFloat(c.dataset.value), y: r.top + r.height / 2, w: r.width};
})
"""


def _call(page: Any, function: str, *args: str) -> Any:
    quoted = ", ".join(repr(a) for a in args)
    return page.evaluate(f"({function})({quoted})")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("docs-browser")
    with open_stores(f"sqlite:///{root / 'dq.db'}", use_env=False) as stores:
        stores.job_definitions.put(
            make_job_definition("acme", "prod", "billing-daily", contract_id="billing-contract")
        )
        write_history(
            stores,
            HistorySpec(
                PROD,
                runs=60,
                versions=((0, "1.0.0"), (12, "1.1.0")),
                anomaly_at=frozenset({ANOMALY_BATCH}),
                job_definition_id="billing-daily",
            ),
        )
        write_history(stores, HistorySpec(Scope("globex", "prod"), dataset="orders", runs=9))
        # The newest validation's failure alert went out on the second attempt.
        newest = stores.job_runs.list("acme", "prod", job_type="validation", limit=1).items[0]
        outcome = ActionOutcome(
            action_type="webhook", action_profile_id="billing-alerts", status="succeeded", attempts=2
        )
        stores.job_runs.put(newest.model_copy(update={"actions": [outcome]}))
        build_site(stores, root / "site")
    return root / "site"


def test_dataset_page_renders_its_charts_with_the_right_numbers(browser: Browser, site: Path) -> None:
    url = (site / f"acme/prod/datasets/{dataset_slug('billing')}.html").as_uri()
    with browser.page() as page:
        page.goto(url, width=1280, height=1060)
        assert all(name.startswith("file://") for name in page.evaluate(RESOURCES)), (
            "fetched from the network"
        )
        points = _call(page, POINTS, "chart-pass-rate", "validation")
        assert [p["value"] for p in points] == [pass_rate(b) for b in range(20)]
        assert all(p["w"] > 0 for p in points), "points are not drawn"
        # Drawn where their values say: a higher pass rate sits higher on the screen.
        for a, b in itertools.pairwise(points):
            if a["value"] != b["value"]:
                assert (a["y"] < b["y"]) == (a["value"] > b["value"]), (a, b)
        rows = _call(page, POINTS, "chart-row-count", "validation")
        assert [p["value"] for p in rows] == [row_count(b) for b in range(20)]
        anomaly = page.evaluate(
            "(() => { const a = document.querySelector('#chart-row-count circle.anomaly');"
            " const r = a.getBoundingClientRect(); return {observed: parseFloat(a.dataset.observed), w: r.width}; })()"
        )
        assert anomaly["observed"] == 3.0 * row_count(ANOMALY_BATCH) and anomaly["w"] > 0
        band = page.evaluate(
            "document.querySelector('#chart-row-count polygon.band').getBoundingClientRect().height"
        )
        assert band > 0, "the expected band is not shaded"
        versions = page.evaluate(
            "[...document.querySelectorAll('#chart-pass-rate line.version-change')].map(l => l.dataset.version)"
        )
        assert versions == ["1.1.0"]
        rules = page.evaluate(
            "[...document.querySelectorAll('#rules tbody tr')].map(tr => [...tr.cells].map(td => td.innerText))"
        )
        assert rules[0][:2] == ["amount_positive", "range"]
        assert rules[0][5] == f"{round(row_count(19) * 0.05):,}"  # batch 19: 19 % 7 = 5 -> 5 %
        assert rules[1][8].endswith("(masked)")
        page.screenshot(IMAGES / "dataset-page.png", full_page=False)


def test_run_page_renders_the_report(browser: Browser, site: Path) -> None:
    with open_stores(f"sqlite:///{site.parent / 'dq.db'}", use_env=False, create=False) as stores:
        runs = {r.job_type: r for r in stores.job_runs.list("acme", "prod", limit=3).items}
    validation, profiling = runs["validation"], runs["profiling"]
    with browser.page() as page:
        page.goto((site / run_page_path("acme", "prod", profiling.job_id)).as_uri())
        bars = page.evaluate(
            "[...document.querySelectorAll('#histogram-0 rect.bar')].map(r => "
            "({count: parseInt(r.dataset.count), h: r.getBoundingClientRect().height}))"
        )
        assert [b["count"] for b in bars] == [3, 400, 500, row_count(19) - 903]
        tallest = max(bars, key=lambda b: b["count"])
        for bar in bars:  # heights on screen are proportional to the counts
            assert abs(bar["h"] / tallest["h"] - bar["count"] / tallest["count"]) < 0.02
        checks = page.evaluate(
            "[...document.querySelectorAll('#anomaly-checks tbody tr')].map(tr => tr.cells[0].innerText + '=' + tr.cells[1].innerText)"
        )
        assert checks == [f"row_count={row_count(19):,}"]
        page.screenshot(IMAGES / "profiling-run-page.png")

        page.goto((site / run_page_path("acme", "prod", validation.job_id)).as_uri(), width=1280, height=900)
        facts = page.evaluate("document.querySelector('#run-facts').innerText")
        assert "billing-contract version 1.1.0" in facts
        definition = page.evaluate("JSON.parse(document.querySelector('#job-definition').innerText)")
        assert definition["job_definition_id"] == "billing-daily"
        actions = page.evaluate("[...document.querySelectorAll('#actions tbody td')].map(td => td.innerText)")
        assert actions[:4] == ["webhook", "billing-alerts", "succeeded", "2"]
        summary = page.evaluate("[...document.querySelectorAll('#summary tbody td')].map(td => td.innerText)")
        assert summary[0] == f"{row_count(19):,}" and summary[-1] == str(pass_rate(19))
        page.screenshot(IMAGES / "run-page.png")


def test_index_links_every_scope(browser: Browser, site: Path) -> None:
    with browser.page() as page:
        page.goto((site / "index.html").as_uri())
        rows = page.evaluate(
            "[...document.querySelectorAll('#scopes tbody tr')].map(tr => [...tr.cells].map(td => td.innerText))"
        )
        assert [r[:4] for r in rows] == [["acme", "prod", "1", "60"], ["globex", "prod", "1", "9"]]
        href = page.evaluate("document.querySelector('#scopes a').href")
        assert href == (site / "acme/prod/index.html").as_uri()
        page.goto(href)
        datasets = page.evaluate(
            "[...document.querySelectorAll('#datasets tbody tr')].map(tr => tr.cells[0].innerText)"
        )
        assert datasets == ["billing"]
