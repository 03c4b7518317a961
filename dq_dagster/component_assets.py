"""The assets and job of one dataset of a ``DataQualityComponent``: validation, cleansing (with
one asset check per contract rule and the quarantine of hard-rule failures) and profiling,
partitioned by the tenants of the component's state. Built by ``dq_dagster.component``; the DQ
work itself is ``dq_dagster.engine`` and ``dq_dagster.checks``.
"""

# No ``from __future__ import annotations``: Dagster reads the asset functions' annotations.

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetOut,
    AssetsDefinition,
    AssetSelection,
    AssetSpec,
    Failure,
    MetadataValue,
    Output,
    StaticPartitionsDefinition,
    TableSchema,
    asset,
    define_asset_job,
    multi_asset,
)

from dq_dagster.actions.core import ActionEvent, classify, slots_for
from dq_dagster.checks import (
    RULE_ID,
    Quarantine,
    anomaly_check_results,
    build_anomaly_check_specs,
    check_names,
    check_results,
    column_schema,
    quarantine_hard_failures,
)
from dq_dagster.component_state import (
    DQ_IO_MANAGER,
    DQ_RETRY,
    DatasetAttributes,
    SourceAttributes,
    _DatasetState,
    _union_anomaly_keys,
    _union_plan_rules,
)
from dq_dagster.engine import RulePlan, cleanse, compile_rules, profile, validate
from dq_dagster.engine.anomaly import anomaly_checks, monitors
from dq_dagster.engine.sources import TableSource, profile_source, validate_source
from dq_dagster.resources import (
    ContractStoreResource,
    DQStoresResource,
    JobDefinitionStoreResource,
)
from dq_dagster.triggers.request import (
    TAG_JOB_DEFINITION_ID,
    default_job_definition,
)
from dq_stores.errors import InvalidArtifactError, NotFoundError, ScopeViolationError
from dq_stores.metrics import MetricPoint, metric_history, report_metrics
from dq_stores.models import (
    AnomalyCheck,
    CleansingReport,
    DatasetContract,
    JobType,
    ProfilingSnapshot,
    Transformation,
    ValidationReport,
)
from dq_stores.models.common import utcnow

__all__: list[str] = []


# -- one dataset's assets ------------------------------------------------------------------------


class _DatasetKeys:
    def __init__(self, component_prefix: str, ds: DatasetAttributes) -> None:
        prefix = component_prefix + (f"{ds.key_prefix}_" if ds.key_prefix else "")
        self.name = f"{prefix}{ds.dataset_type}"
        self.validation = AssetKey(f"{self.name}_validation")
        self.cleansed = AssetKey(f"{self.name}_cleansed")
        self.report = AssetKey(f"{self.name}_cleansing_report")
        self.profile = AssetKey(f"{self.name}_profile")
        self.source_owned = ds.source.path is not None
        self.source_table = ds.source.table is not None
        self.source = (
            AssetKey(ds.source.asset.split("/")) if ds.source.asset else AssetKey(f"{self.name}_source")
        )


@contextmanager
def _permanent_errors(what: str) -> Iterator[None]:
    """Store errors that a retry cannot fix become a non-retryable ``Failure``."""
    try:
        yield
    except (NotFoundError, InvalidArtifactError, ScopeViolationError) as exc:
        raise Failure(description=f"{what}: {exc}", allow_retries=False) from exc


def _with_quarantine(report: CleansingReport, quarantine: Quarantine) -> CleansingReport:
    n = quarantine.rejected.height
    reasons = dict(report.rejection_reasons)
    for rule_id, count in quarantine.reasons.items():
        reasons[f"hard_rule:{rule_id}"] = count
    step = Transformation(
        name="quarantine_hard_rule_failures",
        rows_affected=n,
        description="rows failing a hard rule of the contract quarantined (first failing rule counted)",
    )
    return report.model_copy(
        update={
            "rows_out": quarantine.kept.height,
            "rows_rejected": report.rows_rejected + n,
            "rejection_reasons": reasons,
            "transformations": [*report.transformations, step],
            "completed_at": utcnow(),
        }
    )


