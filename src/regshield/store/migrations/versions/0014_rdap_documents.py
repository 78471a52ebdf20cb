"""anonymous RDAP domain documents, rendered when their domain changes

`rdap_documents` holds each sponsored domain's anonymous RDAP answer as served (JSON bytes, with
its ETag), keyed by name. `rdap_generation` is one counter that every transaction changing
what a document shows advances; `rdap_changes` says which domain or contact each generation
touched (neither set: everything), so that a process's memory copy drops only what changed.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 06:00:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0014'
down_revision: str | Sequence[str] | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        'rdap_documents',
        sa.Column('name', sa.String(253), nullable=False),
        sa.Column('domain_id', ID, nullable=False),
        sa.Column('registrant_id', ID, nullable=True),
        sa.Column('tech_id', ID, nullable=True),
        sa.Column('site', sa.String(64), nullable=False),
        sa.Column('etag', sa.String(64), nullable=False),
        sa.Column('body', sa.LargeBinary(), nullable=False),
        sa.Column('rendered_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_rdap_documents')),
    )
    op.create_index(op.f('ix_rdap_documents_domain_id'), 'rdap_documents', ['domain_id'])
    op.create_index(op.f('ix_rdap_documents_registrant_id'), 'rdap_documents',
                    ['registrant_id'])
    op.create_index(op.f('ix_rdap_documents_tech_id'), 'rdap_documents', ['tech_id'])
    op.create_table(
        'rdap_generation',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('generation', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_rdap_generation')),
    )
    op.execute("INSERT INTO rdap_generation (id, generation) VALUES (1, 0)")
    op.create_table(
        'rdap_changes',
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('generation', sa.BigInteger(), nullable=False),
        sa.Column('domain_id', ID, nullable=True),
        sa.Column('contact_id', ID, nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_rdap_changes')),
    )
    op.create_index(op.f('ix_rdap_changes_generation'), 'rdap_changes', ['generation'])


def downgrade() -> None:
    op.drop_index(op.f('ix_rdap_changes_generation'), table_name='rdap_changes')
    op.drop_table('rdap_changes')
    op.drop_table('rdap_generation')
    op.drop_index(op.f('ix_rdap_documents_tech_id'), table_name='rdap_documents')
    op.drop_index(op.f('ix_rdap_documents_registrant_id'), table_name='rdap_documents')
    op.drop_index(op.f('ix_rdap_documents_domain_id'), table_name='rdap_documents')
    op.drop_table('rdap_documents')
