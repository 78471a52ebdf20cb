"""the notification ledger of WDRP and ERRP notices; domains indexed by expiry

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 04:00:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | Sequence[str] | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'notification_ledger',
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('domain_id', ID, nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('cycle', sa.String(length=32), nullable=False),
        sa.Column('about', TIMESTAMP, nullable=False),
        sa.Column('recipients', sa.JSON(), nullable=False),
        sa.Column('late', sa.Boolean(), nullable=False),
        sa.Column('queued_at', TIMESTAMP, nullable=False),
        sa.Column('outbox_key', sa.String(length=128), nullable=True),
        sa.Column('bounced_at', TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(['domain_id'], ['domains.id'],
                                name=op.f('fk_notification_ledger_domain_id_domains')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_ledger')),
    )
    op.create_index('uq_notification_ledger_cycle', 'notification_ledger',
                    ['domain_id', 'kind', 'cycle'], unique=True)
    op.create_index(op.f('ix_domains_expires_at'), 'domains', ['expires_at'])


def downgrade() -> None:
    op.drop_index(op.f('ix_domains_expires_at'), table_name='domains')
    op.drop_index('uq_notification_ledger_cycle', table_name='notification_ledger')
    op.drop_table('notification_ledger')