def _read_source(path_template: str, tenant: str, base: Path) -> Any:
    import io

    import polars as pl

    target = path_template.replace("{tenant}", tenant)
    if target.startswith("azure-blob://"):
        from dq_stores.stores import open_payload_store

        container, _, name = target[len("azure-blob://") :].partition("/")
        store = open_payload_store(f"azure-blob://{container}")
        try:
            data = b"".join(store.read_chunks(name))
        finally:
            store.close()
        handle: Any = io.BytesIO(data)
    else:
        local = Path(target)
        handle = local if local.is_absolute() else base / local
        if not Path(handle).exists():
            raise Failure(description=f"no source file for tenant {tenant}: {handle}", allow_retries=False)
    lowered = target.lower()
    if lowered.endswith((".parquet", ".pq")):
        return pl.read_parquet(handle)
    return pl.read_csv(handle, try_parse_dates=True)


def table_source(source: SourceAttributes, tenant: str) -> TableSource:
    """The ``TableSource`` of one tenant (``{tenant}`` in the table name replaced)."""
    assert source.table is not None
    return TableSource(
        table=source.table.replace("{tenant}", tenant),
        connection=source.connection,
        connection_env=source.connection_env,
    )


def _read_table(source: TableSource) -> Any:
    """The whole table as a polars frame (cleansing needs the rows; validation and profiling do not)."""
    import polars as pl
    import sqlalchemy as sa

    from dq_dagster.engine.pushdown import open_engine, split_table_name

    schema, name = split_table_name(source.table)
    engine = open_engine(source.url())
    try:
        with engine.connect() as conn:
            # Plain SQLAlchemy, not polars.read_database (which needs an extra driver stack here).
            result = conn.execute(sa.select(sa.text("*")).select_from(sa.table(name, schema=schema)))
            columns = list(result.keys())
            rows = result.all()
    finally:
        engine.dispose()
    return pl.DataFrame([tuple(r) for r in rows], schema=columns, orient="row", infer_schema_length=None)


