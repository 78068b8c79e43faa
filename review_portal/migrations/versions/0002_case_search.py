"""case search: indexes for the case lists' search and sort

Plain B-tree indexes on the columns the lists filter and sort by (priority, patient name, MRN, submitted and due
dates); the reference is already unique (indexed) and the status already indexed. An exact or prefix match and
every sort order can use them on SQLite and PostgreSQL; a substring search (ILIKE '%term%') still scans the
user's rows, which the role scope (own referrals, own worklist) keeps small for everyone but the coordinators.

Revision ID: 0002_case_search
Revises: 0001
Create Date: 2026-12-02 12:00:00
"""
from alembic import op

revision = '0002_case_search'
down_revision = '0001'
branch_labels = None
depends_on = None

_INDEXES = ['priority', 'patient_name', 'patient_mrn', 'submitted_at', 'due_at']


def upgrade():
    with op.batch_alter_table('cases', schema=None) as batch_op:
        for column in _INDEXES:
            batch_op.create_index(batch_op.f(f'ix_cases_{column}'), [column], unique=False)


def downgrade():
    with op.batch_alter_table('cases', schema=None) as batch_op:
        for column in reversed(_INDEXES):
            batch_op.drop_index(batch_op.f(f'ix_cases_{column}'))
