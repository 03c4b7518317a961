"""The ``DataQualityComponent``'s attributes (what ``defs.yaml`` says) and its state (what the
stores said when the code location loaded: served tenants, their contracts' rules, the dataset's
columns). Pydantic models and pure functions; the Dagster shell is ``dq_dagster.component``.
"""

from collections.abc import Mapping
from typing import Any, Literal

from dagster import (
    Backoff,
    Jitter,
    Resolvable,
    RetryPolicy,
)
from dagster.components import (
    Model,
)
from pydantic import BaseModel, Field

from dq_dagster.engine import compile_rules
from dq_dagster.engine.anomaly import monitors
from dq_stores.models import (
    DataContract,
)

__all__ = ["DatasetAttributes", "SourceAttributes", "StoresAttributes"]

STATE_VERSION = 1
DQ_STORES = "dq_stores"
DQ_IO_MANAGER = "dq_io_manager"
JobName = Literal["validation", "cleansing", "profiling"]
ALL_JOBS: tuple[JobName, ...] = ("validation", "cleansing", "profiling")
# Transient failures (a database failover, a Blob timeout) are worth a retry; a missing contract or
# a broken rule is not (``_permanent_errors`` raises those as non-retryable failures).
DQ_RETRY = RetryPolicy(max_retries=2, delay=1.0, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)


# -- attributes ------------------------------------------------------------------------------------


class StoresAttributes(Resolvable, Model):
    url: str | None = Field(
        default=None,
        description=(
            "Metadata store URL (sqlite:///..., postgresql+psycopg://..., file://..., azure-blob://...). "
            'Default: DQ_STORES_URL when set, else the embedded SQLite store. Use "{{ env.DQ_STORES_URL }}" '
            "for a URL with a password: the value is read from the environment, never written to YAML."
        ),
    )
    results_url: str | None = Field(
        default=None,
        description="Where large results go (file://... or azure-blob://...). Default: DQ_STORES_RESULTS_URL when set.",
    )
    postgres_schema: str | None = Field(
        default=None, description="Postgres schema of the DQ tables. Default: DQ_STORES_SCHEMA when set."
    )
    docs_dir: str | None = Field(
        default=None,
        description=(
            "Folder of the static data-docs site, refreshed after each DQ output; each materialization "
            "then links its run page as dq/report. Default: DQ_STORES_DOCS_DIR when set, else no site."
        ),
    )
    docs_url: str | None = Field(
        default=None,
        description="Where docs_dir is served (dq/report links under it). Default: DQ_STORES_DOCS_URL, else file://.",
    )


class SourceAttributes(Resolvable, Model):
    """Exactly one of ``asset``, ``path`` or ``table``."""

    asset: str | None = Field(
        default=None,
        description="Key (a/b/c) of an upstream asset partitioned by tenant, yielding a polars or pandas frame.",
    )
    table: str | None = Field(
        default=None,
        description=(
            "A database table, 'schema.table' ('{tenant}' is replaced by the tenant id, e.g. "
            "'{tenant}.billing' for a schema per tenant): validated and profiled IN PLACE by the SQL "
            "engine (rules pushed down, nothing copied out); cleansing reads it into memory."
        ),
    )
    connection: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the table's database, without a password (else use connection_env).",
    )
    connection_env: str | None = Field(
        default=None,
        description="Name of the environment variable holding the table's database URL (read when a run starts).",
    )
    path: str | None = Field(
        default=None,
        description=(
            "A file per tenant: '{tenant}' is replaced by the tenant id. Local (relative to this "
            "defs.yaml's folder) or azure-blob://<container>/<path> (AZURE_STORAGE_CONNECTION_STRING); "
            "CSV or Parquet by extension."
        ),
    )


class DatasetAttributes(Resolvable, Model):
    dataset_type: str = Field(description="The contract dataset type (e.g. billing).")
    source: SourceAttributes = Field(description="Where the raw data of each tenant comes from.")
    jobs: list[JobName] = Field(
        default_factory=lambda: list(ALL_JOBS),
        description="Which DQ jobs run: validation, cleansing, profiling.",
    )
    key_prefix: str | None = Field(default=None, description="Prefix of this dataset's asset keys and names.")
    group_name: str | None = Field(default=None, description="Asset group (default: the dataset type).")


# -- state: what the stores say when the code location loads ------------------------------------------


class _Rule(BaseModel):
    rule_id: str
    rule_type: str
    severity: str
    column: str | None = None
    description: str = ""


class _DatasetState(BaseModel):
    tenants: dict[str, str]
    """tenant -> contract id@version."""
    rules: dict[str, list[_Rule]]
    """tenant -> the rules of its contract."""
    schema_dataset: dict[str, Any] | None = None
    """The dataset contract the table schema is shown from (the first tenant's)."""
    anomaly: dict[str, list[str]] = Field(default_factory=dict)
    """tenant -> the metric keys its contract's ``anomaly_detection`` follows (one WARN check each)."""


class _State(BaseModel):
    version: int = STATE_VERSION
    environment: str
    datasets: dict[str, _DatasetState]


def _dataset_state(contracts: Mapping[str, DataContract], dataset_type: str) -> _DatasetState:
    tenants: dict[str, str] = {}
    rules: dict[str, list[_Rule]] = {}
    schema: dict[str, Any] | None = None
    anomaly: dict[str, list[str]] = {}
    for tenant in sorted(contracts):
        contract = contracts[tenant]
        plan = compile_rules(contract, dataset_type)
        tenants[tenant] = f"{contract.contract_id}@{contract.version}"
        rules[tenant] = [
            _Rule(
                rule_id=r.rule_id,
                rule_type=r.rule_type,
                severity=str(getattr(r.severity, "value", r.severity)),
                column=r.column,
                description=r.description,
            )
            for r in plan.rules
        ]
        if schema is None:
            schema = plan.dataset.model_dump(mode="json", exclude_unset=True)
        watched = [m.key for m in monitors(plan.dataset)]
        if watched:
            anomaly[tenant] = watched
    return _DatasetState(tenants=tenants, rules=rules, schema_dataset=schema, anomaly=anomaly)


def _union_anomaly_keys(state: _DatasetState) -> list[str]:
    """Every metric key any tenant follows, once, in first-seen order."""
    return list(dict.fromkeys(k for tenant in sorted(state.anomaly) for k in state.anomaly[tenant]))


def _union_plan_rules(state: _DatasetState) -> list[_Rule]:
    """Every rule id any tenant has, once, in first-seen order; hard if hard for any tenant."""
    seen: dict[str, _Rule] = {}
    for tenant in sorted(state.rules):
        for rule in state.rules[tenant]:
            known = seen.get(rule.rule_id)
            if known is None:
                seen[rule.rule_id] = rule
            elif rule.severity == "hard" and known.severity != "hard":
                seen[rule.rule_id] = rule.model_copy(update={"severity": "hard"})
    return list(seen.values())
