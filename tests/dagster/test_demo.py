"""``python -m dq_dagster.demo`` (what ``make demo`` runs): seeds the embedded store, materialises
every asset for every tenant, prints the job runs read back from the store.
"""

import io
import re
from pathlib import Path

import pytest
from dagster import DagsterInstance

from dq_dagster.definitions import ENVIRONMENT
from dq_dagster.demo import main
from dq_stores.registry import open_stores

pytestmark = [pytest.mark.dagster, pytest.mark.slow]

TENANTS = ("TNT-001", "TNT-002")

ROW = re.compile(
    r"^\s+(TNT-\d{3})\s+(\S+)\s+(validation|cleansing|profiling)\s+(\S+)\s+\S+\s+\d+\s+(\S+)\s+(dq-[0-9a-f]{32})\s*$"
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("DAGSTER_HOME", "DQ_STORES_URL", "DQ_STORES_RESULTS_URL", "DQ_STORES_SCHEMA"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_demo() -> tuple[int, str, list[tuple[str, ...]]]:
    out = io.StringIO()
    code = main([], out=out)
    text = out.getvalue()
    rows = [m.groups() for line in text.splitlines() if (m := ROW.match(line))]
    return code, text, rows


def test_demo_in_a_fresh_folder_seeds_runs_and_prints_the_runs_table(clean_env: Path) -> None:
    code, text, rows = run_demo()
    assert code == 0, text
    for step in ("[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"):
        assert step in text
    assert "12 created" in text
    assert "metadata: sqlite:///.dq/dq.db" in text
    assert "make ui" in text and "dagster dev -w workspace.yaml" in text
    # One row per DQ asset and tenant, each read back from the store in .dq/ of the folder.
    assert sorted((r[0], r[1]) for r in rows) == sorted(
        (t, a)
        for t in TENANTS
        for a in ("billing_cleansed", "billing_cleansing_report", "billing_profile", "billing_validation")
    )
    statuses = {(r[0], r[1]): r[3] for r in rows}
    assert statuses[("TNT-001", "billing_validation")] == "failed"  # the raw data has defects
    assert statuses[("TNT-002", "billing_profile")] == "warning"
    assert statuses[("TNT-001", "billing_cleansed")] == "succeeded"
    with open_stores(f"sqlite:///{clean_env}/.dq/dq.db") as stores:
        stored = {run.job_id for t in TENANTS for run in stores.job_runs.list_by_tenant(t, ENVIRONMENT)}
    assert stored == {r[5] for r in rows}
    assert (clean_env / ".dq" / "dq.results").is_dir()
    # The data-docs site beside the store: every materialization linked its run page.
    docs = clean_env / ".dq" / "docs"
    assert f"open {(docs / 'index.html').as_uri()}" in text
    assert "8 materializations link their run page as dq/report" in text
    link = re.search(r"^\s+(file://\S+/runs/(dq-[0-9a-f]{32})\.html)$", text, re.MULTILINE)
    assert link is not None and link.group(2) in {r[5] for r in rows}
    assert Path(link.group(1).removeprefix("file://")).is_file()
    assert {p.stem for p in docs.glob("*/prod/runs/*.html")} == {r[5] for r in rows}

    # A second run imports nothing new and lists only its own runs.
    code, text, again = run_demo()
    assert code == 0, text
    assert "12 unchanged" in text and "8 job runs of earlier runs not shown" in text
    assert len(again) == 8 and not {r[5] for r in again} & stored
    assert len(list(docs.glob("*/prod/runs/*.html"))) == 16


def test_demo_keeps_runs_in_the_dagster_home_instance(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = clean_env / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    code, text, rows = run_demo()
    assert code == 0, text
    assert len(rows) == 8
    assert (home / "dq" / "dq.db").is_file() and not (clean_env / ".dq").exists()
    assert (home / "dq" / "docs" / "index.html").is_file()
    with DagsterInstance.get() as instance:
        runs = instance.get_runs()
        assert len(runs) == len(TENANTS) and all(r.is_success for r in runs)
    assert "ephemeral" not in text


def test_the_demos_printed_hints_run_as_printed(clean_env: Path) -> None:
    """Every ``$ ...`` line the demo prints runs in a plain shell (no DAGSTER_HOME, the way a user
    types it after ``make demo``) and shows what it promises."""
    import os
    import subprocess

    home = clean_env / ".dagster"
    home.mkdir()
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        code, text, rows = run_demo()
    finally:
        del os.environ["DAGSTER_HOME"]
    assert code == 0, text
    hints = [line.split("$ ", 1)[1] for line in text.splitlines() if line.lstrip().startswith("$ ")]
    assert len(hints) == 2, text
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "DQ_STORES_"))}
    runs = subprocess.run(
        hints[0], shell=True, capture_output=True, text=True, env=env, cwd=clean_env, timeout=120
    )
    assert runs.returncode == 0, runs.stderr
    assert {r[5] for r in rows if r[0] == TENANTS[0]} <= set(runs.stdout.split())
    contracts = subprocess.run(
        hints[1], shell=True, capture_output=True, text=True, env=env, cwd=clean_env, timeout=120
    )
    assert contracts.returncode == 0, contracts.stderr
    assert "billing" in contracts.stdout
