"""registry lock: requests, the domain's lock state, users' lock credentials

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 22:40:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | Sequence[str] | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('lock_password_hash', sa.String(length=255), nullable=True))
        batch.add_column(sa.Column('lock_email_sealed', sa.LargeBinary(), nullable=True))
    with op.batch_alter_table('domains') as batch:
        batch.add_column(sa.Column('registry_locked', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column('registry_lock_revision', sa.Integer(), nullable=False,
                                   server_default='0'))
    op.create_table(
        'registry_lock_requests',
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('public_id', sa.String(length=32), nullable=False),
        sa.Column('domain_id', ID, nullable=False),
        sa.Column('action', sa.String(length=8), nullable=False),
        sa.Column('requested_by', sa.String(length=48), nullable=False),
        sa.Column('requested_at', TIMESTAMP, nullable=False),
        sa.Column('expires_at', TIMESTAMP, nullable=False),
        sa.Column('revision', sa.Integer(), nullable=False),
        sa.Column('code_digest', sa.String(length=64), nullable=True),
        sa.Column('needs_approval', sa.Boolean(), nullable=False),
        sa.Column('relock_after_seconds', sa.Integer(), nullable=True),
        sa.Column('relock_of', sa.String(length=32), nullable=True),
        sa.Column('failed_attempts', sa.Integer(), nullable=False),
        sa.Column('verified_at', TIMESTAMP, nullable=True),
        sa.Column('approved_by', sa.String(length=48), nullable=True),
        sa.Column('approved_at', TIMESTAMP, nullable=True),
        sa.Column('completed_at', TIMESTAMP, nullable=True),
        sa.Column('cancelled_at', TIMESTAMP, nullable=True),
        sa.Column('cancelled_by', sa.String(length=48), nullable=True),
        sa.Column('expired_at', TIMESTAMP, nullable=True),
        sa.Column('superseded_at', TIMESTAMP, nullable=True),
        sa.Column('relock_settled_at', TIMESTAMP, nullable=True),
        sa.Column('relock_id', sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(['domain_id'], ['domains.id'],
                                name=op.f('fk_registry_lock_requests_domain_id_domains')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_registry_lock_requests')),
        sa.UniqueConstraint('public_id', name=op.f('uq_registry_lock_requests_public_id')),
    )
    op.create_index(op.f('ix_registry_lock_requests_domain_id'), 'registry_lock_requests',
                    ['domain_id'])
    op.create_index(op.f('ix_registry_lock_requests_code_digest'), 'registry_lock_requests',
                    ['code_digest'])


def downgrade() -> None:
    op.drop_table('registry_lock_requests')
    with op.batch_alter_table('domains') as batch:
        batch.drop_column('registry_lock_revision')
        batch.drop_column('registry_locked')
    with op.batch_alter_table('users') as batch:
        batch.drop_column('lock_email_sealed')
        batch.drop_column('lock_password_hash')
