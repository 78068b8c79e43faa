"""deferred pixel check: when an instance's frames passed their decode check, and its uncompressed copy

Instances already on file keep NULL in both: they were test-decoded (first frame) at upload, and the viewer keeps
rendering them through the sandbox the first time each frame is shown, as before.

Revision ID: 0010_deferred_pixel_check
Revises: 0003_disciplines
"""
import sqlalchemy as sa
from alembic import op

revision = '0010_deferred_pixel_check'
down_revision = '0009_request_cost'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("instances") as batch:
        batch.add_column(sa.Column("pixels_checked_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("decoded_key", sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("decoded_key")
        batch.drop_column("pixels_checked_at")
