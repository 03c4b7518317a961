"""The OpenLineage ``RunEvent`` an ``EMIT_LINEAGE`` action posts, built with ``openlineage-python``.

Every object of the event is the client's own class (``event_v2`` and the generated facets), so
each facet carries the ``_schemaURL`` of the spec version the pinned client implements, and
``Serde.to_dict`` turns the event into the JSON document that ``delivery`` posts. What goes on it
(see README "What EMIT_LINEAGE emits"): on the input dataset ``dataQualityAssertions`` (one per
validation rule and profiling expectation) and ``dataQualityMetrics`` (row count, per-column
counts, min/max), the run's ``test`` facet (expected and actual value of every rule, expectation
and anomaly check), ``errorMessage`` on failure, and the cleansed dataset as an output.

This module builds the document only: no I/O, no Dagster import, no client transport (delivery,
retries and secrets stay in ``delivery``). It never holds failing-value samples (they may be
personal data) or secrets.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, cast

from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.generated import (
    data_quality_assertions_dataset as dqa,
)
from openlineage.client.generated import (
    data_quality_metrics_input_dataset as dqm,
)
from openlineage.client.generated import (
    error_message_run,
    input_statistics_input_dataset,
    output_statistics_output_dataset,
    test_run,
)
from openlineage.client.generated.base import DatasetFacet, InputDatasetFacet, RunFacet
from openlineage.client.serde import Serde

from dq_dagster.actions.core import _MAX_ERROR, ActionEvent, ActionSettings, DQRunFacts
from dq_stores.canonical import format_timestamp
from dq_stores.models import (
    CleansingReport,
    ProfilingSnapshot,
    Severity,
    ValidationReport,
)
from dq_stores.models.reports import AnomalyCheck, ExpectationResult, RuleResult
from dq_stores.secrets import redact

__all__ = ["OPENLINEAGE_SCHEMA_URL", "build_openlineage_event", "lineage_run_id"]

OPENLINEAGE_SCHEMA_URL = RunEvent._get_schema()
"""The spec version of the events (the pinned client's ``RunEvent`` schema URL)."""

# OpenLineage's severity words (the facets' documented values): a hard rule blocks, a soft one warns.
_SEVERITY = {Severity.HARD: "error", Severity.SOFT: "warn"}


def lineage_run_id(facts: DQRunFacts) -> str:
    """The event's ``runId``: the Dagster run id (a UUID), else a stable UUIDv5 of the run."""
    try:
        return str(uuid.UUID(facts.run_ref))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"dq://{facts.tenant}/{facts.environment}/{facts.run_ref}"))


def _number(value: float | None) -> str | None:
    if value is None:
        return None
    # 3.0 -> "3", 0.25 -> "0.25": facets carry expected / actual as strings.
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _bounds(low: float | None, high: float | None) -> str | None:
    if low is not None and high is not None:
        return f">= {_number(low)} and <= {_number(high)}"
    if low is not None:
        return f">= {_number(low)}"
    if high is not None:
        return f"<= {_number(high)}"
    return None


def _rule_params(rule: RuleResult) -> dict[str, Any]:
    return {
        "rule_type": rule.rule_type,
        "dq_severity": Severity(rule.severity).value,
        "checked_count": rule.checked_count,
        "failed_count": rule.failed_count,
        "failure_rate": rule.failure_rate,
    }


def _rule_assertion(rule: RuleResult) -> dqa.Assertion:
    # ``assertion`` keeps the rule id (stable per dataset, the Dagster asset check's name, and what
    # this action sent before the facet grew ``name``); the rule type is in ``params.rule_type``.
    return dqa.Assertion(
        assertion=rule.rule_id,
        success=rule.passed,
        column=rule.column,
        severity=_SEVERITY[Severity(rule.severity)],
        name=rule.rule_id,
        description=rule.description,
        # A rule passes when no checked row fails it: the expected value is a failing-row count.
        expected="0",
        actual=str(rule.failed_count),
        params=_rule_params(rule),
    )


