"""patient summary: the patient's own questions on a referral, and the signed summary for the patient

Revision ID: 0008_patient_summary
Revises: 0003_disciplines
"""
import sqlalchemy as sa
from alembic import op

revision = '0008_patient_summary'
down_revision = '0003_disciplines'
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


def downgrade():
    op.drop_index(op.f('ix_patient_questions_case_id'), table_name='patient_questions')
    op.drop_table('patient_questions')
