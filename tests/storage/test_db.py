"""Schema migrations on SQLite and PostgreSQL: an old schema with data upgrades intact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import inspect, text
from sqlmodel import Session

from bot.storage.db import head_revision, make_engine, schema_revision, upgrade_schema
from bot.storage.leases import acquire


def test_old_schema_with_data_upgrades_intact(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        upgrade_schema(engine, "0001")
        assert schema_revision(engine) == "0001"
        assert "lease" not in inspect(engine).get_table_names()
        when = datetime(2026, 11, 1, 12, 0)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO feed (url, name, language, last_status, consecutive_failures)"
                    " VALUES ('https://x.test/rss', 'X', 'fr', 'ok', 0)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO story (created_at, title, link, feed_name, language, summary,"
                    " alerted) VALUES (:w, 'Titre', 'https://x.test/a', 'X', 'fr', 'Résumé.',"
                    " true)"
                ),
                {"w": when},
            )
            conn.execute(
                text(
                    "INSERT INTO subscriber (chat_id, thread_id, chat_type, active, created_at,"
                    " updated_at) VALUES (-1001234567890, 7, 'supergroup', true, :w, :w)"
                ),
                {"w": when},
            )
            conn.execute(
                text(
                    "INSERT INTO delivery (story_id, subscriber_id, state, attempts,"
                    " next_attempt_at, created_at) VALUES (1, 1, 'pending', 0, :w, :w)"
                ),
                {"w": when},
            )
        upgrade_schema(engine)
        assert schema_revision(engine) == head_revision()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT name, language FROM feed")).one() == ("X", "fr")
            assert conn.execute(text("SELECT summary FROM story")).scalar_one() == "Résumé."
            assert conn.execute(text("SELECT chat_id, thread_id FROM subscriber")).one() == (
                -1001234567890,
                7,
            )
            assert conn.execute(text("SELECT state FROM delivery")).scalar_one() == "pending"
        with Session(engine) as session:  # the new table works
            assert acquire(session, "updates", "me", timedelta(seconds=30), now=datetime.now(UTC))
        upgrade_schema(engine)  # idempotent
        assert schema_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_the_migrations_build_the_schema_the_models_declare(database_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    import bot.storage.models  # noqa: F401 - registers the tables

    engine = make_engine(database_url)
    try:
        upgrade_schema(engine)
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": False, "compare_server_default": False}
            )
            diff = compare_metadata(context, SQLModel.metadata)
        assert diff == []
    finally:
        engine.dispose()


def test_a_subscriber_of_before_keeps_what_it_had(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        upgrade_schema(engine, "0006")
        when = datetime(2026, 11, 1, 12, 0)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO subscriber (chat_id, thread_id, chat_type, active, created_at,"
                    " updated_at) VALUES (42, 0, 'private', true, :w, :w)"
                ),
                {"w": when},
            )
        upgrade_schema(engine)
        with engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT language, timezone, topics, delivery_mode, quiet_from, silent,"
                    " link_previews FROM subscriber"
                )
            ).one()
        assert tuple(row) == ("en", "UTC", "", "instant", None, False, True)
    finally:
        engine.dispose()


def test_the_console_pseudo_subscriber_of_before_is_deleted_with_its_rows(
    database_url: str,
) -> None:
    engine = make_engine(database_url)
    try:
        upgrade_schema(engine, "0008")
        when = datetime(2026, 11, 1, 12, 0)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO story (created_at, title, link, feed_name, language, summary,"
                    " alerted) VALUES (:w, 'T', 'https://x.test/a', 'X', 'en', '', true)"
                ),
                {"w": when},
            )
            for chat_id, kind in ((0, "console"), (42, "private")):
                conn.execute(
                    text(
                        "INSERT INTO subscriber (chat_id, thread_id, chat_type, active,"
                        " created_at, updated_at) VALUES (:c, 0, :k, true, :w, :w)"
                    ),
                    {"c": chat_id, "k": kind, "w": when},
                )
            conn.execute(
                text(
                    "INSERT INTO delivery (story_id, subscriber_id, state, attempts,"
                    " next_attempt_at, created_at) SELECT 1, id, 'pending', 0, :w, :w"
                    " FROM subscriber"
                ),
                {"w": when},
            )
        upgrade_schema(engine)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT chat_type FROM subscriber")).scalars().all() == [
                "private"
            ]
            assert conn.execute(
                text("SELECT s.chat_id FROM delivery d JOIN subscriber s ON s.id = d.subscriber_id")
            ).scalars().all() == [42]
            assert conn.execute(text("SELECT count(*) FROM delivery")).scalar_one() == 1
            assert conn.execute(text("SELECT count(*) FROM story_cursor")).scalar_one() == 0
    finally:
        engine.dispose()


def test_the_head_read_from_the_scripts_is_alembics() -> None:
    from alembic.script import ScriptDirectory

    from bot.storage.db import alembic_config

    assert head_revision() == ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_a_database_at_the_head_is_opened_without_alembic(database_url: str) -> None:
    import subprocess
    import sys

    engine = make_engine(database_url)
    try:
        assert schema_revision(engine) is None  # empty
        upgrade_schema(engine)
        assert schema_revision(engine) == head_revision()
    finally:
        engine.dispose()
    probe = (
        "import sys\n"
        "from bot.storage.db import create_schema, make_engine, schema_revision\n"
        f"engine = make_engine({database_url!r})\n"
        "create_schema(engine)\n"
        "print(schema_revision(engine), 'alembic' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == [head_revision(), "False"]
