"""the WHOIS Accuracy Program: contact verifications and their emailed links

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 03:30:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | Sequence[str] | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'contact_verifications',
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('public_id', sa.String(length=32), nullable=False),
        sa.Column('contact_id', ID, nullable=False),
        sa.Column('account_id', ID, nullable=False),
        sa.Column('fingerprint', sa.String(length=64), nullable=False),
        sa.Column('cause', sa.String(length=32), nullable=False),
        sa.Column('domain', sa.String(length=253), nullable=True),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('started_at', TIMESTAMP, nullable=False),
        sa.Column('reminders_sent', sa.Integer(), nullable=False),
        sa.Column('verified_at', TIMESTAMP, nullable=True),
        sa.Column('suspended_at', TIMESTAMP, nullable=True),
        sa.Column('ended_at', TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'],
                                name=op.f('fk_contact_verifications_contact_id_contacts')),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'],
                                name=op.f('fk_contact_verifications_account_id_accounts')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_contact_verifications')),
        sa.UniqueConstraint('public_id', name=op.f('uq_contact_verifications_public_id')),
    )
    op.create_index(op.f('ix_contact_verifications_contact_id'), 'contact_verifications',
                    ['contact_id'])
    op.create_index(op.f('ix_contact_verifications_account_id'), 'contact_verifications',
                    ['account_id'])
    op.create_index(op.f('ix_contact_verifications_fingerprint'), 'contact_verifications',
                    ['fingerprint'])
    op.create_index('ix_contact_verifications_open', 'contact_verifications',
                    ['state', 'started_at'])
    op.create_table(
        'verification_tokens',
        sa.Column('id', ID, autoincrement=True, nullable=False),
        sa.Column('verification_id', ID, nullable=False),
        sa.Column('mail', sa.String(length=16), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', TIMESTAMP, nullable=False),
        sa.Column('expires_at', TIMESTAMP, nullable=False),
        sa.Column('used_at', TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ['verification_id'], ['contact_verifications.id'],
            name=op.f('fk_verification_tokens_verification_id_contact_verifications')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_verification_tokens')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_verification_tokens_token_hash')),
    )
    op.create_index('uq_verification_tokens_mail', 'verification_tokens',
                    ['verification_id', 'mail'], unique=True)


def downgrade() -> None:
    op.drop_index('uq_verification_tokens_mail', table_name='verification_tokens')
    op.drop_table('verification_tokens')
    op.drop_index('ix_contact_verifications_open', table_name='contact_verifications')
    op.drop_index(op.f('ix_contact_verifications_fingerprint'),
                  table_name='contact_verifications')
    op.drop_index(op.f('ix_contact_verifications_account_id'),
                  table_name='contact_verifications')
    op.drop_index(op.f('ix_contact_verifications_contact_id'),
                  table_name='contact_verifications')
    op.drop_table('contact_verifications')
