"""A smoke run of the benchmarks (``python -m bench --smoke``): every benchmark's code runs at toy
sizes against the real services, so it cannot rot. It checks that each one produced figures, the
table and ``latest.json``, and that ours and each baseline did the same work (the benchmarks check
that themselves and raise); it never checks speed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench.runner import run
from bench.services import Services
from tests.plugins.azurite import Azurite
from tests.plugins.postgres import PG_DSN

pytestmark = [pytest.mark.bench_smoke, pytest.mark.postgres, pytest.mark.azurite, pytest.mark.dagster]

ROWS = {str(n) for n in range(1, 18)}


def test_every_benchmark_runs_and_reports(pg_url: str, azurite: Azurite, tmp_path: Path) -> None:
    services = Services(pg_dsn=PG_DSN, pg_url=pg_url, azurite_connection_string=azurite.connection_string)
    output = tmp_path / "latest.json"
    lines: list[str] = []
    results = run(smoke=True, output=output, services=services, echo=lines.append)

    by_row = {r.id.rstrip("abcdefgh") for r in results}
    assert by_row == ROWS
    for result in results:
        # great-expectations is optional (not a dependency): the only row allowed to skip.
        if result.id == "10b" and result.verdict == "skipped":
            assert "not installed" in result.note
            continue
        assert result.verdict in {"met", "MISSED", "info"}, (result.id, result.verdict, result.note)
        assert result.ratio is not None and math.isfinite(result.ratio), result.id
        # 17c counts false alarms: zero is its best figure.
        assert result.ratio > 0 or result.id == "17c", result.id
        assert result.ours is not None and result.baseline is not None, result.id
        assert result.baseline_name, result.id

    saved = json.loads(output.read_text())
    assert saved["smoke"] is True
    assert [r["id"] for r in saved["results"]] == [r.id for r in results]
    assert saved["table"].splitlines()[0].split() == [
        "#",
        "benchmark",
        "ours",
        "baseline",
        "ratio",
        "target",
        "verdict",
    ]
    plans = [r["details"]["explain"] for r in saved["results"] if "explain" in r["details"]]
    assert len(plans) == 4  # row 4 at both sizes, on Postgres and SQLite
    for plan in plans:
        assert set(plan) == {"first page", "second page (keyset cursor)"}
        assert all("dq_job_runs" in text for text in plan.values())
    assert any(line.startswith("#") for line in lines), "the table was not printed"
