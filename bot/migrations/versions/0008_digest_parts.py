"""a digest keeps its parts as first rendered, so a retry after a crash resumes the same text

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 18:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("digest", sa.Column("parts", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("digest") as batch:
        batch.drop_column("parts")