def _rule_test(rule: RuleResult) -> test_run.TestExecution:
    return test_run.TestExecution(
        name=rule.rule_id,
        status="pass" if rule.passed else "fail",
        severity=_SEVERITY[Severity(rule.severity)],
        type=rule.rule_type,
        description=rule.description,
        expected="0",
        actual=str(rule.failed_count),
        params={**({"column": rule.column} if rule.column else {}), **_rule_params(rule)},
    )


def _expectation_id(exp: ExpectationResult) -> str:
    return f"{exp.column}.{exp.metric}"


def _expectation_params(exp: ExpectationResult) -> dict[str, Any]:
    params: dict[str, Any] = {"metric": exp.metric, "dq_severity": Severity(exp.severity).value}
    if exp.min_threshold is not None:
        params["min_threshold"] = exp.min_threshold
    if exp.max_threshold is not None:
        params["max_threshold"] = exp.max_threshold
    return params


def _expectation_assertion(exp: ExpectationResult) -> dqa.Assertion:
    return dqa.Assertion(
        assertion=_expectation_id(exp),
        success=exp.passed,
        column=exp.column,
        severity=_SEVERITY[Severity(exp.severity)],
        name=_expectation_id(exp),
        expected=_bounds(exp.min_threshold, exp.max_threshold),
        actual=_number(exp.observed),  # None when the profile hides it (a PII column)
        params=_expectation_params(exp),
    )


def _expectation_test(exp: ExpectationResult) -> test_run.TestExecution:
    return test_run.TestExecution(
        name=_expectation_id(exp),
        status="pass" if exp.passed else "fail",
        severity=_SEVERITY[Severity(exp.severity)],
        type="profiling_expectation",
        expected=_bounds(exp.min_threshold, exp.max_threshold),
        actual=_number(exp.observed),
        params={"column": exp.column, **_expectation_params(exp)},
    )


def _anomaly_test(check: AnomalyCheck) -> test_run.TestExecution:
    # An anomaly check without enough history was not evaluated: "skip", never "pass".
    status = "skip" if not check.evaluated else ("fail" if check.anomalous else "pass")
    params: dict[str, Any] = {
        "metric": check.metric,
        "method": check.method,
        "direction": str(check.direction),
        "history_size": check.history_size,
    }
    if check.column is not None:
        params["column"] = check.column
    if check.rule_id is not None:
        params["rule_id"] = check.rule_id
    return test_run.TestExecution(
        name=f"anomaly:{check.key}",
        status=status,
        severity="warn",  # an anomaly warns; the run's hard rules decide failure
        type="anomaly",
        expected=_bounds(check.expected_low, check.expected_high),
        actual=_number(check.observed),
        params=params,
    )


def _metrics(report: ProfilingSnapshot, producer: str) -> dqm.DataQualityMetricsInputDatasetFacet:
    columns: dict[str, dqm.ColumnMetrics] = {}
    for col in report.columns:
        bounds: dict[str, float] = {}
        for key, value in (("min", col.min), ("max", col.max)):
            # The facet's min / max are numbers: text and date bounds are left out.
            if isinstance(value, int | float) and not isinstance(value, bool):
                bounds[key] = float(value)
        columns[col.column] = dqm.ColumnMetrics(
            nullCount=col.null_count,
            distinctCount=col.distinct_count,
            count=col.count,
            min=bounds.get("min"),
            max=bounds.get("max"),
            quantiles=None,
        )
    return dqm.DataQualityMetricsInputDatasetFacet(
        columnMetrics=columns, rowCount=report.row_count, producer=producer
    )


