"""Executing one action: HTTP delivery (httpx, retries by tenacity) and result export.

``CALL_WEBHOOK`` / ``SEND_NOTIFICATION`` / ``OPEN_TICKET`` / ``EMIT_LINEAGE`` POST JSON with
``httpx`` (a per-attempt timeout, redirects not followed: a redirect could carry a secret header
to another host). The retry policy is ``tenacity``: up to ``max_attempts`` attempts on connection
errors, timeouts and 408/425/429/5xx, exponential backoff capped by ``max_backoff_seconds``, a
``Retry-After`` in seconds honoured up to that cap, and no attempt started after the DQ run's
time budget. Other 4xx fail at once. ``STORE_RESULTS`` writes the reports to a ``file://`` or
``azure-blob://`` location. Secrets come only from allowed environment variables and are scrubbed
from every error. No Dagster import here.
"""

from __future__ import annotations

import contextvars
import fnmatch
import hashlib
import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import tenacity

from dq_dagster.actions.core import (
    _DEFAULT_URL_ENV,
    _MAX_ERROR,
    _RETRYABLE_STATUS,
    _SECRET_HEADERS,
    ActionConfigError,
    ActionSettings,
    DQRunFacts,
    NothingToDo,
    Report,
)
from dq_dagster.actions.payloads import build_action_payload, build_ticket
from dq_stores.canonical import canonical_json
from dq_stores.errors import (
    BackendUnavailableError,
    StoreError,
)
from dq_stores.models import (
    ActionConfig,
    ActionOutcome,
    ActionOutcomeStatus,
    ActionProfile,
    ActionType,
    JobRun,
    JobType,
)
from dq_stores.models.common import utcnow
from dq_stores.secrets import redact

__all__ = ["ActionExecution", "Secrets", "execute_action"]


# -- executing one action -----------------------------------------------------------------------


@dataclass
class Secrets:
    values: list[str] = field(default_factory=list)

    def add(self, value: str) -> str:
        if len(value) >= 4:
            self.values.append(value)
        return value

    def scrub(self, text: str) -> str:
        for value in sorted(self.values, key=len, reverse=True):
            text = text.replace(value, "***")
        return redact(text)[:_MAX_ERROR]


@dataclass
class ActionExecution:
    facts: DQRunFacts
    settings: ActionSettings
    environ: Mapping[str, str]
    deadline: float
    secrets: Secrets
    profile: ActionProfile
    slot: str
    action_type: str
    ordinal: int

    def env_allowed(self, name: str) -> bool:
        tenant = self.facts.tenant
        upper = re.sub(r"[^A-Z0-9]", "_", tenant.upper())
        patterns = [
            p.replace("{tenant}", tenant).replace("{TENANT}", upper) for p in self.settings.allowed_env
        ]
        return any(fnmatch.fnmatchcase(name, p) for p in patterns)

    def env(self, param: str, name: Any, *, required: bool = True) -> str | None:
        """The value of the environment variable ``name`` (given by parameter ``param``)."""
        if not isinstance(name, str) or not name:
            raise ActionConfigError(f"parameter {param} must name an environment variable")
        if not self.env_allowed(name):
            raise ActionConfigError(
                f"parameter {param} names {name}, which action profiles may not read "
                f"(allowed: {', '.join(self.settings.allowed_env)})"
            )
        value = self.environ.get(name)
        if not value:
            if required:
                raise ActionConfigError(f"environment variable {name} (parameter {param}) is not set")
            return None
        return self.secrets.add(value)

    @property
    def idempotency_key(self) -> str:
        # Stable across retries and re-processing of the same DQ run: receivers can dedup on it.
        facts = self.facts
        raw = "/".join(
            (facts.tenant, facts.environment, facts.run_ref, self.profile.action_profile_id, self.action_type)
        )
        raw += f"/{self.ordinal}"
        return hashlib.sha256(raw.encode()).hexdigest()[:32]

    def payload(self, action_type: ActionType) -> dict[str, Any]:
        return build_action_payload(
            self.facts,
            action_type=action_type.value,
            profile_id=self.profile.action_profile_id,
            profile_version=self.profile.version,
            slot=self.slot,
            settings=self.settings,
        )


def _host(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}" + (f":{parts.port}" if parts.port else "")


