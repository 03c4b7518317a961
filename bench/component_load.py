"""Row 15 (13 and 14 are the large-data rows of another change): loading a code location whose
``DataQualityComponent`` serves 100 tenants x 3 datasets read from the store (SQLite, and
Postgres), and one materialization of a tenant partition.

15a / 15b: the load (``read_state``: one tenant listing and one ``get_latest_for_dataset`` per
tenant and dataset, the rules compiled; then the definitions built and validated) against the
issue's budget of 5 s. 15c: the same load against the same definitions built from a static list
(the state already in memory: what a load costs without reading the store). 15d: one partition of
the billing job (20,000 raw rows: validation, cleansing with its asset checks, profile) against
the budget of the load (informational). Fresh Dagster objects per repetition.
"""

# No ``from __future__ import annotations``: Dagster reads the asset functions' annotations.

import json
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

from dagster import DagsterInstance, Definitions, StaticPartitionsDefinition

from bench.harness import Config, Result, Stats, check, skipped
from bench.services import Services, pg_schema
from dq_dagster.component import DataQualityComponent, DatasetAttributes, SourceAttributes
from dq_dagster.examples.generator import billing_contract
from dq_dagster.examples.sources import raw_billing_asset
from dq_dagster.resources import DQStoresResource
from dq_stores.models import DataContract

ENV = "prod"
TYPES = ("billing", "orders", "payments")
BUDGET_SECONDS = 5.0
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _seed(stores: DQStoresResource, tenants: int) -> None:
    base = json.loads(billing_contract().model_dump_json(exclude_unset=True))
    with stores.open(shared=False) as opened:
        for i in range(tenants):
            tenant = f"T{i:03d}"
            for dataset_type in TYPES:
                doc = json.loads(json.dumps(base))
                doc.update(contract_id=f"{dataset_type}-contract", tenant_id=tenant, environment=ENV)
                for ds in doc["datasets"]:
                    ds.update(
                        dataset_type=dataset_type,
                        dataset_contract_id=f"{dataset_type}-dataset",
                        tenant_id=tenant,
                        environment=ENV,
                    )
                opened.contracts.put(DataContract.model_validate(doc))


def _component() -> DataQualityComponent:
    return DataQualityComponent(
        datasets=[
            DatasetAttributes(
                dataset_type=t,
                source=SourceAttributes(asset="raw_billing")
                if t == "billing"
                else SourceAttributes(path=f"data/{{tenant}}/{t}.csv"),
            )
            for t in TYPES
        ],
        environment=ENV,
    )


def _defs(component: DataQualityComponent, stores: DQStoresResource, state: object) -> Definitions:
    built = component.build_defs_for_state(state, backend=stores)  # type: ignore[arg-type]
    tenants = sorted(state.datasets["billing"].tenants)  # type: ignore[attr-defined]
    defs = Definitions.merge(
        built, Definitions(assets=[raw_billing_asset(StaticPartitionsDefinition(tenants))])
    )
    Definitions.validate_loadable(defs)
    return defs


def _load_times(stores: DQStoresResource, config: Config) -> tuple[list[float], list[float], Definitions]:
    component = _component()
    static_state = component.read_state(stores)  # the "static list": read once, kept in memory
    check(
        len(static_state.datasets["billing"].tenants) == config.load_tenants,
        f"expected {config.load_tenants} tenants, found {len(static_state.datasets['billing'].tenants)}",
    )
    ours: list[float] = []
    base: list[float] = []
    defs = _defs(component, stores, static_state)
    for rep in range(config.warmup + config.reps):
        start = time.perf_counter()
        _defs(component, stores, component.read_state(stores))
        loaded = time.perf_counter() - start
        start = time.perf_counter()
        _defs(component, stores, static_state)
        static = time.perf_counter() - start
        if rep >= config.warmup:
            ours.append(loaded)
            base.append(static)
    return ours, base, defs


def run_all(config: Config, services: Services, only: set[str] | None = None) -> Iterator[Result]:
    with tempfile.TemporaryDirectory(prefix="dqbench-component-") as folder, ExitStack() as stack:
        root = Path(folder)
        backends = {"SQLite": DQStoresResource(url=f"sqlite:///{root / 'dq.db'}")}
        if services.pg_url:
            schema = stack.enter_context(pg_schema(services, "component"))
            backends["Postgres"] = DQStoresResource(url=services.pg_url, schema=schema)
        loads: dict[str, tuple[list[float], list[float], Definitions]] = {}
        for name, stores in backends.items():
            _seed(stores, config.load_tenants)
            loads[name] = _load_times(stores, config)
        size = f"{config.load_tenants} tenants x {len(TYPES)} datasets"
        for n, db in (("15a", "SQLite"), ("15b", "Postgres")):
            label = f"load a code location of {size} from the store, {db}"
            if db not in loads:
                yield skipped(n, label, "budget", "<= 0.2 (< 1 s)", services.pg_reason)
                continue
            result = Result(n, label, "budget", "<= 0.2 (< 1 s)", 0.2, baseline_name="the issue's 5 s budget")
            result.ours = Stats.of(loads[db][0], "s")
            result.baseline = Stats.of([BUDGET_SECONDS], "s")
            result.ratio = result.ours.median / BUDGET_SECONDS
            yield result.decide()
        ours, base, defs = loads["SQLite"]
        result = Result(
            "15c",
            f"load from the store vs the same definitions from a static list ({size}, SQLite)",
            "latency",
            "",
            None,
            baseline_name="the component built from its state held in memory (no store read)",
        )
        result.ours = Stats.of(ours, "s")
        result.baseline = Stats.of(base, "s")
        result.ratio = result.ours.median / result.baseline.median
        yield result.decide()

        job = defs.resolve_job_def("billing_dq_pipeline")
        rows = {"ops": {"raw_billing": {"config": {"rows": config.load_rows}}}, **QUIET}
        times: list[float] = []
        with DagsterInstance.ephemeral() as instance:
            for rep in range(config.warmup + config.reps):
                start = time.perf_counter()
                outcome = job.execute_in_process(
                    partition_key=f"T{rep % config.load_tenants:03d}", instance=instance, run_config=rows
                )
                if rep >= config.warmup:
                    times.append(time.perf_counter() - start)
                check(outcome.success, "the materialization failed")
        result = Result(
            "15d",
            f"materialize one tenant partition ({config.load_rows:,} raw rows: validate, cleanse + checks, profile), SQLite",
            "budget",
            "",
            None,
            baseline_name="the load of 15a",
        )
        result.ours = Stats.of(times, "s")
        result.baseline = Stats.of(loads["SQLite"][0], "s")
        result.ratio = statistics.median(times) / statistics.median(loads["SQLite"][0])
        yield result.decide()
