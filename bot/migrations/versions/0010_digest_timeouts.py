"""a digest counts the sends of its next part Telegram did not answer, as a delivery does

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 21:45:00.000000

A part sent without an answer may have been delivered: it is sent again once at most
(bot/delivery/digest.py), and the count must survive a restart. Digests already stored
start at 0.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("digest", sa.Column("timeouts", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("digest") as batch:
        batch.drop_column("timeouts")