def _http_target(
    x: ActionExecution, action_type: ActionType, params: Mapping[str, Any]
) -> tuple[str, dict[str, str]]:
    """The URL and headers of an HTTP action, from its parameters and the environment."""
    url_env = params.get("url_env")
    literal = params.get("url")
    if url_env is not None and literal is not None:
        raise ActionConfigError("give url_env or url, not both")
    url: str | None
    if url_env is not None:
        url = x.env("url_env", url_env)
    elif literal is not None:
        if not isinstance(literal, str):
            raise ActionConfigError("parameter url must be a string")
        url = literal
    else:
        default = _DEFAULT_URL_ENV.get(action_type)
        # A default name this code location does not allow simply means "no endpoint".
        url = x.env("url_env", default, required=False) if default and x.env_allowed(default) else None
        if url is None:
            if default is None:
                raise ActionConfigError(f"{action_type.value} needs url_env (or url)")
            raise NothingToDo(f"no endpoint: set {default} or give url_env in the action parameters")
        url_env = default
    assert url is not None
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ActionConfigError(f"the {'url' if literal else 'url_env'} endpoint must be an http(s) URL")
    endpoint = params.get("endpoint")
    if action_type is ActionType.EMIT_LINEAGE:
        # The OpenLineage HTTP transport convention: base URL + endpoint "api/v1/lineage".
        endpoint = "api/v1/lineage" if endpoint is None else endpoint
    if endpoint:
        if not isinstance(endpoint, str) or "://" in endpoint:
            raise ActionConfigError("parameter endpoint must be a relative path")
        url = url.rstrip("/") + "/" + endpoint.lstrip("/")
    headers: dict[str, str] = {}
    literal_headers = params.get("headers") or {}
    if not isinstance(literal_headers, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in literal_headers.items()
    ):
        raise ActionConfigError("parameter headers must be an object of strings")
    for name in literal_headers:
        if name.lower() in _SECRET_HEADERS:
            raise ActionConfigError(f"header {name} is a secret: give it through token_env or headers_env")
    headers.update(literal_headers)
    secret_headers = False
    if params.get("headers_env") is not None:
        raw = x.env("headers_env", params["headers_env"])
        try:
            extra = json.loads(raw or "")
        except ValueError:
            extra = None
        if not isinstance(extra, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in extra.items()
        ):
            raise ActionConfigError(
                f"environment variable {params['headers_env']} must hold a JSON object of strings"
            )
        for value in extra.values():
            x.secrets.add(value)
        headers.update(extra)
        secret_headers = True
    token_param = "api_key_env" if action_type is ActionType.EMIT_LINEAGE else "token_env"
    token_env = params.get(token_param)
    token: str | None = None
    if token_env is not None:
        token = x.env(token_param, token_env)
    elif action_type is ActionType.EMIT_LINEAGE:
        token = (
            x.env(token_param, "OPENLINEAGE_API_KEY", required=False)
            if x.env_allowed("OPENLINEAGE_API_KEY")
            else None
        )
    if token:
        headers["Authorization"] = f"Bearer {token}"
        secret_headers = True
    if secret_headers and url_env is None:
        raise ActionConfigError(
            "a secret header needs the URL from url_env too: a literal url in a stored profile could send it anywhere"
        )
    headers["Content-Type"] = "application/json"
    headers["User-Agent"] = "dq-dagster-actions/1"
    headers["Idempotency-Key"] = x.idempotency_key
    return url, headers


_SENDING: contextvars.ContextVar[bool] = contextvars.ContextVar("dq_action_sending", default=False)


