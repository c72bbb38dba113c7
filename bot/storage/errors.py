"""The storage layer's own error, translated at the engine from SQLAlchemy's.

Every engine made by `bot.storage.db.make_engine` turns a database error (SQLAlchemy's
`DBAPIError` and its kinds: `OperationalError`, `InterfaceError`, `DataError`, ...) into a
`StorageError` chained from it, so callers (pipeline, delivery, health, commands) catch the
project's error and never import SQLAlchemy's.

StorageError
├── StorageConflict     a constraint refused the row (`IntegrityError`): the storage
│                       functions that expect one (a replica inserted the same row first)
│                       catch this kind only
└── StorageUnavailable  the database cannot be reached, or is busy (`OperationalError`,
                        `InterfaceError`): worth trying again later, as `run` does at start
"""

from __future__ import annotations

from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError

from bot.errors import SahelWatchError


class StorageError(SahelWatchError):
    """The database is locked, gone or refused a statement; nothing half-written remains.

    `orig` is the driver's own exception (as on SQLAlchemy's `DBAPIError`), when there is one.
    """

    def __init__(self, message: str, *, orig: BaseException | None = None) -> None:
        super().__init__(message)
        self.orig = orig

    @classmethod
    def of(cls, exc: DBAPIError) -> StorageError:
        """`OperationalError: the driver's first line`, with the driver's exception as `orig`."""
        cause = exc.orig if exc.orig is not None else exc
        first_line = (str(cause).strip().splitlines() or [""])[0][:300]
        return cls(f"{type(exc).__name__}: {first_line}", orig=cause)


class StorageConflict(StorageError):
    """A unique or other constraint refused the row (SQLAlchemy's `IntegrityError`)."""


class StorageUnavailable(StorageError):
    """The server refused or dropped the connection, or the database is locked or busy."""


def translate(context: ExceptionContext) -> BaseException | None:
    """SQLAlchemy's `handle_error` hook: the `StorageError` to raise instead, or None."""
    exc = context.sqlalchemy_exception
    if isinstance(exc, IntegrityError):
        return StorageConflict.of(exc)
    if isinstance(exc, OperationalError | InterfaceError):
        return StorageUnavailable.of(exc)
    if isinstance(exc, DBAPIError):
        return StorageError.of(exc)
    return None
