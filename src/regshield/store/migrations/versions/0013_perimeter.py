"""disclosure approvals grant fields, not whole contacts

An approval now covers the fields the request asked for (or fewer, as the decision names):
`granted_fields`. Approvals made before keep exactly what their requests asked for.

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-06 03:00:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | Sequence[str] | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('disclosure_requests') as batch:
        batch.add_column(sa.Column('granted_fields', sa.JSON(), nullable=False,
                                   server_default=sa.text("'[]'")))
    op.execute("UPDATE disclosure_requests SET granted_fields = fields "
               "WHERE state = 'approved'")


def downgrade() -> None:
    with op.batch_alter_table('disclosure_requests') as batch:
        batch.drop_column('granted_fields')
