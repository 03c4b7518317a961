"""``run_actions``: the plain executor of a DQ run's action profiles, and ``record_outcomes``.

It classifies the run, resolves the job definition's profiles for the event, executes their
actions concurrently within the run's time budget, and records each outcome in ``JobRun.actions``
of every job run of the DQ run (read-modify-write on the etag; nothing else of the run changes,
and no action failure is raised). Re-processing a run does not repeat an action that already
succeeded. No Dagster import here.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dq_dagster.actions.core import ActionSettings, DQRunFacts, Report, classify, slots_for
from dq_dagster.actions.delivery import ActionExecution, Secrets, execute_action
from dq_stores.errors import (
    ConflictError,
    InvalidArtifactError,
    ScopeViolationError,
    StoreError,
)
from dq_stores.models import (
    ActionOutcome,
    ActionOutcomeStatus,
    ActionType,
    CleansingReport,
    JobDefinition,
    JobRun,
    ProfilingSnapshot,
    ValidationReport,
)
from dq_stores.models.common import utcnow
from dq_stores.scope import Scope, validate_id
from dq_stores.secrets import redact
from dq_stores.stores import Stores

__all__ = ["record_outcomes", "run_actions"]


# -- the executor -------------------------------------------------------------------------------


def _load_reports(stores: Stores, runs: Sequence[JobRun], log: Any) -> list[Report]:
    reports: list[Report] = []
    for run in runs:
        if run.result is None or run.result.result_type not in {"validation", "cleansing", "profiling"}:
            continue
        try:
            model = stores.job_runs.get_result_model(run.tenant_id, run.environment, run.job_id)
        except StoreError as exc:
            log.warning(f"job run {run.job_id}: cannot read its report for the actions ({redact(str(exc))})")
            continue
        if isinstance(model, ValidationReport | CleansingReport | ProfilingSnapshot):
            reports.append(model)
    return reports


def _same(outcome: ActionOutcome) -> ActionOutcome:
    return outcome


def _outcome_key(outcome: ActionOutcome, ordinal: int) -> tuple[str | None, str, int]:
    return (outcome.action_profile_id, outcome.action_type, ordinal)


def _keyed(outcomes: Sequence[ActionOutcome]) -> dict[tuple[str | None, str, int], ActionOutcome]:
    counts: dict[tuple[str | None, str], int] = {}
    keyed = {}
    for outcome in outcomes:
        base = (outcome.action_profile_id, outcome.action_type)
        counts[base] = counts.get(base, 0) + 1
        keyed[_outcome_key(outcome, counts[base])] = outcome
    return keyed


def run_actions(
    stores: Stores,
    tenant: str,
    environment: str,
    job_run_id: str | Sequence[str],
    job_definition: JobDefinition,
    report: Report | Sequence[Report] | None = None,
    *,
    run_failed: bool = False,
    run_cancelled: bool = False,
    run_error: str | None = None,
    dagster_run_id: str | None = None,
    dagster_job_name: str | None = None,
    input_uri: str | None = None,
    settings: ActionSettings | None = None,
    environ: Mapping[str, str] | None = None,
    log: Any = None,
    record: bool = True,
) -> list[ActionOutcome]:
    """Execute the action profiles of ``job_definition`` for one DQ run; return the outcomes.

    ``job_run_id``: the job run(s) of the DQ run (outcomes are recorded on each). ``report``: the
    run's report(s); ``None`` reads them from the job runs' stored results. ``run_failed``: the
    orchestrator's run failed (e.g. a step raised), which makes the event a failure whatever the
    reports say; ``run_cancelled``: it was cancelled, a failure too. Raises only for bad arguments (``InvalidArtifactError``, ``ScopeViolationError``);
    action, endpoint and store failures become outcomes and log lines.
    """
    settings = settings or ActionSettings()
    environ = os.environ if environ is None else environ
    log = log or logging.getLogger("dq_dagster.actions")
    scope = Scope(tenant, environment)
    if (job_definition.tenant_id, job_definition.environment) != (scope.tenant, scope.environment):
        raise ScopeViolationError(
            f"job definition {job_definition.job_definition_id} belongs to "
            f"{job_definition.tenant_id}/{job_definition.environment}, not to {scope}"
        )
    ids = [job_run_id] if isinstance(job_run_id, str) else list(job_run_id)
    ids = list(dict.fromkeys(validate_id(i, "job_run_id") for i in ids))
    runs: list[JobRun] = []
    for job_id in ids:
        try:
            found = stores.job_runs.get(tenant, environment, job_id)
        except StoreError as exc:
            log.warning(f"job run {job_id}: cannot read it ({redact(str(exc))})")
            continue
        if found is None:
            log.warning(f"job run {job_id} does not exist in {scope}; its actions are not recorded there")
        else:
            runs.append(found)
    if report is None:
        reports = _load_reports(stores, runs, log)
    elif isinstance(report, ValidationReport | CleansingReport | ProfilingSnapshot):
        reports = [report]
    else:
        reports = list(report)
    event, reasons = classify(runs, reports, run_failed=run_failed, run_cancelled=run_cancelled)
    facts = DQRunFacts(
        tenant=tenant,
        environment=environment,
        job_definition=job_definition,
        job_runs=tuple(runs),
        reports=tuple(reports),
        event=event,
        reasons=tuple(reasons),
        occurred_at=utcnow(),
        dagster_run_id=dagster_run_id,
        dagster_job_name=dagster_job_name,
        run_error=run_error,
        input_uri=input_uri,
    )
    slots = slots_for(job_definition, event)
    if not slots:
        log.info(f"DQ run {facts.run_ref} ({event.value}): the job definition names no action profile for it")
        return []
    previous = _keyed(runs[0].actions) if runs else {}
    deadline = time.monotonic() + settings.budget_seconds
    tasks: list[Callable[[], ActionOutcome]] = []
    for slot, ref in slots:
        try:
            profile = stores.action_profiles.get(tenant, environment, ref.action_profile_id, ref.version)
            if profile is None and ref.version is None:
                # "Latest" skips retired versions: tell a retired profile from a missing one.
                versions = stores.action_profiles.versions(tenant, environment, ref.action_profile_id)
                if versions:
                    profile = stores.action_profiles.get(
                        tenant, environment, ref.action_profile_id, versions[0]
                    )
        except StoreError as exc:
            profile = None
            problem = f"cannot read action profile {ref.action_profile_id}: {redact(str(exc))}"
        else:
            problem = f"action profile {ref.action_profile_id}{'@' + ref.version if ref.version else ''} does not exist in {scope}"
        if profile is None or profile.is_retired:
            status = ActionOutcomeStatus.FAILED if profile is None else ActionOutcomeStatus.SKIPPED
            message = (
                problem
                if profile is None
                else f"action profile {ref.action_profile_id}@{profile.version} is retired"
            )
            outcome = ActionOutcome(
                action_type="ACTION_PROFILE",
                action_profile_id=ref.action_profile_id,
                status=status,
                error=message,
            )
            tasks.append(functools.partial(_same, outcome))
            continue
        counts: dict[str, int] = {}
        for action in profile.actions:
            type_value = ActionType(action.action_type).value
            counts[type_value] = counts.get(type_value, 0) + 1
            done = previous.get((profile.action_profile_id, type_value, counts[type_value]))
            if done is not None and ActionOutcomeStatus(done.status) is ActionOutcomeStatus.SUCCEEDED:
                # Re-processing the same DQ run: what already succeeded is not done again.
                tasks.append(functools.partial(_same, done))
                continue
            x = ActionExecution(
                facts, settings, environ, deadline, Secrets(), profile, slot, type_value, counts[type_value]
            )
            tasks.append(functools.partial(execute_action, x, action))
    workers = max(1, min(settings.max_workers, len(tasks)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dq-action") as pool:
        outcomes = list(pool.map(lambda task: task(), tasks))
    for outcome in outcomes:
        line = f"action {outcome.action_type} of profile {outcome.action_profile_id}: {ActionOutcomeStatus(outcome.status).value}"
        line += f" after {outcome.attempts} attempt(s)" if outcome.attempts else ""
        line += f" ({outcome.error})" if outcome.error else ""
        (log.info if ActionOutcomeStatus(outcome.status) is not ActionOutcomeStatus.FAILED else log.warning)(
            line
        )
    if record:
        record_outcomes(stores, tenant, environment, [r.job_id for r in runs], outcomes, log=log)
    return outcomes


def record_outcomes(
    stores: Stores,
    tenant: str,
    environment: str,
    job_run_ids: Sequence[str],
    outcomes: Sequence[ActionOutcome],
    *,
    log: Any = None,
) -> list[str]:
    """Put ``outcomes`` in ``JobRun.actions`` of each job run (replacing earlier outcomes of the
    same profiles, keeping others), by etag with retry; nothing else of the run changes. Returns
    the ids recorded; failures are logged, never raised.
    """
    log = log or logging.getLogger("dq_dagster.actions")
    profiles = {o.action_profile_id for o in outcomes}
    recorded: list[str] = []
    for job_id in job_run_ids:
        for _ in range(20):
            try:
                entry = stores.job_runs.get_entry(tenant, environment, job_id)
                if entry is None:
                    log.warning(f"job run {job_id} disappeared; action outcomes not recorded on it")
                    break
                kept = [o for o in entry.artifact.actions if o.action_profile_id not in profiles]
                merged = kept + list(outcomes)
                if merged != entry.artifact.actions:
                    stores.job_runs.put(
                        entry.artifact.model_copy(update={"actions": merged}), if_match=entry.etag
                    )
                recorded.append(job_id)
                break
            except ConflictError:
                continue  # another writer changed the run: re-read and re-apply
            except (StoreError, InvalidArtifactError) as exc:
                log.warning(f"job run {job_id}: action outcomes not recorded ({redact(str(exc))})")
                break
        else:
            log.warning(f"job run {job_id} kept changing; action outcomes not recorded on it")
    return recorded
