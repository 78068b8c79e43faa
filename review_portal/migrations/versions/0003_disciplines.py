"""disciplines: the table (seeded), and a discipline on every case and review

Existing data moves: an "oncology_opinion" review gets the oncology discipline of the reviewer holding it
(the active assignment, else the latest one), medical oncology when there is none or they are not an
oncologist; "radiology_read" becomes radiology, "pathology_review" pathology. A case gets its lead
review's discipline (or, without reviews, the same rule by its review type).

Revision ID: 0003_disciplines
Revises: 0002_case_search
"""
import sqlalchemy as sa
from alembic import op

revision = '0003_disciplines'
down_revision = '0002_case_search'
branch_labels = None
depends_on = None

# A copy, not an import: a migration must keep meaning what it meant when it was written.
SEED = (
    ("medical_oncology", "Medical oncology", "medical_oncology"),
    ("radiation_oncology", "Radiation oncology", "radiation_oncology"),
    ("surgical_oncology", "Surgical oncology", "surgical_oncology"),
    ("radiology", "Radiology", "radiology"),
    ("pathology", "Pathology", "pathology"),
)
ONCOLOGY = {"medical_oncology", "radiation_oncology", "surgical_oncology"}
BY_REVIEW_TYPE = {"radiology_read": "radiology", "pathology_review": "pathology", "oncology_opinion": "medical_oncology"}


def upgrade():
    disciplines = op.create_table('disciplines',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=32), nullable=False),
    sa.Column('label', sa.String(length=100), nullable=False),
    sa.Column('specialty', sa.String(length=40), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_disciplines')),
    sa.UniqueConstraint('key', name=op.f('uq_disciplines_key'))
    )
    op.bulk_insert(disciplines, [{"key": k, "label": label, "specialty": s, "active": True} for k, label, s in SEED])
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('discipline', sa.String(length=32), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_cases_discipline_disciplines'), 'disciplines', ['discipline'], ['key'])
    with op.batch_alter_table('reviews', schema=None) as batch_op:
        batch_op.add_column(sa.Column('discipline', sa.String(length=32), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_reviews_discipline_disciplines'), 'disciplines', ['discipline'], ['key'])
    move_existing_data(op.get_bind())


def move_existing_data(conn) -> None:
    reviews = conn.execute(sa.text("SELECT id, case_id, review_type, is_lead FROM reviews ORDER BY id")).all()
    # The reviewer holding each review: the active assignment, else the latest one.
    holder = {}
    for review_id, specialty in conn.execute(sa.text(
            "SELECT a.review_id, u.specialty FROM assignments a JOIN users u ON u.id = a.reviewer_id "
            "ORDER BY a.review_id, a.active, a.id")):
        holder[review_id] = specialty  # the last row per review wins: active ones sort after inactive
    lead_of_case = {}
    for review_id, case_id, review_type, is_lead in reviews:
        discipline = BY_REVIEW_TYPE.get(review_type)
        if review_type == "oncology_opinion" and holder.get(review_id) in ONCOLOGY:
            discipline = holder[review_id]
        if discipline is None:
            continue
        conn.execute(sa.text("UPDATE reviews SET discipline = :d WHERE id = :id"), {"d": discipline, "id": review_id})
        if is_lead:
            lead_of_case.setdefault(case_id, discipline)
    for case_id, review_type in conn.execute(sa.text("SELECT id, review_type FROM cases ORDER BY id")).all():
        discipline = lead_of_case.get(case_id) or BY_REVIEW_TYPE.get(review_type)
        if discipline is not None:
            conn.execute(sa.text("UPDATE cases SET discipline = :d WHERE id = :id"), {"d": discipline, "id": case_id})


def downgrade():
    with op.batch_alter_table('reviews', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_reviews_discipline_disciplines'), type_='foreignkey')
        batch_op.drop_column('discipline')
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_cases_discipline_disciplines'), type_='foreignkey')
        batch_op.drop_column('discipline')
    op.drop_table('disciplines')
