"""The documents actions send: the ``dq.action.v1`` payload and the ``dq.ticket.v1`` ticket (the
OpenLineage ``RunEvent`` is built in ``lineage``). Pure functions of ``DQRunFacts``; no Dagster import, no I/O. They never
hold failing-value samples (they may be personal data) or secrets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dq_dagster.actions.core import (
    MAX_LISTED,
    PAYLOAD_SCHEMA,
    TICKET_SCHEMA,
    ActionConfigError,
    ActionEvent,
    ActionSettings,
    DQRunFacts,
)
from dq_stores.canonical import format_timestamp
from dq_stores.models import (
    JobRun,
    JobRunStatus,
    JobType,
    ProfilingSnapshot,
    Severity,
    ValidationReport,
)
from dq_stores.secrets import redact

__all__ = ["build_action_payload", "build_ticket"]


# -- payloads -----------------------------------------------------------------------------------


def _summary_text(facts: DQRunFacts) -> str:
    d = facts.job_definition
    return f"[DQ {facts.event.value.upper()}] {d.name} ({facts.tenant}/{facts.environment}): " + "; ".join(
        facts.reasons[:5]
    )


def build_action_payload(
    facts: DQRunFacts,
    *,
    action_type: str,
    profile_id: str | None,
    profile_version: str | None,
    slot: str | None,
    settings: ActionSettings | None = None,
) -> dict[str, Any]:
    """The ``dq.action.v1`` JSON document every HTTP action sends (see README "Webhook payload").

    It never holds failing-value samples (they may be personal data) or secrets.
    """
    settings = settings or ActionSettings()
    d = facts.job_definition
    failed_rules: list[dict[str, Any]] = []
    anomalies: list[dict[str, Any]] = []
    contract_version: str | None = d.data_contract.version
    for report in facts.reports:
        contract_version = report.contract_version or contract_version
        if isinstance(report, ValidationReport):
            for rule in sorted(report.failed_rules, key=lambda r: (-r.failed_count, r.rule_id)):
                failed_rules.append(
                    {
                        "rule_id": rule.rule_id,
                        "rule_type": rule.rule_type,
                        "column": rule.column,
                        "severity": Severity(rule.severity).value,
                        "failed_count": rule.failed_count,
                        "checked_count": rule.checked_count,
                        "failure_rate": rule.failure_rate,
                    }
                )
        elif isinstance(report, ProfilingSnapshot):
            for exp in report.anomalies:
                anomalies.append(
                    {
                        "column": exp.column,
                        "metric": exp.metric,
                        "observed": exp.observed,
                        "min_threshold": exp.min_threshold,
                        "max_threshold": exp.max_threshold,
                        "severity": Severity(exp.severity).value,
                    }
                )
    dagster: dict[str, Any] | None = None
    if facts.dagster_run_id:
        dagster = {"run_id": facts.dagster_run_id, "job_name": facts.dagster_job_name}
        if settings.dagster_url:
            dagster["url"] = f"{settings.dagster_url.rstrip('/')}/runs/{facts.dagster_run_id}"
    return {
        "schema": PAYLOAD_SCHEMA,
        "event": facts.event.value,
        "reasons": list(facts.reasons),
        "text": _summary_text(facts),
        "occurred_at": format_timestamp(facts.occurred_at),
        "tenant": facts.tenant,
        "environment": facts.environment,
        "action": {
            "type": action_type,
            "profile_id": profile_id,
            "profile_version": profile_version,
            "slot": slot,
        },
        "job_definition": {"id": d.job_definition_id, "version": d.version, "name": d.name},
        "contract": {
            "id": d.data_contract.contract_id,
            "version": contract_version,
            "dataset_contract_id": d.data_contract.dataset_contract_id,
            "dataset_type": facts.dataset_type,
        },
        "dagster": dagster,
        "input": {"uri": redact(facts.input_uri)} if facts.input_uri else None,
        "run_error": redact(facts.run_error) if facts.run_error else None,
        "job_runs": [_job_run_entry(run) for run in facts.job_runs],
        "failed_rules": failed_rules[:MAX_LISTED],
        "failed_rules_total": len(failed_rules),
        "anomalies": anomalies[:MAX_LISTED],
        "anomalies_total": len(anomalies),
    }


def _job_run_entry(run: JobRun) -> dict[str, Any]:
    summary = run.summary
    result = run.result
    return {
        "job_run_id": run.job_id,
        "job_type": JobType(run.job_type).value,
        "status": JobRunStatus(run.status).value,
        "message": run.message,
        "row_count": summary.row_count if summary else None,
        "pass_rate": summary.pass_rate if summary else None,
        "rules_total": summary.rules_total if summary else None,
        "rules_failed": summary.rules_failed if summary else None,
        "result": {
            "location": result.location,
            "uri": redact(result.uri) if result.uri else None,
            "sha256": result.sha256,
            "size_bytes": result.size_bytes,
            "result_type": result.result_type,
        }
        if result
        else None,
    }


def build_ticket(facts: DQRunFacts, params: Mapping[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
    """The ``dq.ticket.v1`` document of an ``OPEN_TICKET`` action (``payload``: its dq.action.v1)."""
    default_priority = {
        ActionEvent.FAILURE: "high",
        ActionEvent.ANOMALY: "medium",
        ActionEvent.SUCCESS: "low",
    }
    labels = params.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise ActionConfigError("parameter labels must be a list of strings")
    lines = [payload["text"], "", *[f"- {reason}" for reason in facts.reasons]]
    if payload["failed_rules"]:
        lines += ["", "Failed rules:"] + [
            f"- {r['rule_id']} ({r['severity']}): {r['failed_count']} of {r['checked_count']} rows"
            for r in payload["failed_rules"][:20]
        ]
    if payload["dagster"] and payload["dagster"].get("url"):
        lines += ["", f"Dagster run: {payload['dagster']['url']}"]
    return {
        "schema": TICKET_SCHEMA,
        "title": str(
            params.get("title")
            or f"DQ {facts.event.value}: {facts.job_definition.name} ({facts.tenant}/{facts.environment})"
        )[:250],
        "description": "\n".join(lines),
        "priority": str(params.get("priority") or default_priority[facts.event]),
        "project": params.get("project"),
        "assignee": params.get("assignee"),
        "labels": ["data-quality", facts.event.value, *labels],
        "dedup_key": f"dq:{facts.tenant}:{facts.environment}:{facts.job_definition.job_definition_id}:{facts.run_ref}",
        "dq": payload,
    }
