"""hosted zones, their RRsets and keys, TSIG keys and secondaries

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 10:00:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | Sequence[str] | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'zones',
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('name', sa.String(length=253), nullable=False),
        sa.Column('account_id', ID, nullable=False),
        sa.Column('dnssec', sa.Boolean(), nullable=False),
        sa.Column('denial', sa.String(length=8), nullable=False),
        sa.Column('policy', sa.String(length=64), nullable=False),
        sa.Column('serial', sa.BigInteger(), nullable=False),
        sa.Column('serial_scheme', sa.String(length=16), nullable=False),
        sa.Column('key_plan', sa.JSON(), nullable=False),
        sa.Column('revision', sa.BigInteger(), nullable=False),
        sa.Column('keys_due_at', TIMESTAMP, nullable=True),
        sa.Column('parent_checked_at', TIMESTAMP, nullable=True),
        sa.Column('created_at', TIMESTAMP, nullable=False),
        sa.Column('updated_at', TIMESTAMP, nullable=False),
        sa.Column('deleted_at', TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'],
                                name=op.f('fk_zones_account_id_accounts')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_zones')),
    )
    op.create_index(op.f('ix_zones_name'), 'zones', ['name'])
    op.create_index(op.f('ix_zones_account_id'), 'zones', ['account_id'])
    op.create_index(op.f('ix_zones_keys_due_at'), 'zones', ['keys_due_at'])
    op.create_index('uq_zones_live_name', 'zones', ['name'], unique=True,
                    sqlite_where=sa.text('deleted_at IS NULL'),
                    postgresql_where=sa.text('deleted_at IS NULL'))
    op.create_table(
        'zone_rrsets',
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('zone_id', ID, nullable=False),
        sa.Column('owner', sa.String(length=255), nullable=False),
        sa.Column('rtype', sa.String(length=16), nullable=False),
        sa.Column('ttl', sa.Integer(), nullable=False),
        sa.Column('records', sa.JSON(), nullable=False),
        sa.Column('revision', sa.BigInteger(), nullable=False),
        sa.Column('updated_at', TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(['zone_id'], ['zones.id'],
                                name=op.f('fk_zone_rrsets_zone_id_zones')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_zone_rrsets')),
    )
    op.create_index('uq_zone_rrsets_owner_type', 'zone_rrsets', ['zone_id', 'owner', 'rtype'],
                    unique=True)
    op.create_index('ix_zone_rrsets_revision', 'zone_rrsets', ['zone_id', 'revision'])
    op.create_table(
        'zone_keys',
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('public_id', sa.String(length=32), nullable=False),
        sa.Column('zone_id', ID, nullable=False),
        sa.Column('role', sa.String(length=8), nullable=False),
        sa.Column('algorithm', sa.Integer(), nullable=False),
        sa.Column('key_tag', sa.Integer(), nullable=False),
        sa.Column('dnskey', sa.Text(), nullable=False),
        sa.Column('data_key_id', ID, nullable=True),
        sa.Column('private_sealed', sa.LargeBinary(), nullable=True),
        sa.Column('hsm_label', sa.String(length=64), nullable=True),
        sa.Column('timers', sa.JSON(), nullable=False),
        sa.Column('created_at', TIMESTAMP, nullable=False),
        sa.Column('removed_at', TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(['zone_id'], ['zones.id'],
                                name=op.f('fk_zone_keys_zone_id_zones')),
        sa.ForeignKeyConstraint(['data_key_id'], ['data_keys.id'],
                                name=op.f('fk_zone_keys_data_key_id_data_keys')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_zone_keys')),
        sa.UniqueConstraint('public_id', name=op.f('uq_zone_keys_public_id')),
    )
    op.create_index(op.f('ix_zone_keys_zone_id'), 'zone_keys', ['zone_id'])
    op.create_table(
        'tsig_keys',
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('algorithm', sa.String(length=32), nullable=False),
        sa.Column('data_key_id', ID, nullable=False),
        sa.Column('secret_sealed', sa.LargeBinary(), nullable=False),
        sa.Column('created_at', TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(['data_key_id'], ['data_keys.id'],
                                name=op.f('fk_tsig_keys_data_key_id_data_keys')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_tsig_keys')),
        sa.UniqueConstraint('name', name=op.f('uq_tsig_keys_name')),
    )
    op.create_table(
        'secondaries',
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('zone_id', ID, nullable=False),
        sa.Column('address', sa.String(length=64), nullable=False),
        sa.Column('port', sa.Integer(), nullable=False),
        sa.Column('tsig_key_id', ID, nullable=False),
        sa.Column('served_serial', sa.BigInteger(), nullable=True),
        sa.Column('served_checked_at', TIMESTAMP, nullable=True),
        sa.Column('last_transfer_at', TIMESTAMP, nullable=True),
        sa.Column('last_transfer_kind', sa.String(length=8), nullable=True),
        sa.Column('last_transfer_serial', sa.BigInteger(), nullable=True),
        sa.Column('last_notify_at', TIMESTAMP, nullable=True),
        sa.Column('last_notify_result', sa.String(length=16), nullable=True),
        sa.Column('created_at', TIMESTAMP, nullable=False),
        sa.Column('deleted_at', TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(['zone_id'], ['zones.id'],
                                name=op.f('fk_secondaries_zone_id_zones')),
        sa.ForeignKeyConstraint(['tsig_key_id'], ['tsig_keys.id'],
                                name=op.f('fk_secondaries_tsig_key_id_tsig_keys')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_secondaries')),
    )
    op.create_index(op.f('ix_secondaries_zone_id'), 'secondaries', ['zone_id'])
    op.create_index('uq_secondaries_zone_address', 'secondaries', ['zone_id', 'address', 'port'],
                    unique=True, sqlite_where=sa.text('deleted_at IS NULL'),
                    postgresql_where=sa.text('deleted_at IS NULL'))


def downgrade() -> None:
    op.drop_table('secondaries')
    op.drop_table('tsig_keys')
    op.drop_table('zone_keys')
    op.drop_table('zone_rrsets')
    op.drop_table('zones')
