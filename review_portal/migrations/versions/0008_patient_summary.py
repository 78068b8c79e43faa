"""patient summary: the patient's own questions on a referral, and the signed summary for the patient

Revision ID: 0008_patient_summary
Revises: 0003_disciplines
"""
import sqlalchemy as sa
from alembic import op

from review_portal.db import UTCDateTime

revision = '0008_patient_summary'
down_revision = '0007_sections'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('patient_questions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_patient_questions_case_id_cases')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patient_questions')),
    sa.UniqueConstraint('case_id', 'position', name=op.f('uq_patient_questions_case_id'))
    )
    op.create_index(op.f('ix_patient_questions_case_id'), 'patient_questions', ['case_id'], unique=False)
    op.create_table('patient_summaries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('opinion_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=False),
    sa.Column('what_reviewed', sa.Text(), nullable=False),
    sa.Column('conclusion', sa.Text(), nullable=False),
    sa.Column('treatment', sa.Text(), nullable=False),
    sa.Column('answers', sa.JSON(), nullable=False),
    sa.Column('key_images', sa.JSON(), nullable=False),
    sa.Column('grade', sa.Float(), nullable=True),
    sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('signed_at', UTCDateTime(timezone=True), nullable=True),
    sa.Column('signed_by_id', sa.Integer(), nullable=True),
    sa.Column('content_sha256', sa.String(length=64), nullable=True),
    sa.Column('blob_key', sa.String(length=64), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('letter_id', sa.Integer(), nullable=True),
    sa.Column('first_downloaded_at', UTCDateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_at', UTCDateTime(timezone=True), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_patient_summaries_author_id_users')),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_patient_summaries_case_id_cases')),
    sa.ForeignKeyConstraint(['letter_id'], ['letters.id'], name=op.f('fk_patient_summaries_letter_id_letters')),
    sa.ForeignKeyConstraint(['opinion_id'], ['opinions.id'], name=op.f('fk_patient_summaries_opinion_id_opinions')),
    sa.ForeignKeyConstraint(['signed_by_id'], ['users.id'], name=op.f('fk_patient_summaries_signed_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patient_summaries')),
    sa.UniqueConstraint('case_id', 'number', name=op.f('uq_patient_summaries_case_id'))
    )
    op.create_index(op.f('ix_patient_summaries_case_id'), 'patient_summaries', ['case_id'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_patient_summaries_case_id'), table_name='patient_summaries')
    op.drop_table('patient_summaries')
    op.drop_index(op.f('ix_patient_questions_case_id'), table_name='patient_questions')
    op.drop_table('patient_questions')
