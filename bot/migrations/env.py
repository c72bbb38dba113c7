"""Alembic environment: runs on the connection `bot.db.upgrade_schema` hands over."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from bot.storage import models  # noqa: F401 - registers the tables

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `python -m bot db upgrade`")
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
