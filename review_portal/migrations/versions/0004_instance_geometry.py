"""instance geometry for the browser viewer: pixel spacing, orientation, position, thickness, rescale, bits;
the frame of reference on the series

Rows ingested before stay NULL (samples_per_pixel NULL means "not read yet") and are filled from the stored
file's header the first time the viewer asks for their series (imaging.services.fill_geometry).

Revision ID: 0004_instance_geometry
Revises: 0003_disciplines
"""
import sqlalchemy as sa
from alembic import op

revision = '0004_instance_geometry'
down_revision = '0003_disciplines'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pixel_spacing', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('spacing_source', sa.String(length=20), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('image_orientation', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('image_position', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('slice_thickness', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('rescale_slope', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('rescale_intercept', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('bits_stored', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('pixel_representation', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('samples_per_pixel', sa.Integer(), nullable=True))
    with op.batch_alter_table('series', schema=None) as batch_op:
        batch_op.add_column(sa.Column('frame_of_reference_uid', sa.String(length=64), nullable=False, server_default=''))


def downgrade():
    with op.batch_alter_table('series', schema=None) as batch_op:
        batch_op.drop_column('frame_of_reference_uid')
    with op.batch_alter_table('instances', schema=None) as batch_op:
        for name in ('samples_per_pixel', 'pixel_representation', 'bits_stored', 'rescale_intercept',
                     'rescale_slope', 'slice_thickness', 'image_position', 'image_orientation',
                     'spacing_source', 'pixel_spacing'):
            batch_op.drop_column(name)
