"""Stored action profiles run after every DQ run: notifications, webhooks, result exports,
OpenLineage events and tickets, each outcome recorded on the run's job runs.

Pure cores (no Dagster import): ``core`` (classifying a run's outcome, settings, the facts),
``payloads`` (the documents sent), ``lineage`` (the OpenLineage event, built with
openlineage-python), ``delivery`` (HTTP on httpx with a tenacity retry policy, result export),
``executor`` (``run_actions``, ``record_outcomes``). Dagster shell: ``sensors``
(``build_action_sensors``). The names below are re-exported lazily (PEP 562), so importing a core
module costs no Dagster import.

Secrets: parameters never hold a secret, only the names of environment variables (``url_env``,
``token_env``, ``headers_env``, ``api_key_env``, ``connection_string_env``), and only names
matching ``ActionSettings.allowed_env`` may be read, so a stored profile cannot send an arbitrary
variable of the code location anywhere. A secret header requires the URL to come from an
environment variable too. Secret values are scrubbed from every error recorded or logged, and URLs
are never logged (only their host).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    **dict.fromkeys(
        [
            "MAX_LISTED",
            "PAYLOAD_SCHEMA",
            "PRODUCER",
            "TICKET_SCHEMA",
            "ActionEvent",
            "ActionSettings",
            "DQRunFacts",
            "classify",
        ],
        "dq_dagster.actions.core",
    ),
    **dict.fromkeys(["build_action_payload", "build_ticket"], "dq_dagster.actions.payloads"),
    **dict.fromkeys(["OPENLINEAGE_SCHEMA_URL", "build_openlineage_event"], "dq_dagster.actions.lineage"),
    **dict.fromkeys(["record_outcomes", "run_actions"], "dq_dagster.actions.executor"),
    "build_action_sensors": "dq_dagster.actions.sensors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dq_dagster.actions' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
