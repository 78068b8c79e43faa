"""patient identity: the patient a study's header names, and the mismatches with the referral

Studies keep PatientName, PatientID (with its issuer and other IDs), PatientBirthDate and PatientSex as the
file states them; `identity_mismatches` records each field that differs from the referral (or from another
study of the same referral) and its resolution. Studies ingested before this revision have no identity
stored and are not flagged.

Revision ID: 0006_patient_identity
Revises: 0003_disciplines
"""
import sqlalchemy as sa
from alembic import op

from review_portal.db import UTCDateTime

revision = '0006_patient_identity'
down_revision = '0005_measurements'
branch_labels = None
depends_on = None

_STUDY_COLUMNS = (('patient_name', 200), ('patient_id', 64), ('patient_id_issuer', 64), ('patient_birth_date', 16),
                  ('patient_sex', 16), ('other_patient_ids', 500))


def upgrade():
    with op.batch_alter_table('studies', schema=None) as batch_op:
        for name, length in _STUDY_COLUMNS:
            batch_op.add_column(sa.Column(name, sa.String(length=length), nullable=True))
    op.create_table('identity_mismatches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('study_instance_uid', sa.String(length=64), nullable=False),
    sa.Column('study_label', sa.String(length=300), nullable=False),
    sa.Column('field', sa.String(length=24), nullable=False),
    sa.Column('referral_value', sa.String(length=300), nullable=False),
    sa.Column('dicom_value', sa.String(length=300), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('resolved_by_id', sa.Integer(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('resolved_at', UTCDateTime(timezone=True), nullable=True),
    sa.Column('removed', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_identity_mismatches_case_id_cases')),
    sa.ForeignKeyConstraint(['resolved_by_id'], ['users.id'], name=op.f('fk_identity_mismatches_resolved_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_identity_mismatches'))
    )
    with op.batch_alter_table('identity_mismatches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_identity_mismatches_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_identity_mismatches_study_id'), ['study_id'], unique=False)


def downgrade():
    with op.batch_alter_table('identity_mismatches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_identity_mismatches_study_id'))
        batch_op.drop_index(batch_op.f('ix_identity_mismatches_case_id'))
    op.drop_table('identity_mismatches')
    with op.batch_alter_table('studies', schema=None) as batch_op:
        for name, _ in reversed(_STUDY_COLUMNS):
            batch_op.drop_column(name)
