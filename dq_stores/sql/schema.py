"""The SQL schema: one SQLAlchemy Core ``MetaData`` for SQLite and Postgres.

Dialect quirks are one ``with_variant`` each, in place: JSONB on Postgres (GIN indexes on tags and
action types), plain JSON text on SQLite; ids and version keys compare byte-wise
(``COLLATE "C"`` on Postgres) so ordering matches every other backend. Columns that filters or
orderings use are real indexed columns. Alembic owns changes to this schema
(``dq_stores/sql/migrations``); a test checks the migrations produce exactly these tables.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

__all__ = [
    "artifact_revisions",
    "artifacts",
    "contract_datasets",
    "job_run_results",
    "job_runs",
    "metadata",
    "store_info",
]

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    }
)


def _key(length: int = 128) -> sa.types.TypeEngine[str]:
    # Byte-wise comparison on Postgres: a locale collation would order 'a-b' and 'ab' differently
    # from SQLite, the filesystem and Blob listings.
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware UTC in Python; ``timestamptz`` on Postgres, naive-UTC text on SQLite."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSON_DOC: sa.types.TypeEngine[Any] = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
"""Index columns (tags, action types): JSONB with GIN indexes on Postgres."""

DOCUMENT = sa.Text()
"""The canonical JSON, stored verbatim: JSONB would rewrite numbers (1.5e300 comes back as a
300-digit integer) and refuse U+0000, breaking the byte-identical round trip."""

artifacts = sa.Table(
    "dq_artifacts",
    metadata,
    sa.Column("tenant", _key(), primary_key=True),
    sa.Column("environment", _key(), primary_key=True),
    sa.Column("kind", _key(32), primary_key=True),
    sa.Column("artifact_id", _key(), primary_key=True),
    sa.Column("version", _key(), primary_key=True),
    sa.Column("version_key", _key(1024), nullable=False),
    sa.Column("name", sa.String(512), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("retired", sa.Boolean(), nullable=False),
    sa.Column("tags", JSON_DOC, nullable=False),
    sa.Column("action_types", JSON_DOC, nullable=False),
    sa.Column("trigger_type", sa.String(32), nullable=True),
    sa.Column("revision", sa.Integer(), nullable=False),
    sa.Column("etag", sa.String(64), nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("document", DOCUMENT, nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    # list: id asc, version desc; latest of an id: version desc, newest revision first.
    sa.Index(
        "ix_dq_artifacts_order",
        "tenant",
        "environment",
        "kind",
        "artifact_id",
        sa.text("version_key DESC"),
        "version",
    ),
    sa.Index("ix_dq_artifacts_status", "tenant", "environment", "kind", "status"),
    sa.Index("ix_dq_artifacts_tags_gin", "tags", postgresql_using="gin").ddl_if(dialect="postgresql"),
    sa.Index("ix_dq_artifacts_action_types_gin", "action_types", postgresql_using="gin").ddl_if(
        dialect="postgresql"
    ),
)

artifact_revisions = sa.Table(
    "dq_artifact_revisions",
    metadata,
    sa.Column("tenant", _key(), primary_key=True),
    sa.Column("environment", _key(), primary_key=True),
    sa.Column("kind", _key(32), primary_key=True),
    sa.Column("artifact_id", _key(), primary_key=True),
    sa.Column("version", _key(), primary_key=True),
    sa.Column("revision", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("etag", sa.String(64), nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("document", DOCUMENT, nullable=False),
    sa.Column("recorded_at", UtcDateTime(), nullable=False),
)

contract_datasets = sa.Table(
    "dq_contract_datasets",
    metadata,
    sa.Column("tenant", _key(), primary_key=True),
    sa.Column("environment", _key(), primary_key=True),
    sa.Column("contract_id", _key(), primary_key=True),
    sa.Column("version", _key(), primary_key=True),
    sa.Column("dataset_type", _key(), primary_key=True),
    sa.Column("version_key", _key(1024), nullable=False),
    sa.Column("retired", sa.Boolean(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    # get_latest_for_dataset: one index range scan in the query's exact order (contract_id is the
    # last tie-breaker), so the first row wins with no sort node and one join probe.
    sa.Index(
        "ix_dq_contract_datasets_latest",
        "tenant",
        "environment",
        "dataset_type",
        "retired",
        sa.text("version_key DESC"),
        sa.text("updated_at DESC"),
        "contract_id",
    ),
)

job_runs = sa.Table(
    "dq_job_runs",
    metadata,
    sa.Column("tenant", _key(), primary_key=True),
    sa.Column("environment", _key(), primary_key=True),
    sa.Column("job_id", _key(), primary_key=True),
    sa.Column("job_type", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("job_definition_id", _key(), nullable=True),
    sa.Column("dataset_type", _key(), nullable=True),
    sa.Column("contract_id", _key(), nullable=True),
    sa.Column("contract_version", _key(), nullable=True),
    sa.Column("dagster_run_id", sa.String(1024), nullable=True),
    sa.Column("asset_key", sa.String(1024), nullable=True),
    sa.Column("partition_key", sa.String(1024), nullable=True),
    sa.Column("run_time", UtcDateTime(), nullable=False),
    sa.Column("recorded_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Column("revision", sa.Integer(), nullable=False),
    sa.Column("etag", sa.String(64), nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("document", DOCUMENT, nullable=False),
    # Newest first per scope, and per tenant across environments (list_by_tenant).
    sa.Index(
        "ix_dq_job_runs_scope_time",
        "tenant",
        "environment",
        sa.text("run_time DESC"),
        sa.text("job_id DESC"),
    ),
    sa.Index(
        "ix_dq_job_runs_tenant_time",
        "tenant",
        sa.text("run_time DESC"),
        sa.text("job_id DESC"),
        sa.text("environment DESC"),
    ),
    sa.Index("ix_dq_job_runs_type", "tenant", "environment", "job_type", sa.text("run_time DESC")),
    sa.Index("ix_dq_job_runs_status", "tenant", "environment", "status", sa.text("run_time DESC")),
    sa.Index(
        "ix_dq_job_runs_definition", "tenant", "environment", "job_definition_id", sa.text("run_time DESC")
    ),
    sa.Index("ix_dq_job_runs_dataset", "tenant", "environment", "dataset_type", sa.text("run_time DESC")),
    # A dataset's metric history (anomaly detection): one range scan, newest first, no filter step.
    sa.Index(
        "ix_dq_job_runs_dataset_type",
        "tenant",
        "environment",
        "dataset_type",
        "job_type",
        sa.text("run_time DESC"),
        sa.text("job_id DESC"),
    ),
    sa.Index(
        "ix_dq_job_runs_asset",
        "tenant",
        "environment",
        "asset_key",
        "partition_key",
        sa.text("run_time DESC"),
    ),
    sa.Index("ix_dq_job_runs_dagster_run", "tenant", "environment", "dagster_run_id"),
)

job_run_results = sa.Table(
    "dq_job_run_results",
    metadata,
    sa.Column("tenant", _key(), primary_key=True),
    sa.Column("environment", _key(), primary_key=True),
    sa.Column("job_id", _key(), primary_key=True),
    # Part of the key: a new body is written beside the old one, the run record is switched to it,
    # and only then is the old body removed, so a crash in between never loses the readable result.
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("size_bytes", sa.BigInteger(), nullable=False),
    sa.Column("content_type", sa.String(255), nullable=False),
    sa.Column("body", sa.LargeBinary(), nullable=False),
    sa.Column("recorded_at", UtcDateTime(), nullable=False),
)
"""Small results kept inline (at most the offload threshold); larger ones go to a payload store."""


store_info = sa.Table(
    "dq_store_info",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(1024), nullable=False),
)
"""Facts about the store itself, not about any scope: ``store_id`` (a random identity, written
when the schema is created or upgraded, that names this store's namespace in a shared results
location). Not tenant data: row-level security leaves it readable (and read-only) for the
application role."""

STORE_ID = "store_id"
