"""sections: a multidisciplinary opinion signed section by section (sections, section addenda, the
contributors' positions on the consensus, the chair)

Existing data moves: every contributing review's free-text findings become that review's section, status
"recorded" (kept, counted as done, but never signed with re-authentication: the letter says so), in the
discipline's main free-text field (radiology findings, pathology review of the reports, oncology rationale),
authored by the reviewer who held the review.

Revision ID: 0007_sections
Revises: 0003_disciplines
"""
import sqlalchemy as sa
from alembic import op

import review_portal.db

revision = '0007_sections'
down_revision = '0006_patient_identity'
branch_labels = None
depends_on = None

# Copies, not imports: a migration must keep meaning what it meant when it was written.
LEGACY_FIELD = {"radiology": "findings", "pathology": "report_review", "oncology": "rationale"}
REVIEW_TYPE_KIND = {"radiology_read": "radiology", "pathology_review": "pathology"}


def _when(name, nullable=True):
    return sa.Column(name, review_portal.db.UTCDateTime(timezone=True), nullable=nullable)


def upgrade():
    op.create_table('opinion_sections',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('review_id', sa.Integer(), nullable=False),
    sa.Column('discipline', sa.String(length=32), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('content', sa.JSON(), nullable=False),
    _when('created_at', False),
    _when('updated_at', False),
    _when('signed_at'),
    sa.Column('content_sha256', sa.String(length=64), nullable=True),
    sa.Column('waived_by_id', sa.Integer(), nullable=True),
    _when('waived_at'),
    sa.Column('waiver_reason', sa.String(length=500), nullable=False),
    sa.Column('from_free_text', sa.Boolean(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_opinion_sections_author_id_users')),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_opinion_sections_case_id_cases')),
    sa.ForeignKeyConstraint(['discipline'], ['disciplines.key'], name=op.f('fk_opinion_sections_discipline_disciplines')),
    sa.ForeignKeyConstraint(['review_id'], ['reviews.id'], name=op.f('fk_opinion_sections_review_id_reviews')),
    sa.ForeignKeyConstraint(['waived_by_id'], ['users.id'], name=op.f('fk_opinion_sections_waived_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_opinion_sections')),
    sa.UniqueConstraint('review_id', name=op.f('uq_opinion_sections_review_id'))
    )
    with op.batch_alter_table('opinion_sections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_opinion_sections_case_id'), ['case_id'], unique=False)

    op.create_table('section_addenda',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('section_id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('signed_by_id', sa.Integer(), nullable=False),
    _when('signed_at', False),
    sa.Column('content_sha256', sa.String(length=64), nullable=False),
    sa.Column('after_consensus', sa.Boolean(), nullable=False),
    _when('consensus_answered_at'),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_section_addenda_case_id_cases')),
    sa.ForeignKeyConstraint(['section_id'], ['opinion_sections.id'], name=op.f('fk_section_addenda_section_id_opinion_sections')),
    sa.ForeignKeyConstraint(['signed_by_id'], ['users.id'], name=op.f('fk_section_addenda_signed_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_section_addenda'))
    )
    with op.batch_alter_table('section_addenda', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_section_addenda_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_section_addenda_section_id'), ['section_id'], unique=False)

    op.create_table('consensus_positions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('section_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.String(length=12), nullable=False),
    sa.Column('dissent_text', sa.Text(), nullable=False),
    sa.Column('dissent_source', sa.String(length=12), nullable=False),
    sa.Column('recorded_by_id', sa.Integer(), nullable=False),
    _when('recorded_at', False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_consensus_positions_case_id_cases')),
    sa.ForeignKeyConstraint(['recorded_by_id'], ['users.id'], name=op.f('fk_consensus_positions_recorded_by_id_users')),
    sa.ForeignKeyConstraint(['section_id'], ['opinion_sections.id'], name=op.f('fk_consensus_positions_section_id_opinion_sections')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consensus_positions')),
    sa.UniqueConstraint('section_id', name=op.f('uq_consensus_positions_section_id'))
    )
    with op.batch_alter_table('consensus_positions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consensus_positions_case_id'), ['case_id'], unique=False)

    op.create_table('board_chairs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('chair_id', sa.Integer(), nullable=False),
    sa.Column('named_by_id', sa.Integer(), nullable=False),
    _when('named_at', False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_board_chairs_case_id_cases')),
    sa.ForeignKeyConstraint(['chair_id'], ['users.id'], name=op.f('fk_board_chairs_chair_id_users')),
    sa.ForeignKeyConstraint(['named_by_id'], ['users.id'], name=op.f('fk_board_chairs_named_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_board_chairs')),
    sa.UniqueConstraint('case_id', name=op.f('uq_board_chairs_case_id'))
    )
    move_existing_findings(op.get_bind())


def move_existing_findings(conn) -> None:
    """Each contributing review's free-text findings become its section (recorded, not signed)."""
    sections = sa.table('opinion_sections', sa.column('case_id', sa.Integer), sa.column('review_id', sa.Integer),
                        sa.column('discipline', sa.String), sa.column('kind', sa.String),
                        sa.column('author_id', sa.Integer), sa.column('status', sa.String),
                        sa.column('content', sa.JSON), sa.column('created_at', review_portal.db.UTCDateTime(timezone=True)),
                        sa.column('updated_at', review_portal.db.UTCDateTime(timezone=True)),
                        sa.column('waiver_reason', sa.String), sa.column('from_free_text', sa.Boolean),
                        sa.column('version', sa.Integer))
    specialty = dict(conn.execute(sa.text("SELECT key, specialty FROM disciplines")).all())
    holder = {}
    for review_id, reviewer_id in conn.execute(sa.text(
            "SELECT review_id, reviewer_id FROM assignments WHERE status IN ('accepted', 'completed') "
            "ORDER BY review_id, id")):
        holder[review_id] = reviewer_id  # the latest reviewer who took the review on
    rows = []
    when_type = review_portal.db.UTCDateTime(timezone=True)
    reviews = sa.table('reviews', sa.column('id', sa.Integer), sa.column('case_id', sa.Integer),
                       sa.column('review_type', sa.String), sa.column('discipline', sa.String),
                       sa.column('findings', sa.Text), sa.column('created_at', when_type),
                       sa.column('completed_at', when_type), sa.column('is_lead', sa.Boolean))
    c = reviews.c
    for review_id, case_id, review_type, discipline, findings, created_at, completed_at in conn.execute(
            sa.select(c.id, c.case_id, c.review_type, c.discipline, c.findings, c.created_at, c.completed_at)
            .where(c.is_lead.is_(False)).order_by(c.id)):
        if not (findings or "").strip():
            continue
        spec = specialty.get(discipline)
        if spec in ("radiology", "pathology"):
            kind = spec
        elif spec:
            kind = "oncology"
        else:
            kind = REVIEW_TYPE_KIND.get(review_type, "oncology")
        when = completed_at or created_at
        rows.append({"case_id": case_id, "review_id": review_id, "discipline": discipline, "kind": kind,
                     "author_id": holder.get(review_id), "status": "recorded",
                     "content": {LEGACY_FIELD[kind]: findings.strip()}, "created_at": when, "updated_at": when,
                     "waiver_reason": "", "from_free_text": True, "version": 1})
    if rows:
        conn.execute(sections.insert(), rows)


def downgrade():
    op.drop_table('board_chairs')
    with op.batch_alter_table('consensus_positions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consensus_positions_case_id'))
    op.drop_table('consensus_positions')
    with op.batch_alter_table('section_addenda', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_section_addenda_section_id'))
        batch_op.drop_index(batch_op.f('ix_section_addenda_case_id'))
    op.drop_table('section_addenda')
    with op.batch_alter_table('opinion_sections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_opinion_sections_case_id'))
    op.drop_table('opinion_sections')
