"""disclosure requests (Registration Data Policy §10)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28 04:00:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | Sequence[str] | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        'disclosure_requests',
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('public_id', sa.String(length=32), nullable=False),
        sa.Column('domain_id', ID, nullable=False),
        sa.Column('requester_user_id', ID, nullable=True),
        sa.Column('data_key_id', ID, nullable=False),
        sa.Column('requester_sealed', sa.LargeBinary(), nullable=False),
        sa.Column('purpose', sa.String(length=32), nullable=False),
        sa.Column('roles', sa.JSON(), nullable=False),
        sa.Column('fields', sa.JSON(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('received_at', TIMESTAMP, nullable=False),
        sa.Column('ack_due_at', TIMESTAMP, nullable=False),
        sa.Column('decision_due_at', TIMESTAMP, nullable=False),
        sa.Column('acknowledged_at', TIMESTAMP, nullable=True),
        sa.Column('acknowledged_by', sa.String(length=96), nullable=True),
        sa.Column('decided_at', TIMESTAMP, nullable=True),
        sa.Column('decided_by', sa.String(length=96), nullable=True),
        sa.Column('rationale_sealed', sa.LargeBinary(), nullable=True),
        sa.Column('granted_roles', sa.JSON(), nullable=False),
        sa.Column('expires_at', TIMESTAMP, nullable=True),
        sa.Column('withdrawn_at', TIMESTAMP, nullable=True),
        sa.Column('withdrawn_by', sa.String(length=96), nullable=True),
        sa.ForeignKeyConstraint(['domain_id'], ['domains.id'],
                                name=op.f('fk_disclosure_requests_domain_id_domains')),
        sa.ForeignKeyConstraint(['requester_user_id'], ['users.id'],
                                name=op.f('fk_disclosure_requests_requester_user_id_users')),
        sa.ForeignKeyConstraint(['data_key_id'], ['data_keys.id'],
                                name=op.f('fk_disclosure_requests_data_key_id_data_keys')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_disclosure_requests')),
        sa.UniqueConstraint('public_id', name=op.f('uq_disclosure_requests_public_id')),
    )
    op.create_index(op.f('ix_disclosure_requests_domain_id'), 'disclosure_requests',
                    ['domain_id'])
    op.create_index(op.f('ix_disclosure_requests_requester_user_id'), 'disclosure_requests',
                    ['requester_user_id'])
    op.create_index('ix_disclosure_requests_open', 'disclosure_requests',
                    ['state', 'ack_due_at'])


def downgrade() -> None:
    op.drop_table('disclosure_requests')