class _QuietWhileSending(logging.Filter):
    """Drops httpx / httpcore log records made while an action sends: their request lines carry
    the full URL, which may itself be the secret (e.g. a Slack hook). Other httpx users of the
    process keep their logs.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not _SENDING.get()


for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).addFilter(_QuietWhileSending())


class _Retryable(Exception):
    """One failed attempt worth another: its error line, and the server's Retry-After (seconds)."""

    def __init__(self, error: str, retry_after: float | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.retry_after = retry_after


def _retry_after(response: httpx.Response) -> float | None:
    value = (response.headers.get("Retry-After") or "").strip()
    return float(value) if value.isdigit() else None  # an HTTP-date is not honoured: backoff applies


def _attempt(
    client: httpx.Client, url: str, data: bytes, headers: Mapping[str, str], timeout: float
) -> str | None:
    """One POST: ``None`` on 2xx, an error line for a final failure; raises ``_Retryable``."""
    host = _host(url)
    token = _SENDING.set(True)
    try:
        response = client.post(url, content=data, headers=dict(headers), timeout=timeout)
    except httpx.TimeoutException as exc:
        raise _Retryable(f"{host}: timed out") from exc
    except httpx.TransportError as exc:
        # Never the URL itself (it may be the secret, e.g. a Slack hook): the host and the reason.
        reason = str(exc) or type(exc).__name__
        raise _Retryable(f"{host}: {reason}") from exc
    finally:
        _SENDING.reset(token)
    status = response.status_code
    if 200 <= status < 300:
        return None
    if 300 <= status < 400:
        return f"HTTP {status} from {host} (redirects are not followed)"
    if status in _RETRYABLE_STATUS:
        raise _Retryable(f"HTTP {status} from {host}", _retry_after(response))
    return f"HTTP {status} from {host}"


def _post_json(
    x: ActionExecution, url: str, headers: Mapping[str, str], body: Mapping[str, Any], timeout: float
) -> tuple[int, str | None]:
    """POST ``body``; returns (attempts, error or None), retrying by the settings within the DQ
    run's deadline (the policy is tenacity's; see the module docstring).
    """
    data = json.dumps(body, separators=(",", ":"), sort_keys=True, allow_nan=False).encode()
    settings = x.settings
    attempts = 0
    last_error: str | None = None

    def wait(state: tenacity.RetryCallState) -> float:
        delay: float = min(
            settings.max_backoff_seconds, settings.backoff_seconds * 2 ** (state.attempt_number - 1)
        )
        failure = state.outcome.exception() if state.outcome is not None else None
        if isinstance(failure, _Retryable) and failure.retry_after is not None:
            delay = max(delay, min(failure.retry_after, settings.max_backoff_seconds))
        return delay

    class _NoTimeLeft(tenacity.stop.stop_base):
        # Stop when the next attempt would start after the deadline (or with almost no time left).
        def __call__(self, state: tenacity.RetryCallState) -> bool:
            return time.monotonic() + wait(state) >= x.deadline - 0.05

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(_Retryable),
        stop=tenacity.stop_after_attempt(settings.max_attempts) | _NoTimeLeft(),
        wait=wait,
        reraise=True,
    )
    # A client per action, not per process: proxy variables (HTTPS_PROXY, NO_PROXY) are read now.
    with httpx.Client(follow_redirects=False, headers={"User-Agent": "dq-dagster-actions/1"}) as client:
        try:
            for attempt in retrying:
                with attempt:
                    remaining = x.deadline - time.monotonic()
                    if remaining <= 0.05:
                        return attempts, (last_error + "; " if last_error else "") + "time budget exhausted"
                    attempts += 1
                    try:
                        return attempts, _attempt(client, url, data, headers, min(timeout, remaining))
                    except _Retryable as exc:
                        last_error = exc.error
                        raise
        except _Retryable as exc:
            if attempts < settings.max_attempts:
                return attempts, f"{exc.error}; no time left for another attempt"
            return attempts, exc.error
    return attempts, last_error  # pragma: no cover  # tenacity either returns or reraises


def _do_http(x: ActionExecution, action_type: ActionType, action: ActionConfig) -> tuple[int, str | None]:
    params = action.parameters
    url, headers = _http_target(x, action_type, params)
    if str(params.get("method", "POST")).upper() != "POST":
        raise ActionConfigError("parameter method must be POST (the only method HTTP actions use)")
    timeout = x.settings.timeout_seconds
    if params.get("timeout_seconds") is not None:
        value = params["timeout_seconds"]
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 300:
            raise ActionConfigError("parameter timeout_seconds must be a number of seconds from 0 to 300")
        timeout = float(value)  # per attempt; the run's time budget still bounds it
    payload = x.payload(action_type)
    body: dict[str, Any]
    if action_type is ActionType.SEND_NOTIFICATION:
        fmt = params.get("format", "dq")
        extra = {k: params[k] for k in ("channel", "template_id") if isinstance(params.get(k), str)}
        if fmt == "text":
            # Slack and Teams incoming webhooks take {"text": ...}.
            body = {"text": payload["text"], **({"channel": extra["channel"]} if "channel" in extra else {})}
        elif fmt == "dq":
            body = {**payload, **extra}
        else:
            raise ActionConfigError("parameter format must be 'dq' or 'text'")
    elif action_type is ActionType.OPEN_TICKET:
        body = build_ticket(x.facts, params, payload)
    elif action_type is ActionType.EMIT_LINEAGE:
        # Imported here: the OpenLineage client costs ~0.4 s to import, which a code location
        # whose profiles never emit lineage should not pay at load.
        from dq_dagster.actions.lineage import build_openlineage_event

        body = build_openlineage_event(x.facts, params, x.settings)
    else:
        body = payload
    return _post_json(x, url, headers, body, timeout)


def _location_allowed(x: ActionExecution, location: str) -> bool:
    allowed = x.settings.allowed_locations
    if allowed is None:
        return True
    tenant = x.facts.tenant
    upper = re.sub(r"[^A-Z0-9]", "_", tenant.upper())
    prefixes = [p.replace("{tenant}", tenant).replace("{TENANT}", upper) for p in allowed]
    return any(
        location.rstrip("/") + "/" == p.rstrip("/") + "/" or location.startswith(p.rstrip("/") + "/")
        for p in prefixes
    )


