"""bot/storage/errors.py: the engine raises the project's StorageError, not SQLAlchemy's."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from bot.errors import SahelWatchError
from bot.storage.db import make_engine
from bot.storage.errors import StorageConflict, StorageError
from bot.storage.models import Feed


def test_a_database_that_is_gone_raises_storage_error() -> None:
    gone = make_engine("postgresql://postgres@127.0.0.1:1/nothing?connect_timeout=1")
    try:
        with pytest.raises(StorageError) as raised, gone.connect():
            pass
    finally:
        gone.dispose()
    error = raised.value
    assert isinstance(error, SahelWatchError) and not isinstance(error, SQLAlchemyError)
    assert error.__cause__ is not None  # chained from what the driver raised
    assert type(error.orig).__module__.startswith("psycopg")  # the driver's own exception
    assert str(error).startswith("OperationalError: ")


def test_a_refused_statement_raises_storage_error(engine: Engine) -> None:
    refused = r"^(OperationalError|ProgrammingError): "
    with pytest.raises(StorageError, match=refused), engine.connect() as connection:
        connection.execute(text("SELECT * FROM no_such_table"))
    with Session(engine) as session:  # the session and the pool still work afterwards
        assert session.execute(text("SELECT 1")).scalar_one() == 1


def test_a_unique_conflict_is_a_storage_conflict(engine: Engine) -> None:
    with Session(engine) as session:
        session.add(Feed(url="https://x.test/feed", name="X"))
        session.commit()
    with pytest.raises(StorageConflict) as raised, Session(engine) as session:
        session.add(Feed(url="https://x.test/feed", name="X again"))
        session.commit()
    assert isinstance(raised.value, StorageError)
    assert str(raised.value).startswith("IntegrityError: ") and raised.value.orig is not None
