"""domains and their registry operations

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 22:10:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        'domains',
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('name', sa.String(length=253), nullable=False),
        sa.Column('unicode_name', sa.String(length=253), nullable=False),
        sa.Column('account_id', ID, nullable=False),
        sa.Column('registry_link', sa.String(length=64), nullable=False),
        sa.Column('state', sa.String(length=32), nullable=False),
        sa.Column('roid', sa.String(length=89), nullable=True),
        sa.Column('registrant_id', ID, nullable=True),
        sa.Column('tech_id', ID, nullable=True),
        sa.Column('nameservers', sa.JSON(), nullable=False),
        sa.Column('ds', sa.JSON(), nullable=False),
        sa.Column('holds', sa.JSON(), nullable=False),
        sa.Column('registry_statuses', sa.JSON(), nullable=False),
        sa.Column('expires_at', TIMESTAMP, nullable=True),
        sa.Column('transfer_code_hash', sa.String(length=128), nullable=True),
        sa.Column('transfer_code_expires_at', TIMESTAMP, nullable=True),
        sa.Column('created_at', TIMESTAMP, nullable=False),
        sa.Column('updated_at', TIMESTAMP, nullable=False),
        sa.Column('synced_at', TIMESTAMP, nullable=True),
        sa.Column('ended_at', TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'],
                                name=op.f('fk_domains_account_id_accounts')),
        sa.ForeignKeyConstraint(['registrant_id'], ['contacts.id'],
                                name=op.f('fk_domains_registrant_id_contacts')),
        sa.ForeignKeyConstraint(['tech_id'], ['contacts.id'],
                                name=op.f('fk_domains_tech_id_contacts')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_domains')),
    )
    op.create_index(op.f('ix_domains_name'), 'domains', ['name'])
    op.create_index(op.f('ix_domains_account_id'), 'domains', ['account_id'])
    op.create_index('uq_domains_live_name', 'domains', ['name'], unique=True,
                    sqlite_where=sa.text('ended_at IS NULL'),
                    postgresql_where=sa.text('ended_at IS NULL'))
    op.create_table(
        'domain_operations',
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('public_id', sa.String(length=32), nullable=False),
        sa.Column('domain_id', ID, nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('request', sa.JSON(), nullable=False),
        sa.Column('result', sa.JSON(), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('lease_until', TIMESTAMP, nullable=True),
        sa.Column('cl_trid', sa.String(length=64), nullable=True),
        sa.Column('sv_trid', sa.String(length=64), nullable=True),
        sa.Column('actor', sa.String(length=96), nullable=False),
        sa.Column('request_id', sa.String(length=64), nullable=True),
        sa.Column('created_at', TIMESTAMP, nullable=False),
        sa.Column('completed_at', TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(['domain_id'], ['domains.id'],
                                name=op.f('fk_domain_operations_domain_id_domains')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_domain_operations')),
        sa.UniqueConstraint('public_id', name=op.f('uq_domain_operations_public_id')),
    )
    op.create_index(op.f('ix_domain_operations_domain_id'), 'domain_operations', ['domain_id'])
    op.create_index('ix_domain_operations_open', 'domain_operations', ['domain_id', 'state'])


def downgrade() -> None:
    op.drop_table('domain_operations')
    op.drop_index('uq_domains_live_name', table_name='domains')
    op.drop_table('domains')
