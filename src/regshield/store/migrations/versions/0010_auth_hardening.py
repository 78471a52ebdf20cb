"""login sources seen per user, user invitations

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 03:00:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | Sequence[str] | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        'login_sources',
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('user_id', ID, nullable=False),
        sa.Column('address_hash', sa.String(length=64), nullable=False),
        sa.Column('first_seen_at', TIMESTAMP, nullable=False),
        sa.Column('last_seen_at', TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                                name=op.f('fk_login_sources_user_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_login_sources')),
    )
    op.create_index('uq_login_sources_user_address', 'login_sources',
                    ['user_id', 'address_hash'], unique=True)
    op.create_table(
        'user_invitations',
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('public_id', sa.String(length=32), nullable=False),
        sa.Column('account_id', ID, nullable=False),
        sa.Column('role', sa.String(length=32), nullable=False),
        sa.Column('email_index', sa.String(length=64), nullable=False),
        sa.Column('email_sealed', sa.LargeBinary(), nullable=False),
        sa.Column('data_key_id', ID, nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=True),
        sa.Column('invited_by', sa.String(length=96), nullable=False),
        sa.Column('created_at', TIMESTAMP, nullable=False),
        sa.Column('expires_at', TIMESTAMP, nullable=False),
        sa.Column('accepted_at', TIMESTAMP, nullable=True),
        sa.Column('user_id', ID, nullable=True),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'],
                                name=op.f('fk_user_invitations_account_id_accounts')),
        sa.ForeignKeyConstraint(['data_key_id'], ['data_keys.id'],
                                name=op.f('fk_user_invitations_data_key_id_data_keys')),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                                name=op.f('fk_user_invitations_user_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_user_invitations')),
        sa.UniqueConstraint('public_id', name=op.f('uq_user_invitations_public_id')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_user_invitations_token_hash')),
    )
    op.create_index(op.f('ix_user_invitations_account_id'), 'user_invitations',
                    ['account_id'])
    op.create_index(op.f('ix_user_invitations_email_index'), 'user_invitations',
                    ['email_index'])


def downgrade() -> None:
    op.drop_table('user_invitations')
    op.drop_table('login_sources')
