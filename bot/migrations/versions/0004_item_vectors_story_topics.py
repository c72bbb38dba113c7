"""item vectors (meaning, float16) and story topics

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 16:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("item") as batch:
        batch.add_column(sa.Column("vector", sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("story") as batch:
        batch.add_column(sa.Column("topics", sa.Text(), server_default="", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("story") as batch:
        batch.drop_column("topics")
    with op.batch_alter_table("item") as batch:
        batch.drop_column("vector")
