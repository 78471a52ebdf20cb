"""registry poll messages already recorded

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 09:00:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | Sequence[str] | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        'registry_messages',
        sa.Column('link', sa.String(length=64), nullable=False),
        sa.Column('message_id', sa.String(length=128), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('queued_at', TIMESTAMP, nullable=True),
        sa.Column('received_at', TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint('link', 'message_id', name=op.f('pk_registry_messages')),
    )


def downgrade() -> None:
    op.drop_table('registry_messages')
