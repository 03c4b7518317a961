"""Store identity: ``dq_store_info`` with a random ``store_id`` naming the store's namespace in a
(possibly shared) results location.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "dq_store_info",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.String(1024), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_dq_store_info"),
    )
    op.bulk_insert(table, [{"name": "store_id", "value": uuid.uuid4().hex[:16]}])


def downgrade() -> None:
    op.drop_table("dq_store_info")
