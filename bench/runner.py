"""Runs the benchmark groups in order, each in isolation: a group that fails is reported as
``error`` in the table (with the exception) and the others still run.

``run(smoke=True, ...)`` is what the test suite calls; the services (Postgres, Azurite) can be
handed in so the suite's own fixtures are used.
"""

from __future__ import annotations

import importlib
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

from bench import harness
from bench.harness import Config, Result
from bench.services import PG_DSN, PG_URL, Services, azurite, postgres_available

Group = Callable[[Config, Services, "set[str] | None"], Iterator[Result]]


GROUPS: list[tuple[set[str], str, str]] = [
    ({"1", "2", "3", "4", "5"}, "SQL stores", "bench.sql"),
    ({"6"}, "claim check to Azurite", "bench.claim_check"),
    ({"7"}, "filesystem put", "bench.filesystem"),
    ({"8"}, "Dagster materialize", "bench.dagster_graph"),
    ({"9", "10", "11"}, "validation", "bench.validation"),
    ({"12"}, "CSV pipeline", "bench.pipeline"),
    ({"13"}, "validation pushed down into Postgres (large)", "bench.pushdown"),
    ({"14"}, "streaming validation of a file larger than memory (large)", "bench.streaming"),
    ({"15"}, "DataQualityComponent load", "bench.component_load"),
    ({"16"}, "data-docs site", "bench.docs_site"),
    ({"17"}, "anomaly detection on synthetic metric histories", "bench.anomaly"),
]
"""(table rows, title, module with ``run_all(config, services, only)``); imported when run, so a
run of the SQL rows never pays for importing Dagster."""

LARGE = {"13", "14"}
"""Rows that take minutes and gigabytes: run by ``make bench-large`` (``--large``), or when named
with ``--only``; the smoke run runs them at toy sizes."""


def run(
    *,
    smoke: bool = False,
    only: set[str] | None = None,
    output: Path | None = None,
    services: Services | None = None,
    echo: Callable[[str], None] = print,
    large: bool = False,
) -> list[Result]:
    config = Config.smoke_run() if smoke else Config.full()
    started_info = harness.machine()
    started = time.monotonic()
    results: list[Result] = []
    with ExitStack() as stack:
        if services is None:
            services = Services()
            reason = postgres_available(PG_DSN)
            if reason is None:
                services.pg_dsn, services.pg_url = PG_DSN, PG_URL
            else:
                services.pg_reason = reason
            if only is None or "6" in only:
                conn, why = stack.enter_context(azurite())
                services.azurite_connection_string, services.azurite_reason = conn, why
        for rows, title, module in GROUPS:
            if only is not None and not rows & only:
                continue
            if rows <= LARGE and not (large or smoke or only is not None):
                continue
            echo(f"== {title} (rows {', '.join(sorted(rows, key=int))})")
            t0 = time.monotonic()
            try:
                group: Group = importlib.import_module(module).run_all
                for result in group(config, services, only):
                    results.append(result)
                    echo(f"   {result.id:>4} {result.name}: ratio {_ratio(result)} {result.verdict}")
            except Exception as exc:  # one broken group must not hide the others' figures
                if smoke:
                    raise
                error = harness.skipped(f"{min(rows, key=int)}", title, "latency", "", f"error: {exc!r}")
                error.verdict = "error"
                error.details["traceback"] = traceback.format_exc()
                results.append(error)
                echo(traceback.format_exc())
            echo(f"   ({time.monotonic() - t0:.0f} s)")
    elapsed = time.monotonic() - started
    echo("")
    echo(harness.table(results))
    echo("")
    echo("Baselines:")
    echo(harness.baselines(results))
    if output is not None:
        # A full run without --large keeps the large rows' earlier figures (make bench-large).
        keep = frozenset(LARGE) if only is None and not large else frozenset()
        harness.write_json(output, results, config, started_info, elapsed, merge=only is not None, keep=keep)
    return results


def _ratio(result: Result) -> str:
    return "-" if result.ratio is None else f"{result.ratio:.2f}"
