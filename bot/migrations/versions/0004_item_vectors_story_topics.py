"""item vectors (meaning, float16) and story topics; the itemkey index table goes (the
decision core keeps its story index in memory)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 16:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.storage.models

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("item") as batch:
        batch.add_column(sa.Column("vector", sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("story") as batch:
        batch.add_column(sa.Column("topics", sa.Text(), server_default="", nullable=False))
    op.drop_index("ix_itemkey_key_published", table_name="itemkey")
    op.drop_table("itemkey")


def downgrade() -> None:
    op.create_table(
        "itemkey",
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("story_id", sa.Integer(), nullable=False),
        sa.Column("published", bot.storage.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["item.id"]),
        sa.ForeignKeyConstraint(["story_id"], ["story.id"]),
        sa.PrimaryKeyConstraint("key", "item_id"),
    )
    op.create_index("ix_itemkey_key_published", "itemkey", ["key", "published"])
    with op.batch_alter_table("story") as batch:
        batch.drop_column("topics")
    with op.batch_alter_table("item") as batch:
        batch.drop_column("vector")
