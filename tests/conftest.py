"""Shared fixtures: a real database (SQLite file, and PostgreSQL on 127.0.0.1:5432)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy.engine import Engine

from bot.storage.db import create_schema, make_engine

pytest_plugins = ["tests.servers.fixtures", "tests.servers.bot_fixtures"]

PG_ADMIN = os.environ.get("SAHEL_WATCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_schema_url(schema: str) -> str:
    sep = "&" if "?" in PG_ADMIN else "?"
    return f"{PG_ADMIN}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A throwaway schema in the test database, as a DATABASE_URL."""
    schema = f"sw_{uuid.uuid4().hex[:12]}"
    dsn = PG_ADMIN.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield _pg_schema_url(schema)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The same test on a SQLite file and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db')}/sahel.db"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url)
    create_schema(eng)
    yield eng
    eng.dispose()