class _DatasetBuilder:
    """The assets and job of one dataset, for the tenants and rules of the state."""

    def __init__(
        self, component_prefix: str, ds: DatasetAttributes, state: _DatasetState, base: Path
    ) -> None:
        self.ds = ds
        self.state = state
        self.base = base
        self.keys = _DatasetKeys(component_prefix, ds)
        self.partitions = StaticPartitionsDefinition(sorted(state.tenants))
        self.group = ds.group_name or f"{component_prefix}{ds.dataset_type}"
        self.schema: TableSchema | None = None
        if state.schema_dataset is not None:
            self.schema = column_schema(DatasetContract.model_validate(state.schema_dataset))
        self.rules = _union_plan_rules(state)
        self.anomaly_keys = _union_anomaly_keys(state)
        self.job_name = f"{self.keys.name}_dq_pipeline"

    # metadata ----------------------------------------------------------------------------------
    def _meta(self, **extra: Any) -> dict[str, Any]:
        meta: dict[str, Any] = {"dq/dataset_type": self.ds.dataset_type, **extra}
        if self.schema is not None:
            meta["dagster/column_schema"] = self.schema
        meta["dq/tenants"] = MetadataValue.json(self.state.tenants)
        return meta

    def check_specs(self) -> list[AssetCheckSpec]:
        specs = []
        if not self.rules:
            return []
        names = check_names([r.rule_id for r in self.rules])
        for rule in self.rules:
            has = sorted(
                t for t, rules in self.state.rules.items() if any(r.rule_id == rule.rule_id for r in rules)
            )
            metadata: dict[str, Any] = {
                RULE_ID: rule.rule_id,
                "dq/rule_type": rule.rule_type,
                "dq/severity": rule.severity,
                "dq/tenants": ",".join(has),
            }
            if rule.column is not None:
                metadata["dq/column"] = rule.column
            specs.append(
                AssetCheckSpec(
                    names[rule.rule_id],
                    asset=self.keys.cleansed,
                    description=f"{rule.description} ({rule.severity} rule {rule.rule_id}; tenants: {', '.join(has)})",
                    blocking=rule.severity == "hard",
                    metadata=metadata,
                )
            )
        return specs

    def anomaly_specs(self) -> list[AssetCheckSpec]:
        """One WARN check on the profile per metric any tenant's contract follows."""
        tenants = {
            key: sorted(t for t, keys in self.state.anomaly.items() if key in keys)
            for key in self.anomaly_keys
        }
        return build_anomaly_check_specs(self.anomaly_keys, self.keys.profile, tenants=tenants)

    def _anomaly_checks(
        self,
        context: AssetExecutionContext,
        contracts: ContractStoreResource,
        plan: RulePlan,
        snapshot: ProfilingSnapshot,
    ) -> list[AnomalyCheck]:
        """The snapshot's followed metrics judged against their stored history: one list query
        for the profiling runs and, when rule failure rates are followed, one for the validation
        runs (the rates of this Dagster run's validation are the observed values).
        """
        watched = monitors(plan.dataset)
        config = plan.dataset.anomaly_detection
        if not watched or config is None:
            return []
        scope = contracts.scope_for_context(context)
        backend = contracts.backend
        assert isinstance(backend, DQStoresResource)  # resolved by Dagster inside a run
        runs = backend.get_stores().job_runs
        at = snapshot.completed_at or snapshot.started_at or utcnow()
        dataset_type = plan.dataset.dataset_type
        with _permanent_errors("reading the metric history"):
            history = metric_history(
                runs,
                scope.tenant,
                scope.environment,
                dataset_type,
                JobType.PROFILING,
                limit=config.max_history,
                before=at,
            )
            current = report_metrics(snapshot)
            rule_watch = [m for m in watched if m.is_rule]
            checks = anomaly_checks([m for m in watched if not m.is_rule], current, history, at)
            if rule_watch:
                validations = metric_history(
                    runs,
                    scope.tenant,
                    scope.environment,
                    dataset_type,
                    JobType.VALIDATION,
                    limit=config.max_history + 1,
                )
                mine: MetricPoint | None = next(
                    (p for p in reversed(validations) if p.dagster_run_id == context.run.run_id), None
                )
                past = [p for p in validations if p is not mine]
                checks += anomaly_checks(
                    rule_watch, mine.metrics if mine else {}, past, mine.at if mine else at
                )
        order = {m.key: i for i, m in enumerate(watched)}
        return sorted(checks, key=lambda c: order[c.key])

    # run-time helpers --------------------------------------------------------------------------
    def _table(self, context: AssetExecutionContext) -> TableSource:
        with _permanent_errors(f"the {self.ds.dataset_type} table source"):
            try:
                return table_source(self.ds.source, context.partition_key)
            except ValueError as exc:  # SourceError: misconfigured, no retry helps
                raise InvalidArtifactError(str(exc), field="source") from exc

    def _inputs(self, upstream: AssetKey) -> tuple[dict[str, AssetIn], list[AssetKey] | None]:
        """(ins, deps) of a DQ asset: a plain dependency on a table (read in place), else the
        upstream asset as the ``data`` input.
        """
        if self.keys.source_table and upstream == self.keys.source:
            return {}, [upstream]
        return {"data": AssetIn(key=upstream)}, None

    def _plan(self, context: AssetExecutionContext, contracts: ContractStoreResource) -> RulePlan:
        with _permanent_errors(f"no usable {self.ds.dataset_type} contract"):
            scoped = contracts.for_context(context)
            return compile_rules(
                scoped.require_latest_for_dataset(self.ds.dataset_type), self.ds.dataset_type
            )

    def _job_definition_id(
        self, context: AssetExecutionContext, job_definitions: JobDefinitionStoreResource
    ) -> str | None:
        """The job definition this run serves: the run's tag, else the tenant's default one."""
        tagged = context.run.tags.get(TAG_JOB_DEFINITION_ID)
        if tagged:
            return tagged  # set by the sensors, or by hand on a launch
        scope = job_definitions.scope_for_context(context)
        backend = job_definitions.backend
        assert isinstance(backend, DQStoresResource)  # resolved by Dagster inside a run
        stores = backend.get_stores()
        definition, why = default_job_definition(
            stores, scope.tenant, scope.environment, self.ds.dataset_type
        )
        if definition is None:
            context.log.info(f"no job definition for this run ({why}); no action profiles will follow it")
            return None
        return definition.job_definition_id

    # assets ------------------------------------------------------------------------------------
    def assets(self) -> list[AssetsDefinition | AssetSpec]:
        built: list[AssetsDefinition | AssetSpec] = []
        if self.keys.source_owned:
            built.append(self._source_asset())
        if self.keys.source_table:
            table = str(self.ds.source.table)
            built.append(
                AssetSpec(
                    key=self.keys.source,
                    group_name=self.group,
                    kinds={"sql"},
                    description=(
                        f"The {self.ds.dataset_type} table of each tenant ({table}), validated and profiled "
                        "where it lives; not materialized here."
                    ),
                    metadata=self._meta(**{"dq/source": table}),
                )
            )
        if "validation" in self.ds.jobs:
            built.append(self._validation_asset())
        if "cleansing" in self.ds.jobs:
            built.append(self._cleansing_asset())
        if "profiling" in self.ds.jobs:
            built.append(self._profile_asset())
        return built

    def job(self) -> Any:
        chosen = {
            "validation": [self.keys.validation],
            "cleansing": [self.keys.cleansed, self.keys.report],
            "profiling": [self.keys.profile],
        }
        selected = [k for job in self.ds.jobs for k in chosen[job]]
        # The source too (one level up: the DQ assets' other parents are DQ assets already chosen),
        # whether owned (a path) or an upstream asset this code location defines; an external
        # upstream is not materializable and stays out.
        selection = AssetSelection.assets(*selected).upstream(depth=1).materializable()
        return define_asset_job(
            self.job_name,
            selection=selection,
            description=f"Check, cleanse and profile one tenant's {self.ds.dataset_type} data.",
        )

    def _source_asset(self) -> AssetsDefinition:
        path = str(self.ds.source.path)
        base = self.base

        @asset(
            key=self.keys.source,
            partitions_def=self.partitions,
            group_name=self.group,
            kinds={"polars"},
            description=f"The raw {self.ds.dataset_type} data of each tenant, read from {path}.",
            metadata=self._meta(**{"dq/source": path}),
        )
        def _source(context: AssetExecutionContext) -> Any:
            frame = _read_source(path, context.partition_key, base)
            context.add_output_metadata({"dagster/row_count": MetadataValue.int(frame.height)})
            return frame

        return _source

    def _validation_asset(self) -> AssetsDefinition:
        builder = self

        def run(
            context: AssetExecutionContext,
            data: Any,
            contracts: ContractStoreResource,
            job_definitions: JobDefinitionStoreResource,
        ) -> Output[ValidationReport]:
            plan = builder._plan(context, contracts)
            if data is None:  # a table: the rules run inside its database
                with _permanent_errors("validating the table"):
                    report = validate_source(builder._table(context), plan)
            else:
                report = validate(data, plan)
            outcome, _ = classify([], [report])
            return Output(report, metadata=builder._run_meta(context, job_definitions, outcome))

        ins, deps = self._inputs(self.keys.source)
        decorate = asset(
            key=self.keys.validation,
            ins=ins,
            deps=deps,
            partitions_def=self.partitions,
            group_name=self.group,
            io_manager_key=DQ_IO_MANAGER,
            retry_policy=DQ_RETRY,
            description=(
                f"Validation report of the raw {self.ds.dataset_type} data against the tenant's contract: "
                "every rule, its failed count and rate, masked samples of failing values."
            ),
            metadata=self._meta(),
        )
        return _asset_function(
            decorate,
            run,
            name="_validation",
            in_place=bool(self.keys.source_table),
            returns=Output[ValidationReport],
        )

    def _run_meta(
        self,
        context: AssetExecutionContext,
        job_definitions: JobDefinitionStoreResource,
        outcome: ActionEvent | None = None,
    ) -> dict[str, Any]:
        """``dq/job_definition_id`` of this run and, for a report with an ``outcome``, the action
        profile that definition selects for it (``dq/outcome``, ``dq/action_profile``,
        ``dq/actions``): all from the run, never from code. The actions themselves run in the
        action sensors after the run.
        """
        meta: dict[str, Any] = {}
        with _permanent_errors("reading the job definitions"):
            definition_id = self._job_definition_id(context, job_definitions)
            if definition_id is None:
                return meta
            meta["dq/job_definition_id"] = definition_id
            if outcome is None:
                return meta
            meta["dq/outcome"] = MetadataValue.text(outcome.value)
            scoped = job_definitions.stores_for_context(context)
            definition = scoped.job_definitions.get(definition_id)
            if definition is None:
                meta["dq/action_profile"] = MetadataValue.text(f"none (no job definition {definition_id})")
                return meta
            slots = slots_for(definition, outcome)
            if not slots:
                meta["dq/action_profile"] = MetadataValue.text(
                    f"none (the definition names none for {outcome.value})"
                )
                return meta
            shown: list[str] = []
            actions: list[str] = []
            for slot, ref in slots:
                found = scoped.action_profiles.get(ref.action_profile_id, ref.version)
                if found is None or found.is_retired:
                    state = "retired" if found is not None else "missing"
                    shown.append(f"{ref.action_profile_id} ({slot}, {state})")
                    continue
                shown.append(f"{found.action_profile_id}@{found.version} ({slot})")
                actions += [str(t) for t in found.action_types]
            meta["dq/action_profile"] = MetadataValue.text(", ".join(shown))
            meta["dq/actions"] = MetadataValue.text(", ".join(dict.fromkeys(actions)) or "none")
        return meta

    def _cleansing_asset(self) -> AssetsDefinition:
        builder = self
        self_keys = self.keys
        specs = self.check_specs()

        def cleansing_run(
            context: AssetExecutionContext,
            data: Any,
            contracts: ContractStoreResource,
            job_definitions: JobDefinitionStoreResource,
        ) -> Iterator[Output[Any] | AssetCheckResult]:
            plan = builder._plan(context, contracts)
            if data is None:  # a table: cleansing needs its rows in memory
                with _permanent_errors("reading the table"):
                    data = _read_table(builder._table(context))
            cleansed = cleanse(data, plan)
            quarantine = quarantine_hard_failures(cleansed.frame, plan)
            report = _with_quarantine(cleansed.report, quarantine)
            outcome = check_results(validate(quarantine.kept, plan), specs, missing="skip")
            if outcome.undeclared:
                context.log.warning(
                    "rules without a declared asset check (reload the code location to declare them): "
                    f"{outcome.undeclared}"
                )
            if outcome.not_evaluated:
                context.log.info(
                    f"checks skipped, not applicable: the tenant's contract has no rule {outcome.not_evaluated}"
                )
            run_meta = builder._run_meta(context, job_definitions)
            yield Output(
                quarantine.kept,
                output_name="cleansed",
                metadata={
                    **run_meta,
                    "dq/rows_quarantined": MetadataValue.int(quarantine.rejected.height),
                    "dq/contract_version": MetadataValue.text(report.contract_version or "unknown"),
                    "dq/checks_not_applicable": MetadataValue.int(len(outcome.not_evaluated)),
                },
            )
            yield Output(report, output_name="report", metadata=run_meta)
            chosen = context.selected_asset_check_keys
            yield from (
                r for r in outcome.results if AssetCheckKey(self_keys.cleansed, str(r.check_name)) in chosen
            )

        ins, deps = self._inputs(self.keys.source)
        decorate = multi_asset(
            name=f"{self.keys.name}_cleansing",
            ins=ins,
            deps=deps,
            outs={
                "cleansed": AssetOut(
                    key=self.keys.cleansed,
                    io_manager_key=DQ_IO_MANAGER,
                    kinds={"polars"},
                    description=(
                        f"{self.ds.dataset_type} data cleansed under the tenant's contract: repaired values, no "
                        "duplicates, rows failing a hard rule quarantined. Stored as Parquet on a cleansing job run."
                    ),
                    metadata=self._meta(),
                ),
                "report": AssetOut(
                    key=self.keys.report,
                    io_manager_key=DQ_IO_MANAGER,
                    description="What cleansing changed and rejected (by reason), as a cleansing job run.",
                    metadata={"dq/dataset_type": self.ds.dataset_type},
                ),
            },
            check_specs=specs,
            partitions_def=self.partitions,
            group_name=self.group,
            retry_policy=DQ_RETRY,
            # Subsettable so that a check a tenant's contract lacks may get no result (skipped).
            can_subset=True,
        )
        return _asset_function(
            decorate,
            cleansing_run,
            name="_cleansing",
            in_place=bool(self.keys.source_table),
            returns=Iterator[Output[Any] | AssetCheckResult],
        )

    def _profile_asset(self) -> AssetsDefinition:
        builder = self
        upstream = self.keys.cleansed if "cleansing" in self.ds.jobs else self.keys.source
        specs = self.anomaly_specs()

        def run(
            context: AssetExecutionContext,
            data: Any,
            contracts: ContractStoreResource,
            job_definitions: JobDefinitionStoreResource,
        ) -> Iterator[Output[ProfilingSnapshot] | AssetCheckResult]:
            plan = builder._plan(context, contracts)
            if data is None:  # a table: profiled inside its database
                with _permanent_errors("profiling the table"):
                    snapshot = profile_source(builder._table(context), plan)
            else:
                snapshot = profile(data, plan)
            checks = builder._anomaly_checks(context, contracts, plan, snapshot)
            if checks:
                snapshot = snapshot.model_copy(update={"anomaly_checks": checks})
            outcome, _ = classify([], [snapshot])
            meta = builder._run_meta(context, job_definitions, outcome)
            if checks:
                drifted = [c.key for c in checks if c.anomalous]
                meta["dq/anomalies"] = MetadataValue.text(", ".join(drifted) or "none")
            yield Output(snapshot, metadata=meta)
            if specs:
                yield from anomaly_check_results(
                    checks, builder.keys.profile, builder.anomaly_keys, tenant=context.partition_key
                )

        ins, deps = self._inputs(upstream)
        if "validation" in self.ds.jobs and any(k.startswith("rule:") for k in self.anomaly_keys):
            # Rule failure rates are judged from this run's validation: profile after it.
            deps = [*(deps or []), self.keys.validation]
        decorate = asset(
            key=self.keys.profile,
            ins=ins,
            deps=deps,
            partitions_def=self.partitions,
            group_name=self.group,
            io_manager_key=DQ_IO_MANAGER,
            retry_policy=DQ_RETRY,
            description=f"Column profile of the {self.ds.dataset_type} data and the contract's profiling expectations.",
            metadata={"dq/dataset_type": self.ds.dataset_type},
            check_specs=specs or None,
        )
        return _asset_function(
            decorate,
            run,
            name="_profile",
            in_place=bool(self.keys.source_table) and upstream == self.keys.source,
            returns=Iterator[Output[ProfilingSnapshot] | AssetCheckResult],
        )


