"""Stored action profiles run after each DQ run, against a real HTTP server on 127.0.0.1.

Covers: a webhook failing twice then succeeding (3 attempts recorded), one hanging past the
timeout (failed within a bounded time, the DQ result untouched), 4xx not retried, redirects not
followed, which profiles run for success / anomaly / failure, the documented payload, the
OpenLineage event, the ticket, result exports to a folder, secrets (never in outcomes, logs or the
run record; only allowed environment variables; no secret header to a literal URL), missing and
retired profiles, re-processing without repeating what succeeded, and the run status sensors in
real Dagster runs (success, and a run failing before it recorded anything).
"""

# No ``from __future__ import annotations``: Dagster reads op parameter annotations at runtime.
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance, OpExecutionContext, build_sensor_context, job, op

from dq_dagster.actions import (
    PAYLOAD_SCHEMA,
    ActionEvent,
    ActionSettings,
    build_action_sensors,
    classify,
    run_actions,
)
from dq_dagster.resources import DQStoresResource
from dq_dagster.schedules import DQRunRequest
from dq_dagster.scoped import ScopedJobRunStore
from dq_dagster.writer import JobRunWriter, OutputOrigin
from dq_stores.errors import ScopeViolationError
from dq_stores.models import (
    ActionOutcomeStatus,
    ExpectationResult,
    JobRun,
    JobType,
    ProfilingSnapshot,
    RuleResult,
    Severity,
    ValidationReport,
)
from dq_stores.registry import Stores, open_stores
from dq_stores.scope import Scope
from dq_stores.testing.builders import load_fixture, make_contract, make_job_definition

pytestmark = pytest.mark.dagster

ENV = "prod"
TENANT = "acme"
FAST = ActionSettings(timeout_seconds=0.4, backoff_seconds=0.05, max_backoff_seconds=0.1, budget_seconds=5.0)


