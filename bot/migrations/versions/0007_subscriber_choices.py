"""subscribers choose (issue 9): a chat's language, time zone, topics, delivery mode, quiet
hours, silent and preview choices; digests as an outbox of their own; muted stories; "Not
news?" feedback; the outlet of an item and a story, the story a story follows up; reply and
edit bookkeeping on deliveries

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 17:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import bot.storage.models

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_TEXT = sqlmodel.sql.sqltypes.AutoString
_WHEN = bot.storage.models.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "digest",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("period_start", _WHEN(), nullable=False),
        sa.Column("period_end", _WHEN(), nullable=False),
        sa.Column("state", _TEXT(), nullable=False),
        sa.Column("parts_sent", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _WHEN(), nullable=False),
        sa.Column("created_at", _WHEN(), nullable=False),
        sa.Column("sent_at", _WHEN(), nullable=True),
        sa.Column("last_error", _TEXT(), nullable=True),
        sa.Column("lease_owner", _TEXT(), nullable=True),
        sa.Column("lease_until", _WHEN(), nullable=True),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscriber.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subscriber_id", "period_end", name="uq_digest_subscriber_period"),
    )
    op.create_index("ix_digest_state_next", "digest", ["state", "next_attempt_at"])
    op.create_index("ix_digest_subscriber_id", "digest", ["subscriber_id"])
    op.create_table(
        "storymute",
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("story_id", sa.Integer(), nullable=False),
        sa.Column("created_at", _WHEN(), nullable=False),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscriber.id"]),
        sa.ForeignKeyConstraint(["story_id"], ["story.id"]),
        sa.PrimaryKeyConstraint("subscriber_id", "story_id"),
    )
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("story_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=True),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("verdict", _TEXT(), nullable=False),
        sa.Column("created_at", _WHEN(), nullable=False),
        sa.ForeignKeyConstraint(["story_id"], ["story.id"]),
        sa.ForeignKeyConstraint(["item_id"], ["item.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("story_id", "chat_id", name="uq_feedback_story_chat"),
    )
    op.create_index("ix_feedback_story_id", "feedback", ["story_id"])
    with op.batch_alter_table("subscriber") as batch:
        batch.add_column(sa.Column("language", _TEXT(), nullable=False, server_default="en"))
        batch.add_column(
            sa.Column("language_chosen", sa.Boolean(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("timezone", _TEXT(), nullable=False, server_default="UTC"))
        batch.add_column(sa.Column("topics", _TEXT(), nullable=False, server_default=""))
        batch.add_column(
            sa.Column("delivery_mode", _TEXT(), nullable=False, server_default="instant")
        )
        batch.add_column(
            sa.Column("digest_hours", sa.Integer(), nullable=False, server_default="6")
        )
        batch.add_column(sa.Column("digest_at", sa.Integer(), nullable=False, server_default="480"))
        batch.add_column(sa.Column("quiet_from", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("quiet_to", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("silent", sa.Boolean(), nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("link_previews", sa.Boolean(), nullable=False, server_default="1")
        )
        batch.add_column(sa.Column("next_digest_at", _WHEN(), nullable=True))
    with op.batch_alter_table("delivery") as batch:
        batch.add_column(sa.Column("digest_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("reply_to", sa.BigInteger(), nullable=True))
        batch.add_column(
            sa.Column("outlets_shown", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("edits", sa.Integer(), nullable=False, server_default="0"))
        batch.create_foreign_key("fk_delivery_digest", "digest", ["digest_id"], ["id"])
        batch.create_index("ix_delivery_digest_id", ["digest_id"])
    with op.batch_alter_table("item") as batch:
        batch.add_column(sa.Column("outlet", sa.Text(), nullable=False, server_default=""))
    # added in place (no table rebuild on SQLite, where other tables point at story)
    op.add_column("story", sa.Column("outlet", sa.Text(), nullable=False, server_default=""))
    op.add_column("story", sa.Column("follows_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("story") as batch:
        batch.drop_column("follows_id")
        batch.drop_column("outlet")
    with op.batch_alter_table("item") as batch:
        batch.drop_column("outlet")
    with op.batch_alter_table("delivery") as batch:
        batch.drop_index("ix_delivery_digest_id")
        batch.drop_constraint("fk_delivery_digest", type_="foreignkey")
        for name in ("edits", "outlets_shown", "reply_to", "digest_id"):
            batch.drop_column(name)
    with op.batch_alter_table("subscriber") as batch:
        for name in (
            "next_digest_at", "link_previews", "silent", "quiet_to", "quiet_from", "digest_at",
            "digest_hours", "delivery_mode", "topics", "timezone", "language_chosen", "language",
        ):  # fmt: skip
            batch.drop_column(name)
    op.drop_index("ix_feedback_story_id", "feedback")
    op.drop_table("feedback")
    op.drop_table("storymute")
    op.drop_index("ix_digest_subscriber_id", "digest")
    op.drop_index("ix_digest_state_next", "digest")
    op.drop_table("digest")
