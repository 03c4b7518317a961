"""Row 8: ``materialize`` of a 20-asset graph of small outputs, in process, with the JobRun IO
manager (on SQLite, and on Postgres) against the same graph with Dagster's ``FilesystemIOManager``.

The graph: 20 assets in four rows of five; the first row are roots, every later asset reads the
asset above it and, unless it starts its row, the one before it (so outputs are written and read
back). Each asset returns a small
``ValidationReport``: with the JobRun IO manager every output becomes a job run with its result
inline; with the filesystem IO manager it is pickled to a file. A fresh ephemeral Dagster instance
per materialisation; the three variants take turns within each repetition.
"""

# No ``from __future__ import annotations``: Dagster reads the asset functions' annotations.

import gc
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dagster import (
    AssetIn,
    AssetKey,
    AssetsDefinition,
    DagsterInstance,
    FilesystemIOManager,
    asset,
    materialize,
)

from bench.harness import Config, Result, Stats, check, no_gc, skipped
from bench.services import Services, pg_schema
from dq_dagster.io_manager import JobRunIOManager
from dq_dagster.resources import DQStoresResource
from dq_stores.models import RuleResult, ValidationReport

TENANT = "acme"
ENV = "prod"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _report(name: str, upstream: list[ValidationReport]) -> ValidationReport:
    rows = 1000 + sum(u.row_count for u in upstream)
    return ValidationReport(
        tenant_id=TENANT,
        environment=ENV,
        contract_id="billing-contract",
        contract_version="2.1.0",
        dataset_type="billing",
        started_at=T0,
        completed_at=T0,
        status="passed",
        row_count=rows,
        rows_failed=0,
        pass_rate=1.0,
        rules=[
            RuleResult(
                rule_id=f"{name}.not_null",
                rule_type="not_null",
                column="id",
                checked_count=rows,
                failed_count=0,
                failure_rate=0.0,
                passed=True,
            )
        ],
    )


def graph(size: int) -> list[AssetsDefinition]:
    """``size`` assets ``a00``...: ``a<i>`` reads ``a<i-5>`` (i >= 5) and ``a<i-1>`` (i >= 5, i % 5 != 0)."""
    assets: list[AssetsDefinition] = []
    for i in range(size):
        name = f"a{i:02d}"
        parents = [] if i < 5 else [i - 5] + ([i - 1] if i % 5 else [])
        ins = {f"up{k}": AssetIn(key=AssetKey(f"a{p:02d}")) for k, p in enumerate(parents)}
        assets.append(_asset(name, ins))
    return assets


def _asset(name: str, ins: dict[str, AssetIn]) -> AssetsDefinition:
    if not ins:

        @asset(name=name)
        def root() -> ValidationReport:
            return _report(name, [])

        return root
    if len(ins) == 1:

        @asset(name=name, ins=ins)
        def one(up0: ValidationReport) -> ValidationReport:
            return _report(name, [up0])

        return one

    @asset(name=name, ins=ins)
    def two(up0: ValidationReport, up1: ValidationReport) -> ValidationReport:
        return _report(name, [up0, up1])

    return two


def run_all(config: Config, services: Services, only: set[str] | None = None) -> Iterator[Result]:
    assets = graph(config.assets)
    with tempfile.TemporaryDirectory(prefix="dqbench-dagster-") as folder, ExitStack() as stack:
        root = Path(folder)
        variants: dict[str, Callable[[], Any]] = {}

        def fs_io() -> Any:
            return FilesystemIOManager(base_dir=str(root / "fs"))

        sqlite_stores = DQStoresResource(url=f"sqlite:///{root / 'dq.db'}")
        variants["filesystem"] = lambda: _materialize(assets, fs_io())
        variants["SQLite"] = lambda: _materialize(
            assets, JobRunIOManager(stores=sqlite_stores, tenant=TENANT, environment=ENV)
        )
        if services.pg_url:
            schema = stack.enter_context(pg_schema(services, "dagster"))
            pg_stores = DQStoresResource(url=services.pg_url, schema=schema)
            variants["Postgres"] = lambda: _materialize(
                assets, JobRunIOManager(stores=pg_stores, tenant=TENANT, environment=ENV)
            )
        times = _take_turns(variants, config)
        with sqlite_stores.open() as stores:
            stored = stores.job_runs.list(TENANT, ENV, limit=1000)
        check(
            len(stored) >= config.assets, f"only {len(stored)} job runs recorded for {config.assets} assets"
        )
        base = times["filesystem"]
        for n, db, limit in (("8a", "SQLite", 1.3), ("8b", "Postgres", 1.6)):
            name = f"materialize {config.assets} assets (small reports), JobRunIOManager on {db}"
            if db not in times:
                yield skipped(n, name, "latency", f"<= {limit}", services.pg_reason)
                continue
            result = Result(
                n,
                name,
                "latency",
                f"<= {limit}",
                limit,
                baseline_name="the same graph with Dagster's FilesystemIOManager (pickle files)",
            )
            result.ours = Stats.of(times[db], "s")
            result.baseline = Stats.of(base, "s")
            result.ratio = result.ours.median / result.baseline.median
            yield result.decide()


def _materialize(assets: list[AssetsDefinition], io_manager: Any) -> None:
    with DagsterInstance.ephemeral() as instance:
        outcome = materialize(assets, resources={"io_manager": io_manager}, instance=instance)
    if not outcome.success:
        raise RuntimeError("materialize failed")


def _take_turns(variants: dict[str, Callable[[], Any]], config: Config) -> dict[str, list[float]]:
    """Seconds per call of each variant; every repetition runs each once, in a rotating order."""
    names = list(variants)
    for _ in range(config.warmup):
        for name in names:
            variants[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(config.reps):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for name in order:
            gc.collect()
            with no_gc():
                start = time.perf_counter()
                variants[name]()
                times[name].append(time.perf_counter() - start)
    return times
