"""Inline job-run results (small results kept beside the run record).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

from dq_stores.sql.schema import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _key(length=128):
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "dq_job_run_results",
        sa.Column("tenant", _key(), nullable=False),
        sa.Column("environment", _key(), nullable=False),
        sa.Column("job_id", _key(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("recorded_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "environment", "job_id", "sha256", name="pk_dq_job_run_results"),
    )


def downgrade() -> None:
    op.drop_table("dq_job_run_results")
