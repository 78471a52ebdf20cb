"""the process that holds a lease, for outbox items and registry operations

A row claimed by a process that holds its life carries the process's identity until it is
settled, so that the lease of a process that died is released at once rather than when it
runs out (store/life.py).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 02:00:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0017'
down_revision: str | Sequence[str] | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ('outbox', 'domain_operations'):
        op.add_column(table, sa.Column('claimed_by', sa.String(length=32), nullable=True))


def downgrade() -> None:
    for table in ('outbox', 'domain_operations'):
        with op.batch_alter_table(table) as batch:
            batch.drop_column('claimed_by')
