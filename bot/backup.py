"""`python -m bot db backup PATH`: a consistent copy of the SQLite database, no other program.

The copy is made with SQLite's online backup API, which Python's standard library exposes
(`sqlite3.Connection.backup`), in one step: one read transaction for the whole copy, so the
copy is the database as it was when the step began. The bot's SQLite is in WAL mode, so its
writers go on meanwhile (in the rollback-journal mode, they wait, within their 5 s busy
timeout). A copy made in several steps would start again each time the bot wrote between two
of them, and might never finish under a busy bot.

The copy is written beside PATH under a hidden temporary name (mode 0600: it holds the
subscribers' chat ids), checked (`PRAGMA quick_check`), switched to the rollback journal so
it is one self-contained file, and only then linked to PATH. Linking fails when PATH exists,
so an existing file is never overwritten, and a failed backup leaves nothing at PATH.

On PostgreSQL the command only explains `pg_dump` (exit 2): the server's own tool makes a
consistent dump without stopping the bot, and this image does not carry it.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from bot.errors import SahelWatchError
from bot.settings import Settings, sqlalchemy_url

BUSY_TIMEOUT_MS = 5000  # as the bot's own connections (a writer checkpointing, say)


class BackupError(SahelWatchError):
    """The backup could not be made; the message is one line for the operator (exit 1)."""


class UsePgDump(BackupError):
    """The database is PostgreSQL: `pg_dump` backs it up, and the message says how (exit 2)."""


@dataclass(frozen=True)
class BackupResult:
    source: Path
    destination: Path
    size_bytes: int
    schema_revision: str | None
    seconds: float

    def describe(self) -> str:
        schema = f"schema {self.schema_revision}" if self.schema_revision else "no schema"
        return (
            f"backed up {self.source} to {self.destination}: "
            f"{_size(self.size_bytes)}, {schema}, {self.seconds:.1f} s"
        )


def _size(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f} MB"
    return f"{n / 1000:.1f} kB" if n >= 1000 else f"{n} bytes"


def _url(database_url: str) -> URL:
    try:
        return make_url(sqlalchemy_url(database_url))
    except ArgumentError as exc:
        raise BackupError(f"DATABASE_URL is not a database URL: {exc}") from None


def pg_dump_hint(url: URL, destination: Path) -> str:
    """The one line that says how to back up this PostgreSQL database (no password in it)."""
    plain = URL.create(  # (URL.set leaves the password when given None)
        "postgresql", url.username, None, url.host, url.port, url.database, url.query
    )
    target = plain.render_as_string(hide_password=False)
    return (
        "db backup copies SQLite databases; this one is PostgreSQL, so back it up with its "
        f"own tool: pg_dump --format=custom --file={destination} --dbname={target} "
        "(password from PGPASSWORD or ~/.pgpass; restore with pg_restore)"
    )


def sqlite_source(database_url: str, destination: Path) -> Path:
    """The SQLite file `database_url` names; `UsePgDump` for PostgreSQL."""
    url = _url(database_url)
    backend = url.get_backend_name()
    if backend == "postgresql":
        raise UsePgDump(pg_dump_hint(url, destination))
    if backend != "sqlite":
        raise BackupError(f"db backup knows SQLite and PostgreSQL, not {backend!r}")
    if not url.database or url.database == ":memory:":
        raise BackupError("DATABASE_URL names no SQLite file (an in-memory database)")
    return Path(url.database)


def _check_destination(destination: Path) -> None:
    if destination.exists() or destination.is_symlink():
        raise BackupError(f"{destination} already exists; a backup never overwrites a file")
    if not destination.parent.is_dir():
        raise BackupError(f"folder {destination.parent} does not exist")


def _link(partial: Path, destination: Path) -> None:
    """Give the finished copy its name, failing if the name is taken meanwhile."""
    try:
        os.link(partial, destination)
    except FileExistsError:
        raise BackupError(
            f"{destination} already exists; a backup never overwrites a file"
        ) from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
        # a file system without hard links: the check just before is as good as it gets
        _check_destination(destination)
        partial.rename(destination)


def _copy(source: Path, partial: Path) -> str | None:
    """Copy `source` into the file `partial` in one step; the copy's schema revision."""
    # mode=rw: a missing source is an error, never an empty new database
    src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=rw", uri=True)
    try:
        src.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst)  # pages=-1: the whole database in one step
            # The copy's header says WAL like its source's: make it one self-contained file.
            dst.execute("PRAGMA journal_mode=DELETE")
            (verdict,) = dst.execute("PRAGMA quick_check").fetchone()
            if verdict != "ok":
                raise BackupError(f"the copy of {source} fails its check: {verdict}")
            try:
                row = dst.execute("SELECT version_num FROM alembic_version").fetchone()
            except sqlite3.OperationalError:  # a SQLite file without the bot's schema
                row = None
            return str(row[0]) if row else None
        finally:
            dst.close()
    finally:
        src.close()


def backup(database_url: str, destination: Path) -> BackupResult:
    """Copy the SQLite database of `database_url` to `destination`, a file that must not exist."""
    source = sqlite_source(database_url, destination)
    if not source.is_file():
        raise BackupError(f"no database at {source.resolve()}: nothing to back up")
    _check_destination(destination)
    started = time.monotonic()
    try:
        fd, name = tempfile.mkstemp(
            prefix=f".{destination.name}.", suffix=".partial", dir=destination.parent
        )
    except OSError as exc:
        raise BackupError(f"cannot write in {destination.parent}: {exc.strerror or exc}") from None
    os.close(fd)
    partial = Path(name)
    try:
        revision = _copy(source, partial)
        _link(partial, destination)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot back up {source}: {exc}") from None
    except OSError as exc:
        raise BackupError(f"cannot write {destination}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return BackupResult(
        source=source,
        destination=destination,
        size_bytes=destination.stat().st_size,
        schema_revision=revision,
        seconds=time.monotonic() - started,
    )


def cmd_backup(settings: Settings, args: argparse.Namespace) -> int:
    try:
        result = backup(settings.database_url, Path(args.path))
    except UsePgDump as exc:
        print(f"sahel-watch: {exc}", file=sys.stderr)
        return 2
    except BackupError as exc:
        print(f"sahel-watch: {exc}", file=sys.stderr)
        return 1
    print(result.describe())
    return 0


def register(db_commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `backup PATH` to the `db` subcommands."""
    parser = db_commands.add_parser(
        "backup",
        help="a consistent copy of the SQLite database to PATH (a new file), while the bot "
        "runs; for PostgreSQL it says how to use pg_dump",
    )
    parser.add_argument("path", help="the copy's file name; it must not exist yet")
    parser.set_defaults(func=cmd_backup)
