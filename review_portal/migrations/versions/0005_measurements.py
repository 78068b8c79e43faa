"""measurements on the images, and key images anchored to the image (instance, SOP Instance UID, frame)

Existing key images are anchored from (series_id, slice_index) through the order the viewer stacks a series in
(slice position, then instance number, then SOP Instance UID; every frame of a multi-frame file in turn). A key
image whose index no longer points at a slice keeps an empty anchor.

Revision ID: 0005_measurements
Revises: 0004_instance_geometry (0003_disciplines on its own; chained after viewer-core's 0004 when merged)
"""
import sqlalchemy as sa
from alembic import op

revision = '0005_measurements'
down_revision = '0004_instance_geometry'
branch_labels = None
depends_on = None

MAX_FRAMES = 20000  # a copy of the frame clamp the viewer applies (imaging.limits), not an import


def upgrade():
    op.create_table('measurements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('review_id', sa.Integer(), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=False),
    sa.Column('instance_id', sa.Integer(), nullable=False),
    sa.Column('sop_instance_uid', sa.String(length=64), nullable=False),
    sa.Column('frame', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('points', sa.JSON(), nullable=False),
    sa.Column('label', sa.String(length=300), nullable=False),
    sa.Column('values', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('frozen_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_measurements_author_id_users')),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_measurements_case_id_cases')),
    sa.ForeignKeyConstraint(['instance_id'], ['instances.id'], name=op.f('fk_measurements_instance_id_instances')),
    sa.ForeignKeyConstraint(['review_id'], ['reviews.id'], name=op.f('fk_measurements_review_id_reviews')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_measurements'))
    )
    with op.batch_alter_table('measurements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_measurements_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_measurements_review_id'), ['review_id'], unique=False)

    with op.batch_alter_table('key_images', schema=None) as batch_op:
        batch_op.add_column(sa.Column('instance_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('sop_instance_uid', sa.String(length=64), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('frame', sa.Integer(), nullable=False, server_default='0'))
        batch_op.create_foreign_key(batch_op.f('fk_key_images_instance_id_instances'), 'instances',
                                    ['instance_id'], ['id'])
    anchor_existing_key_images(op.get_bind())
    with op.batch_alter_table('key_images', schema=None) as batch_op:
        batch_op.alter_column('sop_instance_uid', server_default=None)
        batch_op.alter_column('frame', server_default=None)
        batch_op.drop_constraint('uq_key_images_case_id', type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_key_images_case_id'), ['case_id', 'instance_id', 'frame'])


def _sort_key(row) -> tuple:
    # The viewer's stacking order (imaging.inspection.sort_key), copied so this migration keeps its meaning.
    _, uid, number, position, _ = row
    return (0 if position is not None else 1, position if position is not None else 0.0,
            0 if number is not None else 1, number if number is not None else 0, uid)


def anchor_existing_key_images(conn) -> None:
    key_images = conn.execute(sa.text("SELECT id, series_id, slice_index FROM key_images ORDER BY id")).all()
    slices_of: dict[int, list] = {}
    for key_image_id, series_id, slice_index in key_images:
        if series_id not in slices_of:
            rows = conn.execute(sa.text(
                "SELECT id, sop_instance_uid, instance_number, slice_position, frames FROM instances "
                "WHERE series_id = :s"), {"s": series_id}).all()
            slices_of[series_id] = [(row[0], row[1], f) for row in sorted(rows, key=_sort_key)
                                    for f in range(min(max(int(row[4] or 1), 1), MAX_FRAMES))]
        slices = slices_of[series_id]
        if 0 <= slice_index < len(slices):
            instance_id, uid, frame = slices[slice_index]
            conn.execute(sa.text("UPDATE key_images SET instance_id = :i, sop_instance_uid = :u, frame = :f "
                                 "WHERE id = :k"), {"i": instance_id, "u": uid, "f": frame, "k": key_image_id})


def downgrade():
    with op.batch_alter_table('key_images', schema=None) as batch_op:
        batch_op.drop_constraint('uq_key_images_case_id', type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_key_images_case_id'), ['case_id', 'series_id', 'slice_index'])
        batch_op.drop_constraint(batch_op.f('fk_key_images_instance_id_instances'), type_='foreignkey')
        batch_op.drop_column('frame')
        batch_op.drop_column('sop_instance_uid')
        batch_op.drop_column('instance_id')
    with op.batch_alter_table('measurements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_measurements_review_id'))
        batch_op.drop_index(batch_op.f('ix_measurements_case_id'))
    op.drop_table('measurements')
