"""Initial schema: artifacts, their revisions, contract dataset index, job runs.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from dq_stores.sql.schema import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _key(length=128):
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def _json():
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    is_pg = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "dq_artifacts",
        sa.Column("tenant", _key(), nullable=False),
        sa.Column("environment", _key(), nullable=False),
        sa.Column("kind", _key(32), nullable=False),
        sa.Column("artifact_id", _key(), nullable=False),
        sa.Column("version", _key(), nullable=False),
        sa.Column("version_key", _key(1024), nullable=False),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("retired", sa.Boolean(), nullable=False),
        sa.Column("tags", _json(), nullable=False),
        sa.Column("action_types", _json(), nullable=False),
        sa.Column("trigger_type", sa.String(32), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("etag", sa.String(64), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint(
            "tenant", "environment", "kind", "artifact_id", "version", name="pk_dq_artifacts"
        ),
    )
    op.create_index(
        "ix_dq_artifacts_order",
        "dq_artifacts",
        ["tenant", "environment", "kind", "artifact_id", sa.text("version_key DESC"), "version"],
    )
    op.create_index("ix_dq_artifacts_status", "dq_artifacts", ["tenant", "environment", "kind", "status"])
    if is_pg:
        op.create_index("ix_dq_artifacts_tags_gin", "dq_artifacts", ["tags"], postgresql_using="gin")
        op.create_index(
            "ix_dq_artifacts_action_types_gin", "dq_artifacts", ["action_types"], postgresql_using="gin"
        )

    op.create_table(
        "dq_artifact_revisions",
        sa.Column("tenant", _key(), nullable=False),
        sa.Column("environment", _key(), nullable=False),
        sa.Column("kind", _key(32), nullable=False),
        sa.Column("artifact_id", _key(), nullable=False),
        sa.Column("version", _key(), nullable=False),
        sa.Column("revision", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("etag", sa.String(64), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("recorded_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint(
            "tenant",
            "environment",
            "kind",
            "artifact_id",
            "version",
            "revision",
            name="pk_dq_artifact_revisions",
        ),
    )

    op.create_table(
        "dq_contract_datasets",
        sa.Column("tenant", _key(), nullable=False),
        sa.Column("environment", _key(), nullable=False),
        sa.Column("contract_id", _key(), nullable=False),
        sa.Column("version", _key(), nullable=False),
        sa.Column("dataset_type", _key(), nullable=False),
        sa.Column("version_key", _key(1024), nullable=False),
        sa.Column("retired", sa.Boolean(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint(
            "tenant", "environment", "contract_id", "version", "dataset_type", name="pk_dq_contract_datasets"
        ),
    )
    op.create_index(
        "ix_dq_contract_datasets_latest",
        "dq_contract_datasets",
        [
            "tenant",
            "environment",
            "dataset_type",
            "retired",
            sa.text("version_key DESC"),
            sa.text("updated_at DESC"),
        ],
    )

    op.create_table(
        "dq_job_runs",
        sa.Column("tenant", _key(), nullable=False),
        sa.Column("environment", _key(), nullable=False),
        sa.Column("job_id", _key(), nullable=False),
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
        sa.Column("document", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "environment", "job_id", name="pk_dq_job_runs"),
    )
    op.create_index(
        "ix_dq_job_runs_scope_time",
        "dq_job_runs",
        ["tenant", "environment", sa.text("run_time DESC"), sa.text("job_id DESC")],
    )
    op.create_index(
        "ix_dq_job_runs_tenant_time",
        "dq_job_runs",
        ["tenant", sa.text("run_time DESC"), sa.text("job_id DESC"), sa.text("environment DESC")],
    )
    for name, column in (
        ("ix_dq_job_runs_type", "job_type"),
        ("ix_dq_job_runs_status", "status"),
        ("ix_dq_job_runs_definition", "job_definition_id"),
        ("ix_dq_job_runs_dataset", "dataset_type"),
    ):
        op.create_index(name, "dq_job_runs", ["tenant", "environment", column, sa.text("run_time DESC")])
    op.create_index(
        "ix_dq_job_runs_asset",
        "dq_job_runs",
        ["tenant", "environment", "asset_key", "partition_key", sa.text("run_time DESC")],
    )
    op.create_index("ix_dq_job_runs_dagster_run", "dq_job_runs", ["tenant", "environment", "dagster_run_id"])


def downgrade() -> None:
    for table in ("dq_job_runs", "dq_contract_datasets", "dq_artifact_revisions", "dq_artifacts"):
        op.drop_table(table)
