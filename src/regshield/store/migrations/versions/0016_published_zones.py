"""published zones: the signed zone last served and its IXFR journal, kept across restarts

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 22:00:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0016'
down_revision: str | Sequence[str] | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'published_zones',
        sa.Column('zone_id', Id, nullable=False),
        sa.Column('serial', sa.BigInteger(), nullable=False),
        sa.Column('revision', sa.BigInteger(), nullable=False),
        sa.Column('dnssec', sa.Boolean(), nullable=False),
        sa.Column('denial', sa.String(length=8), nullable=False),
        sa.Column('signing', sa.JSON(), nullable=False),
        sa.Column('rrset_count', sa.BigInteger(), nullable=False),
        sa.Column('record_count', sa.BigInteger(), nullable=False),
        sa.Column('base_serial', sa.BigInteger(), nullable=False),
        sa.Column('base_journal_id', sa.BigInteger(), nullable=False),
        sa.Column('base', sa.LargeBinary(), nullable=False),
        sa.Column('published_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['zone_id'], ['zones.id'],
                                name=op.f('fk_published_zones_zone_id_zones')),
        sa.PrimaryKeyConstraint('zone_id', name=op.f('pk_published_zones')),
    )
    op.create_table(
        'zone_journal',
        sa.Column('id', Id, autoincrement=True, nullable=False),
        sa.Column('zone_id', Id, nullable=False),
        sa.Column('from_serial', sa.BigInteger(), nullable=False),
        sa.Column('to_serial', sa.BigInteger(), nullable=False),
        sa.Column('removed', sa.LargeBinary(), nullable=False),
        sa.Column('added', sa.LargeBinary(), nullable=False),
        sa.Column('published_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['zone_id'], ['zones.id'],
                                name=op.f('fk_zone_journal_zone_id_zones')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_zone_journal')),
    )
    op.create_index('ix_zone_journal_zone', 'zone_journal', ['zone_id', 'id'])


def downgrade() -> None:
    op.drop_index('ix_zone_journal_zone', table_name='zone_journal')
    op.drop_table('zone_journal')
    op.drop_table('published_zones')
