"""request cost: rate-limit counters shared by every worker and host (review_portal.ratelimit)

Revision ID: 0009_request_cost
Revises: 0003_disciplines
"""
import sqlalchemy as sa
from alembic import op

import review_portal.db

revision = '0009_request_cost'
down_revision = '0008_patient_summary'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('rate_limit_hits',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('scope', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('window_start', sa.BigInteger(), nullable=False),
    sa.Column('hits', sa.Integer(), nullable=False),
    sa.Column('updated_at', review_portal.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rate_limit_hits')),
    sa.UniqueConstraint('scope', 'key', 'window_start', name=op.f('uq_rate_limit_hits_scope'))
    )


def downgrade():
    op.drop_table('rate_limit_hits')