def _asset_function(
    decorate: Callable[[Callable[..., Any]], AssetsDefinition],
    run: Callable[..., Any],
    *,
    name: str,
    in_place: bool,
    returns: Any,
) -> AssetsDefinition:
    """The asset over ``run(context, data, contracts, job_definitions)``: the upstream frame comes
    in as ``data``, or, for a table source worked on in place, there is no input and ``data`` is
    None. A generator ``run`` gives a generator asset (Dagster tells the two apart by the function,
    not by what it returns); ``returns`` is the annotation Dagster reads the output type from.
    """
    generator = inspect.isgeneratorfunction(run)
    body: Callable[..., Any]
    if in_place:
        if generator:

            def body(
                context: AssetExecutionContext,
                contracts: ContractStoreResource,
                job_definitions: JobDefinitionStoreResource,
            ) -> Any:
                yield from run(context, None, contracts, job_definitions)
        else:

            def body(
                context: AssetExecutionContext,
                contracts: ContractStoreResource,
                job_definitions: JobDefinitionStoreResource,
            ) -> Any:
                return run(context, None, contracts, job_definitions)
    elif generator:

        def body(
            context: AssetExecutionContext,
            data: Any,
            contracts: ContractStoreResource,
            job_definitions: JobDefinitionStoreResource,
        ) -> Any:
            yield from run(context, data, contracts, job_definitions)
    else:

        def body(
            context: AssetExecutionContext,
            data: Any,
            contracts: ContractStoreResource,
            job_definitions: JobDefinitionStoreResource,
        ) -> Any:
            return run(context, data, contracts, job_definitions)

    body.__name__ = body.__qualname__ = f"{name}_in_place" if in_place else name
    body.__annotations__["return"] = returns
    return decorate(body)