def build_openlineage_event(
    facts: DQRunFacts, parameters: Mapping[str, Any] | None = None, settings: ActionSettings | None = None
) -> dict[str, Any]:
    """An OpenLineage ``RunEvent`` (``COMPLETE`` or ``FAIL``) for the DQ run, as a JSON document.

    Job: ``namespace`` (parameter, default ``dq/<tenant>/<environment>``) and the job definition
    id. Input: the raw data (the blob URI when there is one, else the dataset type) in
    ``dataset_namespace`` (default: ``namespace``). Unless ``include_payload`` is false, the input
    carries ``dataQualityAssertions`` (in ``inputFacets``, where the spec puts it, and in
    ``facets``, where Marquez and earlier releases read it), ``dataQualityMetrics`` and
    ``inputStatistics``, the run carries the ``test`` facet, and a cleansing run adds the cleansed
    dataset as an output with ``outputStatistics``. A failed run carries ``errorMessage``.
    """
    params = dict(parameters or {})
    settings = settings or ActionSettings()
    producer = settings.producer
    namespace = str(params.get("namespace") or f"dq/{facts.tenant}/{facts.environment}")
    dataset_namespace = str(params.get("dataset_namespace") or namespace)
    include = params.get("include_payload", True) is not False
    dataset_name = facts.dataset_type or facts.job_definition.data_contract.contract_id
    input_name = redact(facts.input_uri) if facts.input_uri else dataset_name

    input_facets: dict[str, InputDatasetFacet] = {}
    run_facets: dict[str, RunFacet] = {}
    outputs: list[OutputDataset] = []
    if include:
        assertions: list[dqa.Assertion] = []
        tests: list[test_run.TestExecution] = []
        for report in facts.reports:
            if isinstance(report, ValidationReport):
                assertions += [_rule_assertion(rule) for rule in report.rules]
                tests += [_rule_test(rule) for rule in report.rules]
            elif isinstance(report, ProfilingSnapshot):
                assertions += [_expectation_assertion(exp) for exp in report.expectations]
                tests += [_expectation_test(exp) for exp in report.expectations]
                tests += [_anomaly_test(check) for check in report.anomaly_checks]
        if assertions:
            input_facets["dataQualityAssertions"] = dqa.DataQualityAssertionsDatasetFacet(
                assertions=assertions, producer=producer
            )
        if tests:
            run_facets["test"] = test_run.TestRunFacet(tests=tests, producer=producer)
        profile = next((r for r in facts.reports if isinstance(r, ProfilingSnapshot)), None)
        if profile is not None:
            input_facets["dataQualityMetrics"] = _metrics(profile, producer)
        rows_in = next(
            (
                r.rows_in if isinstance(r, CleansingReport) else r.row_count
                for r in facts.reports
                if isinstance(r, CleansingReport | ValidationReport | ProfilingSnapshot)
            ),
            None,
        )
        if rows_in is not None:
            input_facets["inputStatistics"] = input_statistics_input_dataset.InputStatisticsInputDatasetFacet(
                rowCount=rows_in, producer=producer
            )
        cleansing = next((r for r in facts.reports if isinstance(r, CleansingReport)), None)
        if cleansing is not None:
            outputs.append(
                OutputDataset(
                    namespace=dataset_namespace,
                    name=f"{dataset_name}.cleansed",
                    facets=None,
                    outputFacets={
                        "outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                            rowCount=cleansing.rows_out, producer=producer
                        )
                    },
                )
            )
    failed = facts.event is ActionEvent.FAILURE
    if failed:
        run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message="; ".join(facts.reasons)[:_MAX_ERROR], programmingLanguage="python", producer=producer
        )
    assertions_facet = input_facets.get("dataQualityAssertions")
    event = RunEvent(
        eventType=RunState.FAIL if failed else RunState.COMPLETE,
        eventTime=format_timestamp(facts.occurred_at),
        producer=producer,
        run=Run(runId=lineage_run_id(facts), facets=run_facets or None),
        job=Job(namespace=namespace, name=facts.job_definition.job_definition_id, facets=None),
        inputs=[
            InputDataset(
                namespace=dataset_namespace,
                name=input_name,
                # The 1-1-0 facet is an input facet; Marquez (and dbt's emitter, for the same
                # reason) still read it among the dataset facets, so it goes in both places.
                facets=cast(dict[str, DatasetFacet], {"dataQualityAssertions": assertions_facet})
                if assertions_facet
                else None,
                inputFacets=input_facets or None,
            )
        ],
        outputs=outputs,
    )
    return Serde.to_dict(event)
