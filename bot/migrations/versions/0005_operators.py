"""operators (issue 10): where each feed comes from (config, chat, cli) and who added it

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 16:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.storage.models

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("feed") as batch:
        batch.add_column(sa.Column("source", sa.Text(), server_default="config", nullable=False))
        batch.add_column(sa.Column("added_by", sa.Text(), nullable=True))
        batch.add_column(sa.Column("added_at", bot.storage.models.UTCDateTime(), nullable=True))
        # the poll schedule (bot/feeds/schedule.py)
        batch.add_column(sa.Column("entry_gap_seconds", sa.Float(), nullable=True))
        batch.add_column(
            sa.Column("newest_entry_at", bot.storage.models.UTCDateTime(), nullable=True)
        )
        batch.add_column(
            sa.Column("first_polled_at", bot.storage.models.UTCDateTime(), nullable=True)
        )
        batch.add_column(sa.Column("ttl_seconds", sa.Float(), nullable=True))
        batch.add_column(sa.Column("update_period_seconds", sa.Float(), nullable=True))
        batch.add_column(sa.Column("poll_seconds", sa.Float(), nullable=True))
        batch.add_column(sa.Column("poll_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("feed") as batch:
        for column in (
            "poll_reason",
            "poll_seconds",
            "update_period_seconds",
            "ttl_seconds",
            "first_polled_at",
            "newest_entry_at",
            "entry_gap_seconds",
        ):
            batch.drop_column(column)
        batch.drop_column("added_at")
        batch.drop_column("added_by")
        batch.drop_column("source")
