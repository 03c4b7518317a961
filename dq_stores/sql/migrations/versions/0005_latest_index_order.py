"""``ix_dq_contract_datasets_latest`` gains ``contract_id`` as its last column: the latest lookup
orders by (version_key DESC, updated_at DESC, contract_id), and with the whole order in the index
Postgres reads one index entry and probes one artifact instead of sorting the first group of
equal keys (an incremental sort, two probes and a memoize node in the plan before).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_TABLE = "dq_contract_datasets"
_INDEX = "ix_dq_contract_datasets_latest"
_BASE = ["tenant", "environment", "dataset_type", "retired", sa.text("version_key DESC"), sa.text("updated_at DESC")]


def upgrade() -> None:
    op.drop_index(_INDEX, table_name=_TABLE)
    op.create_index(_INDEX, _TABLE, [*_BASE, "contract_id"])


def downgrade() -> None:
    op.drop_index(_INDEX, table_name=_TABLE)
    op.create_index(_INDEX, _TABLE, _BASE)
