"""Row 16: the static data-docs site (``dq_stores.docs.build_site``) on SQLite.

16a: building the whole site for 10,000 job runs across 10 tenants (2 datasets each: validation,
cleansing and profiling reports with their results) into an empty folder, against the issue's
budget of 10 s. 16b: the incremental rebuild after 10 new runs (every run record is listed again,
only the touched pages are rendered and written), against the budget of 1 s. The history is the
synthetic one of the docs tests (``dq_stores.testing.history``), written through the same writer
as the IO manager. Each 16a repetition builds into a fresh folder; each 16b repetition first adds
10 new runs to one tenant (untimed), then times the rebuild and checks what it wrote.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

from bench.harness import Config, Result, Stats, check
from bench.services import Services
from dq_stores.docs import build_site, run_page_path
from dq_stores.scope import Scope
from dq_stores.stores import open_stores
from dq_stores.testing.history import HistorySpec, write_history

FULL_BUDGET = 10.0
INCREMENTAL_BUDGET = 1.0
NEW_RUNS = 10
DATASETS = ("billing", "orders")


def _sizes(config: Config) -> tuple[int, int]:
    """(tenants, runs in all): the issue's 10 x 10,000, or a toy size for the smoke run."""
    return (2, 60) if config.smoke else (10, 10_000)


def run_all(config: Config, services: Services, only: set[str] | None = None) -> Iterator[Result]:
    tenants, total = _sizes(config)
    per_dataset = total // tenants // len(DATASETS)
    with tempfile.TemporaryDirectory(prefix="dqbench-docs-") as folder:
        root = Path(folder)
        with open_stores(f"sqlite:///{root / 'dq.db'}", use_env=False) as stores:
            for t in range(tenants):
                for dataset in DATASETS:
                    spec = HistorySpec(
                        Scope(f"T{t:02d}", "prod"),
                        dataset=dataset,
                        runs=per_dataset,
                        versions=((0, "1.0.0"), (per_dataset // 6, "1.1.0")),
                    )
                    write_history(stores, spec)

            full: list[float] = []
            site = root / "site-0"
            for rep in range(config.warmup + config.reps):
                site = root / f"site-{rep}"
                built = build_site(stores, site)
                check(built.runs == total, f"the site holds {built.runs} runs, expected {total}")
                # index + one page per scope, dataset and run
                pages = 1 + tenants + tenants * len(DATASETS) + total
                check(len(built.written) == pages, f"{len(built.written)} pages written, expected {pages}")
                if rep >= config.warmup:
                    full.append(built.seconds)

            incremental: list[float] = []
            first = per_dataset
            for rep in range(config.warmup + config.reps):
                spec = HistorySpec(Scope("T01", "prod"), runs=NEW_RUNS, first=first)
                new = write_history(stores, spec)
                first += NEW_RUNS
                again = build_site(stores, site)
                expected = {run_page_path("T01", "prod", w.job_id) for w in new}
                check(expected <= set(again.written), "a new run's page was not written")
                # the new runs' pages, their dataset page, the scope page and the index
                check(len(again.written) == NEW_RUNS + 3, f"{len(again.written)} pages rewritten")
                if rep >= config.warmup:
                    incremental.append(again.seconds)

    size = f"{total:,} runs, {tenants} tenants x {len(DATASETS)} datasets"
    result = Result(
        "16a",
        f"build the data-docs site: {size}, SQLite ({total + 1 + tenants * 3:,} pages)",
        "budget",
        "<= 1 (10 s)",
        1.0,
        baseline_name="the issue's 10 s budget for the whole site",
    )
    result.ours = Stats.of(full, "s")
    result.baseline = Stats.of([FULL_BUDGET], "s")
    result.ratio = result.ours.median / FULL_BUDGET
    yield result.decide()

    result = Result(
        "16b",
        f"rebuild the data-docs site after {NEW_RUNS} new runs (of {total:,}): {NEW_RUNS + 3} pages rewritten, SQLite",
        "budget",
        "<= 1 (1 s)",
        1.0,
        baseline_name="the issue's 1 s budget for an incremental rebuild",
    )
    result.ours = Stats.of(incremental, "s")
    result.baseline = Stats.of([INCREMENTAL_BUDGET], "s")
    result.ratio = result.ours.median / INCREMENTAL_BUDGET
    yield result.decide()