def _do_store(x: ActionExecution, action: ActionConfig) -> tuple[int, str | None]:
    from dq_stores.stores import open_payload_store

    params = action.parameters
    location = params.get("location", x.settings.store_location)
    if location is None:
        raise NothingToDo(
            "the results are kept in the DQ store already; give parameters.location (file://... or "
            "azure-blob://...) or ActionSettings.store_location to export a copy"
        )
    if not isinstance(location, str) or not location:
        raise ActionConfigError("parameter location must be a file:// or azure-blob:// URL")
    scheme = urlsplit(location).scheme
    if scheme not in {"file", "azure-blob"}:
        raise ActionConfigError("parameter location must be a file:// or azure-blob:// URL")
    if "?" in location:
        raise ActionConfigError(
            "parameter location must not carry a query (credentials come from connection_string_env)"
        )
    if not _location_allowed(x, location):
        raise ActionConfigError(
            f"location {redact(location)} is not one this code location allows for tenant {x.facts.tenant}"
        )
    options: dict[str, Any] = {}
    if params.get("connection_string_env") is not None:
        if scheme != "azure-blob":
            raise ActionConfigError("connection_string_env only applies to azure-blob:// locations")
        options["connection_string"] = x.env("connection_string_env", params["connection_string_env"])
    if scheme == "azure-blob":
        options.update({"retry_total": 1, "connection_timeout": int(x.settings.timeout_seconds) or 1})
    facts = x.facts
    folder = f"{facts.tenant}/{facts.environment}/{facts.job_definition.job_definition_id}/{facts.run_ref}"
    documents: list[tuple[str, bytes]] = [
        (f"{folder}/summary.json", canonical_json(x.payload(ActionType.STORE_RESULTS)))
    ]
    for report, run in _pair_reports(facts):
        name = f"{JobType(report.report_type).value}-{run.job_id if run else len(documents)}"
        documents.append((f"{folder}/{name}.json", canonical_json(report)))
    attempts = 0
    error: str | None = None
    for attempt in range(1, x.settings.max_attempts + 1):
        if x.deadline - time.monotonic() <= 0.05:
            error = (error + "; " if error else "") + "time budget exhausted"
            break
        attempts = attempt
        try:
            store = open_payload_store(location, **options)
            try:
                for key, data in documents:
                    store.write(key, data, content_type="application/json")
            finally:
                store.close()
            return attempts, None
        except BackendUnavailableError as exc:
            error = f"cannot write to the location: {exc}"
        except StoreError as exc:
            return attempts, f"cannot write to the location: {exc}"
        if attempt < x.settings.max_attempts:
            delay = min(x.settings.max_backoff_seconds, x.settings.backoff_seconds * 2 ** (attempt - 1))
            if time.monotonic() + delay >= x.deadline:
                break
            time.sleep(delay)
    return attempts, error


def _pair_reports(facts: DQRunFacts) -> list[tuple[Report, JobRun | None]]:
    pairs: list[tuple[Report, JobRun | None]] = []
    used: set[str] = set()
    for report in facts.reports:
        match = next(
            (
                run
                for run in facts.job_runs
                if run.job_id not in used
                and JobType(run.job_type).value == report.report_type
                and run.result is not None
                and run.result.result_type == report.report_type
            ),
            None,
        )
        if match is not None:
            used.add(match.job_id)
        pairs.append((report, match))
    return pairs


def execute_action(x: ActionExecution, action: ActionConfig) -> ActionOutcome:
    action_type = ActionType(action.action_type)
    started = utcnow()
    attempts = 0
    status = ActionOutcomeStatus.FAILED
    error: str | None = None
    try:
        if action_type is ActionType.STORE_RESULTS:
            attempts, error = _do_store(x, action)
        else:
            attempts, error = _do_http(x, action_type, action)
        status = ActionOutcomeStatus.SUCCEEDED if error is None else ActionOutcomeStatus.FAILED
    except NothingToDo as exc:
        status, error = ActionOutcomeStatus.SKIPPED, str(exc)
    except ActionConfigError as exc:
        status, error = ActionOutcomeStatus.FAILED, str(exc)
    except Exception as exc:  # an action must never break the DQ run or the other actions
        status, error = ActionOutcomeStatus.FAILED, f"unexpected {type(exc).__name__}: {exc}"
    return ActionOutcome(
        action_type=action_type.value,
        action_profile_id=x.profile.action_profile_id,
        status=status,
        attempts=attempts,
        error=x.secrets.scrub(error) if error else None,
        started_at=started,
        completed_at=utcnow(),
    )