# -- a real HTTP endpoint -----------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Endpoint:
    """A local HTTP server whose behaviour per path is scripted by the test."""

    base: str
    received: list[Received] = field(default_factory=list)
    script: dict[str, list[int]] = field(default_factory=dict)
    """path -> statuses to answer in turn (the last one repeats); 0 means hang."""
    release: threading.Event = field(default_factory=threading.Event)

    def hits(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[Endpoint]:
    # A proxy configured on the machine must not sit between the client and the local server.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    state = Endpoint(base="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            state.received.append(Received(self.path, dict(self.headers.items()), json.loads(raw or b"null")))
            statuses = state.script.get(self.path, [200])
            count = len(state.hits(self.path))
            status = statuses[min(count, len(statuses)) - 1]
            if status == 0:
                state.release.wait(10)  # hang well past any client timeout
                return
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", state.base + "/elsewhere")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


# -- store content ------------------------------------------------------------------------------------


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/dq.db"


@pytest.fixture
def stores(url: str) -> Iterator[Stores]:
    with open_stores(url) as opened:
        opened.contracts.put(
            make_contract(TENANT, ENV, "billing-contract", "1.0.0", dataset_types=["billing"])
        )
        yield opened


def profile(
    stores: Stores, profile_id: str, *actions: tuple[str, dict[str, Any]], status: str = "active"
) -> None:
    stores.action_profiles.put(
        {
            "action_profile_id": profile_id,
            "name": profile_id,
            "tenant_id": TENANT,
            "environment": ENV,
            "version": "1.0.0",
            "status": status,
            "actions": [{"action_type": t, "parameters": p} for t, p in actions],
        }
    )


def definition(stores: Stores, **fields: Any) -> Any:
    slots = {
        "on_success": {"action_profile_id": "on-success"},
        "on_failure": {"action_profile_id": "on-failure"},
        "on_anomaly": {"action_profile_id": "on-anomaly"},
    }
    d = make_job_definition(
        TENANT, ENV, "billing-daily", contract_id="billing-contract", **{**slots, **fields}
    )
    stores.job_definitions.put(d)
    return d


def validation(status: str = "passed", soft_failed: int = 0, hard_failed: int = 0) -> ValidationReport:
    rules = [
        RuleResult(
            rule_id="invoice_id.unique",
            rule_type="unique",
            column="invoice_id",
            checked_count=100,
            failed_count=hard_failed,
            failure_rate=hard_failed / 100,
            passed=hard_failed == 0,
            sample=["INV-1"] if hard_failed else [],
        ),
        RuleResult(
            rule_id="status.allowed",
            rule_type="allowed_values",
            column="status",
            severity=Severity.SOFT,
            checked_count=100,
            failed_count=soft_failed,
            failure_rate=soft_failed / 100,
            passed=soft_failed == 0,
            sample=["secret-sample-value"] if soft_failed else [],
        ),
    ]
    return ValidationReport(
        tenant_id=TENANT,
        environment=ENV,
        contract_id="billing-contract",
        contract_version="1.0.0",
        dataset_type="billing",
        status=status,
        row_count=100,
        rows_failed=hard_failed,
        pass_rate=1 - hard_failed / 100,
        rules=rules,
    )


def record(stores: Stores, report: Any, run_id: str | None = None, step: str = "validate") -> JobRun:
    writer = JobRunWriter(ScopedJobRunStore(stores.job_runs, Scope(TENANT, ENV)))
    origin = OutputOrigin(
        run_id=run_id or str(uuid.uuid4()), step_key=step, asset_key="billing", partition_key=TENANT
    )
    return writer.write(report, origin, job_definition_id="billing-daily").job_run


def without_actions(run: JobRun | None) -> dict[str, Any]:
    assert run is not None
    data = run.model_dump(mode="json")
    data.pop("actions")
    return data


# -- HTTP actions ----------------------------------------------------------------------------------


def test_a_webhook_failing_twice_then_succeeding_records_three_attempts(
    stores: Stores, endpoint: Endpoint
) -> None:
    endpoint.script["/flaky"] = [503, 503, 200]
    profile(stores, "on-success", ("CALL_WEBHOOK", {"url": endpoint.base + "/flaky"}))
    jd = definition(stores)
    run = record(stores, validation())

    outcomes = run_actions(stores, TENANT, ENV, run.job_id, jd, settings=FAST, environ={})

    assert [(o.action_type, o.status, o.attempts, o.error) for o in outcomes] == [
        ("CALL_WEBHOOK", ActionOutcomeStatus.SUCCEEDED, 3, None)
    ]
    hits = endpoint.hits("/flaky")
    assert len(hits) == 3
    assert len({h.headers["Idempotency-Key"] for h in hits}) == 1  # the receiver can dedup retries
    stored = stores.job_runs.get(TENANT, ENV, run.job_id)
    assert stored is not None and stored.actions == outcomes
    assert without_actions(stored) == without_actions(run)

    payload = hits[-1].body
    assert payload["schema"] == PAYLOAD_SCHEMA
    assert payload["event"] == "success"
    assert payload["tenant"] == TENANT and payload["environment"] == ENV
    assert payload["job_definition"] == {"id": "billing-daily", "version": "1.0.0", "name": jd.name}
    assert (
        payload["contract"]["id"] == "billing-contract" and payload["contract"]["dataset_type"] == "billing"
    )
    assert payload["action"] == {
        "type": "CALL_WEBHOOK",
        "profile_id": "on-success",
        "profile_version": "1.0.0",
        "slot": "on_success",
    }
    assert payload["job_runs"][0]["job_run_id"] == run.job_id
    assert payload["job_runs"][0]["status"] == "succeeded"


def test_a_hanging_webhook_fails_in_bounded_time_and_leaves_the_dq_result_alone(
    stores: Stores, endpoint: Endpoint
) -> None:
    endpoint.script["/hang"] = [0]
    profile(
        stores,
        "on-failure",
        ("CALL_WEBHOOK", {"url": endpoint.base + "/hang"}),
        ("CALL_WEBHOOK", {"url": endpoint.base + "/ok"}),
    )
    jd = definition(stores)
    run = record(stores, validation(status="failed", hard_failed=3))
    result_before = stores.job_runs.get_result(TENANT, ENV, run.job_id)

    started = time.monotonic()
    outcomes = run_actions(stores, TENANT, ENV, run.job_id, jd, settings=FAST, environ={})
    elapsed = time.monotonic() - started

    assert elapsed < 3.0  # 3 attempts x 0.4 s + backoff, never the server's 10 s
    hang, ok = outcomes
    assert (hang.status, hang.attempts) == (ActionOutcomeStatus.FAILED, 3)
    assert hang.error is not None and "timed out" in hang.error
    assert ok.status == ActionOutcomeStatus.SUCCEEDED  # the other action is not held up or dropped
    stored = stores.job_runs.get(TENANT, ENV, run.job_id)
    assert without_actions(stored) == without_actions(run)
    assert stores.job_runs.get_result(TENANT, ENV, run.job_id) == result_before
    assert stored is not None and [o.status for o in stored.actions] == [
        ActionOutcomeStatus.FAILED,
        ActionOutcomeStatus.SUCCEEDED,
    ]


def test_the_time_budget_bounds_a_run_whatever_the_attempts(stores: Stores, endpoint: Endpoint) -> None:
    endpoint.script["/hang"] = [0]
    profile(stores, "on-success", ("CALL_WEBHOOK", {"url": endpoint.base + "/hang"}))
    jd = definition(stores)
    run = record(stores, validation())
    settings = ActionSettings(timeout_seconds=0.5, max_attempts=10, backoff_seconds=0.05, budget_seconds=1.2)
    started = time.monotonic()
    (outcome,) = run_actions(stores, TENANT, ENV, run.job_id, jd, settings=settings, environ={})
    assert time.monotonic() - started < 2.5
    assert outcome.status == ActionOutcomeStatus.FAILED and outcome.attempts < 10


def test_client_errors_are_not_retried_and_redirects_not_followed(stores: Stores, endpoint: Endpoint) -> None:
    endpoint.script["/bad"] = [400]
    endpoint.script["/moved"] = [302]
    profile(
        stores,
        "on-success",
        ("CALL_WEBHOOK", {"url": endpoint.base + "/bad"}),
        ("CALL_WEBHOOK", {"url": endpoint.base + "/moved"}),
        ("CALL_WEBHOOK", {"url": "ftp://example.org/x"}),
        ("CALL_WEBHOOK", {}),
    )
    jd = definition(stores)
    run = record(stores, validation())
    bad, moved, ftp, nothing = run_actions(stores, TENANT, ENV, run.job_id, jd, settings=FAST, environ={})
    assert (bad.status, bad.attempts) == (ActionOutcomeStatus.FAILED, 1)
    assert bad.error == f"HTTP 400 from {endpoint.base}"
    assert (moved.status, moved.attempts) == (ActionOutcomeStatus.FAILED, 1)
    assert "redirects are not followed" in (moved.error or "")
    assert endpoint.hits("/elsewhere") == []
    assert (ftp.status, ftp.attempts) == (ActionOutcomeStatus.FAILED, 0)
    assert "http(s)" in (ftp.error or "")
    assert "needs url_env" in (nothing.error or "")


# -- which profiles run --------------------------------------------------------------------------------


def test_success_anomaly_and_failure_choose_their_profiles(stores: Stores, endpoint: Endpoint) -> None:
    for slot in ("on-success", "on-failure", "on-anomaly"):
        profile(stores, slot, ("CALL_WEBHOOK", {"url": f"{endpoint.base}/{slot}"}))
    jd = definition(stores)

    def fired(report: Any) -> list[str]:
        endpoint.received.clear()
        run = record(stores, report)
        run_actions(stores, TENANT, ENV, run.job_id, jd, settings=FAST, environ={})
        return sorted(r.path for r in endpoint.received)

    assert fired(validation()) == ["/on-success"]
    assert fired(validation(status="warning", soft_failed=4)) == ["/on-anomaly", "/on-success"]
    assert fired(validation(status="failed", hard_failed=2)) == ["/on-failure"]
    snapshot = ProfilingSnapshot(
        tenant_id=TENANT,
        environment=ENV,
        row_count=10,
        expectations=[
            ExpectationResult(
                column="net_amount", metric="null_ratio", observed=0.2, max_threshold=0.01, passed=False
            )
        ],
    )
    assert fired(snapshot) == ["/on-anomaly", "/on-success"]
    anomaly_payload = endpoint.hits("/on-anomaly")[0].body
    assert anomaly_payload["event"] == "anomaly"
    assert anomaly_payload["anomalies"] == [
        {
            "column": "net_amount",
            "metric": "null_ratio",
            "observed": 0.2,
            "min_threshold": None,
            "max_threshold": 0.01,
            "severity": "soft",
        }
    ]


def test_classify_reads_job_runs_reports_and_the_orchestrators_verdict() -> None:
    assert classify([], [validation()]) == (ActionEvent.SUCCESS, ["every job run succeeded"])
    assert classify([], [validation()], run_failed=True)[0] is ActionEvent.FAILURE
    assert classify([], [validation(status="warning", soft_failed=1)])[0] is ActionEvent.ANOMALY
    event, reasons = classify([], [validation(status="failed", hard_failed=1, soft_failed=1)])
    assert event is ActionEvent.FAILURE and reasons == ["validation: 1 hard rule(s) failed"]


def test_failure_payload_lists_failed_rules_without_samples(stores: Stores, endpoint: Endpoint) -> None:
    profile(stores, "on-failure", ("CALL_WEBHOOK", {"url": endpoint.base + "/hook"}))
    jd = definition(stores)
    run = record(stores, validation(status="failed", hard_failed=3, soft_failed=2))
    run_actions(stores, TENANT, ENV, run.job_id, jd, settings=FAST, environ={}, dagster_run_id="r-1")
    body = endpoint.hits("/hook")[0].body
    assert body["event"] == "failure"
    assert [r["rule_id"] for r in body["failed_rules"]] == ["invoice_id.unique", "status.allowed"]
    assert body["failed_rules"][0] == {
        "rule_id": "invoice_id.unique",
        "rule_type": "unique",
        "column": "invoice_id",
        "severity": "hard",
        "failed_count": 3,
        "checked_count": 100,
        "failure_rate": 0.03,
    }
    assert "secret-sample-value" not in json.dumps(body)  # samples may be personal data
    assert body["dagster"] == {"run_id": "r-1", "job_name": None}
    assert body["text"].startswith("[DQ FAILURE] ")


# -- the other action types ------------------------------------------------------------------------


def test_lineage_ticket_notification_and_stored_results(
    stores: Stores, endpoint: Endpoint, tmp_path: Path
) -> None:
    export = tmp_path / "exports"
    profile(
        stores,
        "on-failure",
        ("EMIT_LINEAGE", {"namespace": "dq-test"}),
        (
            "OPEN_TICKET",
            {
                "url_env": "DQ_ACTION_TICKETS",
                "token_env": "DQ_ACTION_TICKET_TOKEN",
                "project": "DQ",
                "labels": ["billing"],
            },
        ),
        ("SEND_NOTIFICATION", {"channel": "#dq", "format": "text"}),
        ("STORE_RESULTS", {"location": export.as_uri()}),
    )
    jd = definition(stores)
    run_id = str(uuid.uuid4())
    run = record(stores, validation(status="failed", hard_failed=1), run_id=run_id)
    environ = {
        "OPENLINEAGE_URL": endpoint.base,
        "DQ_ACTION_TICKETS": endpoint.base + "/tickets",
        "DQ_ACTION_TICKET_TOKEN": "tok-123456",
        "DQ_ACTION_NOTIFICATION_URL": endpoint.base + "/notify",
    }
    settings = ActionSettings(timeout_seconds=2, dagster_url="http://dagster.local:3000/")
    outcomes = run_actions(
        stores, TENANT, ENV, run.job_id, jd, settings=settings, environ=environ, dagster_run_id=run_id
    )
    assert [o.status for o in outcomes] == [ActionOutcomeStatus.SUCCEEDED] * 4, outcomes

    (lineage,) = endpoint.hits("/api/v1/lineage")
    event = lineage.body
    assert event["eventType"] == "FAIL"
    assert event["run"]["runId"] == run_id
    assert event["run"]["facets"]["errorMessage"]["message"].startswith("validation job run")
    assert event["job"] == {"namespace": "dq-test", "name": "billing-daily"}
    assert event["schemaURL"].endswith("#/$defs/RunEvent") and event["producer"].startswith("https://")
    assert event["eventTime"].endswith("Z")
    (dataset,) = event["inputs"]
    assert dataset["name"] == "billing"
    assertions = dataset["facets"]["dataQualityAssertions"]["assertions"]
    # The facet has more fields since it is built with openlineage-python (tests/dagster/test_openlineage.py).
    (unique,) = [a for a in assertions if a["assertion"] == "invoice_id.unique"]
    assert {k: unique[k] for k in ("assertion", "success", "column")} == {
        "assertion": "invoice_id.unique",
        "success": False,
        "column": "invoice_id",
    }
    assert event["outputs"] == []

    (ticket,) = endpoint.hits("/tickets")
    assert ticket.headers["Authorization"] == "Bearer tok-123456"
    assert ticket.body["schema"] == "dq.ticket.v1"
    assert ticket.body["priority"] == "high"
    assert ticket.body["labels"] == ["data-quality", "failure", "billing"]
    assert ticket.body["project"] == "DQ"
    assert f"http://dagster.local:3000/runs/{run_id}" in ticket.body["description"]
    assert ticket.body["dedup_key"] == f"dq:{TENANT}:{ENV}:billing-daily:{run_id}"

    (note,) = endpoint.hits("/notify")
    assert note.body == {"text": note.body["text"], "channel": "#dq"} and note.body["text"].startswith(
        "[DQ FAILURE]"
    )

    folder = export / TENANT / ENV / "billing-daily" / run_id
    assert sorted(p.name for p in folder.iterdir()) == ["summary.json", f"validation-{run.job_id}.json"]
    assert json.loads((folder / f"validation-{run.job_id}.json").read_bytes()) == json.loads(
        stores.job_runs.get_result(TENANT, ENV, run.job_id)
    )
    assert json.loads((folder / "summary.json").read_bytes())["event"] == "failure"


def test_the_fixture_profile_is_skipped_without_endpoints(stores: Stores) -> None:
    stores.action_profiles.put(load_fixture("action_profiles", tenant=TENANT, environment=ENV))
    jd = definition(stores, on_failure={"action_profile_id": "alerts-critical-v1"})
    run = record(stores, validation(status="failed", hard_failed=1))
    outcomes = run_actions(stores, TENANT, ENV, run.job_id, jd, settings=FAST, environ={})
    assert [(o.action_type, o.status) for o in outcomes] == [
        ("SEND_NOTIFICATION", ActionOutcomeStatus.SKIPPED),
        ("EMIT_LINEAGE", ActionOutcomeStatus.SKIPPED),
    ]
    assert "DQ_ACTION_NOTIFICATION_URL" in (outcomes[0].error or "")


def test_missing_and_retired_profiles_are_recorded(stores: Stores) -> None:
    profile(stores, "on-anomaly", ("CALL_WEBHOOK", {"url": "http://127.0.0.1:9/x"}), status="retired")
    jd = definition(stores)
    run = record(stores, validation(status="warning", soft_failed=1))
    outcomes = run_actions(stores, TENANT, ENV, run.job_id, jd, settings=FAST, environ={})
    assert [(o.action_type, o.action_profile_id, o.status) for o in outcomes] == [
        ("ACTION_PROFILE", "on-success", ActionOutcomeStatus.FAILED),
        ("ACTION_PROFILE", "on-anomaly", ActionOutcomeStatus.SKIPPED),
    ]
    assert "on-success (latest)" not in (outcomes[0].error or "") and "does not exist in acme/prod" in (
        outcomes[0].error or ""
    )


# -- secrets ------------------------------------------------------------------------------------------


def test_secrets_come_from_allowed_variables_and_never_reach_outcomes_logs_or_records(
    stores: Stores, endpoint: Endpoint, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint.script["/hook/T0KEN-IN-PATH"] = [401]
    secret_token = "s3cr3t-bearer-value"
    profile(
        stores,
        "on-success",
        ("CALL_WEBHOOK", {"url_env": "DQ_ACTION_HOOK_URL", "token_env": "DQ_ACTION_HOOK_TOKEN"}),
        ("CALL_WEBHOOK", {"url_env": "DQ_ACTION_HOOK_URL", "token_env": "DQ_STORES_URL"}),
        ("CALL_WEBHOOK", {"url": endpoint.base + "/ok", "token_env": "DQ_ACTION_HOOK_TOKEN"}),
        ("CALL_WEBHOOK", {"url": endpoint.base + "/ok", "headers": {"Authorization": "Bearer literal"}}),
        ("CALL_WEBHOOK", {"url_env": "DQ_ACTION_MISSING"}),
    )
    jd = definition(stores)
    run = record(stores, validation())
    environ = {
        "DQ_ACTION_HOOK_URL": endpoint.base + "/hook/T0KEN-IN-PATH",
        "DQ_ACTION_HOOK_TOKEN": secret_token,
        "DQ_STORES_URL": "postgresql://dq:db-password@db/dq",
    }
    with caplog.at_level(logging.DEBUG):
        outcomes = run_actions(stores, TENANT, ENV, run.job_id, jd, settings=FAST, environ=environ)

    unauthorized, not_allowed, literal_with_secret, literal_header, missing = outcomes
    assert unauthorized.error == f"HTTP 401 from {endpoint.base}"
    assert endpoint.hits("/hook/T0KEN-IN-PATH")[0].headers["Authorization"] == f"Bearer {secret_token}"
    assert "DQ_STORES_URL, which action profiles may not read" in (not_allowed.error or "")
    assert "needs the URL from url_env" in (literal_with_secret.error or "")
    assert "give it through token_env or headers_env" in (literal_header.error or "")
    assert "DQ_ACTION_MISSING (parameter url_env) is not set" in (missing.error or "")
    assert [o.attempts for o in outcomes] == [1, 0, 0, 0, 0]
    assert len(endpoint.received) == 1  # nothing was sent for the refused ones

    stored = stores.job_runs.get(TENANT, ENV, run.job_id)
    assert stored is not None
    everything = stored.canonical_json().decode() + caplog.text + repr(outcomes)
    for secret in (secret_token, "T0KEN-IN-PATH", "db-password"):
        assert secret not in everything


def test_a_secret_echoed_in_an_error_is_scrubbed(stores: Stores, endpoint: Endpoint) -> None:
    # The URL itself is the secret (e.g. a Slack hook); it fails to connect: the error names the host only.
    profile(stores, "on-success", ("SEND_NOTIFICATION", {"url_env": "DQ_ACTION_SLACK"}))
    jd = definition(stores)
    run = record(stores, validation())
    (outcome,) = run_actions(
        stores,
        TENANT,
        ENV,
        run.job_id,
        jd,
        settings=FAST,
        environ={"DQ_ACTION_SLACK": "http://127.0.0.1:9/services/XYZ-SECRET"},
    )
    assert outcome.status == ActionOutcomeStatus.FAILED
    assert "XYZ-SECRET" not in (outcome.error or "") and "127.0.0.1" in (outcome.error or "")


def test_tenant_placeholders_keep_each_tenant_to_its_variables(stores: Stores, endpoint: Endpoint) -> None:
    profile(
        stores,
        "on-success",
        ("CALL_WEBHOOK", {"url_env": "DQ_ACME_HOOK"}),
        ("CALL_WEBHOOK", {"url_env": "DQ_GLOBEX_HOOK"}),
    )
    jd = definition(stores)
    run = record(stores, validation())
    settings = ActionSettings(timeout_seconds=1, allowed_env=("DQ_{TENANT}_*",))
    environ = {"DQ_ACME_HOOK": endpoint.base + "/acme", "DQ_GLOBEX_HOOK": endpoint.base + "/globex"}
    own, other = run_actions(stores, TENANT, ENV, run.job_id, jd, settings=settings, environ=environ)
    assert own.status == ActionOutcomeStatus.SUCCEEDED
    assert other.status == ActionOutcomeStatus.FAILED and "may not read" in (other.error or "")
    store_settings = ActionSettings(allowed_locations=("file:///srv/dq/{tenant}",))
    profile(stores, "on-success", ("STORE_RESULTS", {"location": "file:///srv/dq/globex"}))
    (refused,) = run_actions(stores, TENANT, ENV, run.job_id, jd, settings=store_settings, environ={})
    assert refused.status == ActionOutcomeStatus.FAILED and "not one this code location allows" in (
        refused.error or ""
    )


# -- recording -----------------------------------------------------------------------------------------


def test_reprocessing_a_run_does_not_repeat_what_succeeded(stores: Stores, endpoint: Endpoint) -> None:
    endpoint.script["/fails"] = [500]
    profile(
        stores,
        "on-success",
        ("CALL_WEBHOOK", {"url": endpoint.base + "/ok"}),
        ("CALL_WEBHOOK", {"url": endpoint.base + "/fails"}),
    )
    jd = definition(stores)
    runs = [record(stores, validation(), step="validate"), record(stores, validation(), step="profile")]
    ids = [r.job_id for r in runs]
    first = run_actions(stores, TENANT, ENV, ids, jd, settings=FAST, environ={})
    second = run_actions(stores, TENANT, ENV, ids, jd, settings=FAST, environ={})
    assert len(endpoint.hits("/ok")) == 1  # already succeeded: not sent again
    assert len(endpoint.hits("/fails")) == 2 * FAST.max_attempts  # failed: tried again
    assert second[0] == first[0]
    for job_id in ids:  # recorded on every job run of the DQ run, replaced not appended
        stored = stores.job_runs.get(TENANT, ENV, job_id)
        assert stored is not None and stored.actions == second


def test_arguments_of_another_scope_are_refused(stores: Stores) -> None:
    other = make_job_definition("globex", ENV, "billing-daily", contract_id="billing-contract")
    with pytest.raises(ScopeViolationError):
        run_actions(stores, TENANT, ENV, "x", other)


# -- the run status sensors in real Dagster runs ----------------------------------------------------------

SENSOR_URL: dict[str, str] = {}


@op
def validate_step(context: OpExecutionContext) -> None:
    with open_stores(SENSOR_URL["url"]) as stores:
        writer = JobRunWriter(ScopedJobRunStore(stores.job_runs, Scope(TENANT, ENV)))
        origin = OutputOrigin(run_id=context.run_id, step_key="validate_step", job_name="dq_demo_job")
        writer.write(validation(status="failed", hard_failed=5), origin, job_definition_id="billing-daily")


@job
def dq_demo_job() -> None:
    validate_step()


@op
def crashing_step() -> None:
    raise RuntimeError("source system unreachable")


@job
def dq_crashing_job() -> None:
    crashing_step()


def test_the_run_status_sensors_act_after_real_runs(url: str, stores: Stores, endpoint: Endpoint) -> None:
    SENSOR_URL["url"] = url
    profile(stores, "on-failure", ("CALL_WEBHOOK", {"url_env": "DQ_ACTION_HOOK"}))
    definition(stores, job_types=["validation"])
    on_success, on_failure, _on_cancel = build_action_sensors(
        [dq_demo_job, dq_crashing_job], environment=ENV, tenants=[TENANT], settings=FAST
    )
    assert (on_success.name, on_failure.name) == ("dq_actions_on_success", "dq_actions_on_failure")
    resources = {"dq_stores": DQStoresResource(url=url)}
    tags = DQRunRequest(TENANT, ENV, "billing-daily", job_types=(JobType.VALIDATION,)).tags()

    with DagsterInstance.ephemeral() as instance, pytest.MonkeyPatch.context() as mp:
        mp.setenv("DQ_ACTION_HOOK", endpoint.base + "/hook")
        cursors: dict[str, str | None] = {}

        def tick(sensor: Any) -> Any:
            with build_sensor_context(
                instance=instance, cursor=cursors.get(sensor.name), resources=resources
            ) as ctx:
                data = sensor.evaluate_tick(ctx)
            cursors[sensor.name] = data.cursor
            return data

        tick(on_success), tick(on_failure)  # the first tick only sets the cursor
        foreign = {**tags, "dq/tenant": "globex"}  # a tenant this sensor does not serve
        assert dq_crashing_job.execute_in_process(instance=instance, tags=foreign, raise_on_error=False)
        assert dq_demo_job.execute_in_process(instance=instance).success  # no tags: nothing to act on
        ok = dq_demo_job.execute_in_process(instance=instance, tags=tags)
        crashed = dq_crashing_job.execute_in_process(instance=instance, tags=tags, raise_on_error=False)
        assert ok.success and not crashed.success
        # One tick each handles every finished run: a run without actions does not end the tick.
        tick(on_success)
        tick(on_failure)
        tick(on_success), tick(on_failure)  # nothing new: nothing repeated

    # The successful Dagster run recorded a failed validation: on_failure ran for it.
    (validated,) = stores.job_runs.list(TENANT, ENV, dagster_run_id=ok.run_id).items
    assert [(o.action_profile_id, o.status) for o in validated.actions] == [
        ("on-failure", ActionOutcomeStatus.SUCCEEDED)
    ]
    # The crashed run recorded nothing: a failed job run now records it and its actions.
    (placeholder,) = stores.job_runs.list(TENANT, ENV, dagster_run_id=crashed.run_id).items
    assert placeholder.status == "failed" and placeholder.job_type == "validation"
    assert "failed before recording a result" in (placeholder.message or "")
    assert [o.status for o in placeholder.actions] == [ActionOutcomeStatus.SUCCEEDED]
    bodies = [h.body for h in endpoint.hits("/hook")]
    assert len(bodies) == 2
    assert {b["dagster"]["run_id"] for b in bodies} == {ok.run_id, crashed.run_id}
    crash_body = next(b for b in bodies if b["dagster"]["run_id"] == crashed.run_id)
    assert "the Dagster run failed" in crash_body["reasons"]
    assert crash_body["run_error"] and "crashing_step" in crash_body["run_error"]


def test_profile_parameters_of_the_bundled_examples(
    stores: Stores, endpoint: Endpoint, tmp_path: Path
) -> None:
    endpoint.script["/slow"] = [0]
    profile(
        stores,
        "on-success",
        ("STORE_RESULTS", {"retention_days": 90}),
        ("CALL_WEBHOOK", {"url_env": "DQ_ACTION_WEBHOOK_URL", "method": "POST", "timeout_seconds": 0.2}),
        ("CALL_WEBHOOK", {"url_env": "DQ_ACTION_WEBHOOK_URL", "method": "GET"}),
    )
    jd = definition(stores)
    run = record(stores, validation())
    environ = {"DQ_ACTION_WEBHOOK_URL": endpoint.base + "/slow"}
    settings = ActionSettings(timeout_seconds=5, max_attempts=2, backoff_seconds=0.05, budget_seconds=5)
    started = time.monotonic()
    stored, slow, get = run_actions(stores, TENANT, ENV, run.job_id, jd, settings=settings, environ=environ)
    assert time.monotonic() - started < 2.0  # the profile's 0.2 s per attempt, not the 5 s default
    assert stored.status == ActionOutcomeStatus.SKIPPED and "kept in the DQ store already" in (
        stored.error or ""
    )
    assert (slow.status, slow.attempts) == (ActionOutcomeStatus.FAILED, 2)
    assert get.status == ActionOutcomeStatus.FAILED and "method must be POST" in (get.error or "")

    exports = tmp_path / "exports"
    settings = ActionSettings(store_location=exports.as_uri(), max_attempts=1, timeout_seconds=0.2)
    outcomes = run_actions(stores, TENANT, ENV, run.job_id, jd, settings=settings, environ=environ)
    assert outcomes[0].status == ActionOutcomeStatus.SUCCEEDED
    assert [p.name for p in (exports / TENANT / ENV / "billing-daily").iterdir()] == [run.job_id]
