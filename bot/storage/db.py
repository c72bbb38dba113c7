"""Engine and schema set-up. SQLite gets WAL, a busy timeout and foreign keys."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlmodel import Session, create_engine

from bot.settings import sqlalchemy_url
from bot.storage import models  # noqa: F401 - registers the tables on SQLModel.metadata
from bot.storage.errors import StorageError, translate

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATION_LOCK_KEY = 0x5A4E1_0002


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class NoDatabase(StorageError):
    """A command that only reads found no database, or no schema in it, and created none."""


CREATE_HINT = "`python -m bot db upgrade` (or `run`) creates it"


def make_engine(database_url: str, *, create_folder: bool = True) -> Engine:
    """An engine for `database_url`; creates the folder of a SQLite file unless told not to.

    Its database errors are raised as `StorageError` (bot/storage/errors.py).
    """
    url = make_url(sqlalchemy_url(database_url))
    if url.get_backend_name() == "sqlite":
        if create_folder and url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 5})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)
    event.listen(engine, "handle_error", translate)  # database errors become StorageError
    return engine


def open_existing(database_url: str) -> Engine:
    """An engine on a database that already holds the schema, for commands that only read.

    Creates nothing: no SQLite file or folder, no table. `NoDatabase` says what is missing.
    """
    url = make_url(sqlalchemy_url(database_url))
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        path = Path(url.database)
        if not path.is_file():
            raise NoDatabase(f"no database at {path.resolve()} yet; {CREATE_HINT}")
    engine = make_engine(database_url, create_folder=False)
    try:
        revision = schema_revision(engine)
    except BaseException:
        engine.dispose()
        raise
    if revision is None:
        engine.dispose()
        where = url.render_as_string(hide_password=True)
        raise NoDatabase(f"the database {where} has no schema yet; {CREATE_HINT}")
    return engine


def create_schema(engine: Engine) -> None:
    """Bring the schema to the newest migration (creates it on an empty database).

    A database already there is seen with one query and Alembic is not imported: Alembic
    and its templates hold 13 MB that a long-running process would keep for nothing."""
    if schema_revision(engine) != head_revision():
        upgrade_schema(engine)


MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade_schema(engine: Engine, revision: str = "head") -> None:
    """Apply the Alembic migrations up to `revision`, in one transaction where the database allows.

    On PostgreSQL an advisory lock keeps two replicas starting together from racing.
    """
    from alembic import command

    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        command.upgrade(alembic_config(connection), revision)


@cache
def head_revision() -> str | None:
    """The newest migration this code ships: the one revision no other revises, read from
    the scripts' `revision` and `down_revision` assignments (Alembic's own reading when the
    history branches)."""
    revises: dict[str, str | None] = {}
    for script in sorted((MIGRATIONS / "versions").glob("*.py")):
        names: dict[str, Any] = {}
        for node in ast.parse(script.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(
                node.value, ast.Constant
            ):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        names[target.id] = node.value.value
        if isinstance(names.get("revision"), str):
            revises[names["revision"]] = names.get("down_revision")
    heads = set(revises) - set(revises.values())
    if len(heads) == 1 and list(revises.values()).count(None) == 1:
        return heads.pop()
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def schema_revision(engine: Engine) -> str | None:
    """The migration the database is at; None for an empty database."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        return None if version is None else str(version)


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"
