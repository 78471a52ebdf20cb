"""what a published zone was made from, as a digest

`published_zones.inputs` digests everything the publication that made it read besides the
RRsets (the zone's row, its keys, its secondaries, the SOA settings): a publication queued
after a restart that finds the same digest and no edit since has nothing to do, and skips
the reading and unsealing (dns/publisher.py).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 10:00:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0018'
down_revision: str | Sequence[str] | None = '0017'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('published_zones', sa.Column('inputs', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('published_zones') as batch:
        batch.drop_column('inputs')
