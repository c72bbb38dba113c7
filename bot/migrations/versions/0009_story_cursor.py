"""the console reads the alerted stories through a cursor, not as a pseudo-subscriber

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 21:00:00.000000

The console pseudo-subscriber (chat_type 'console', chat id 0) and its delivery rows are
deleted: the console has no chat, it shows each alerted story once by moving its cursor
(bot/storage/cursors.py). Nothing else refers to it (the console had no mutes, digests or
chat settings). A console run after this upgrade starts its cursor afresh, at the newest
story, as a first console run always did.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import bot.storage.models

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_ROWS_OF_CONSOLE = (
    "DELETE FROM delivery WHERE subscriber_id IN (SELECT id FROM subscriber"
    " WHERE chat_type = 'console')",
    "DELETE FROM storymute WHERE subscriber_id IN (SELECT id FROM subscriber"
    " WHERE chat_type = 'console')",
    "DELETE FROM digest WHERE subscriber_id IN (SELECT id FROM subscriber"
    " WHERE chat_type = 'console')",
)


def upgrade() -> None:
    op.create_table(
        "story_cursor",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", bot.storage.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    for statement in _ROWS_OF_CONSOLE:
        op.execute(statement)
    op.execute("DELETE FROM subscriber WHERE chat_type = 'console'")


def downgrade() -> None:
    op.drop_table("story_cursor")  # a console run of the older code subscribes its chat again
