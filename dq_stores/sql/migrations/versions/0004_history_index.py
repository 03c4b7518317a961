"""A dataset's metric history by job type: ``ix_dq_job_runs_dataset_type`` on
(tenant, environment, dataset_type, job_type, run_time DESC, job_id DESC), so the anomaly
detector's one history query is a single index range scan.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_dq_job_runs_dataset_type",
        "dq_job_runs",
        ["tenant", "environment", "dataset_type", "job_type", sa.text("run_time DESC"), sa.text("job_id DESC")],
    )


def downgrade() -> None:
    op.drop_index("ix_dq_job_runs_dataset_type", table_name="dq_job_runs")
