"""hosted zones: who controls them (state, proof-of-control challenge) and the DS regshield
put at the parent

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 03:00:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | Sequence[str] | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('zones') as batch:
        # Zones hosted before this revision were served: they stay active.
        batch.add_column(sa.Column('state', sa.String(16), nullable=False,
                                   server_default='active'))
        batch.add_column(sa.Column('verified_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('suspended_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('ds_owned', sa.JSON(), nullable=False,
                                   server_default=sa.text("'[]'")))
        batch.add_column(sa.Column('ds_held', sa.JSON(), nullable=False,
                                   server_default=sa.text("'[]'")))


def downgrade() -> None:
    with op.batch_alter_table('zones') as batch:
        for column in ('ds_held', 'ds_owned', 'suspended_at', 'verified_at', 'state'):
            batch.drop_column(column)
