"""send timeouts on deliveries; heartbeat and problem on leases

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 15:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import bot.storage.models

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("delivery") as batch:
        batch.add_column(sa.Column("timeouts", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("lease") as batch:
        batch.add_column(sa.Column("heartbeat_at", bot.storage.models.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("problem", sqlmodel.sql.sqltypes.AutoString(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("lease") as batch:
        batch.drop_column("problem")
        batch.drop_column("heartbeat_at")
    with op.batch_alter_table("delivery") as batch:
        batch.drop_column("timeouts")
