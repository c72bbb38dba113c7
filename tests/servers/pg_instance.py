"""A PostgreSQL server of the test's own, on its own port, that the test can stop and start.

    with PgInstance() as pg:               # initdb + start; stopped and removed at the end
        engine = make_engine(pg.url)
        pg.stop()                          # the database is gone (connections cut)
        pg.start()                         # and back, same data

Uses the installed server's initdb and pg_ctl (/usr/lib/postgresql/<version>/bin). initdb
refuses to run as root, so as root the cluster belongs to the `postgres` user (runuser),
in a folder of its own under the system temp dir (pytest's tmp_path is private to root).
Skips the test when no server binaries are installed.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

import pytest


def _bin_dir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return found[-1].parent if found else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgInstance:
    def __init__(self, port: int | None = None) -> None:
        bin_dir = _bin_dir()
        if bin_dir is None:
            pytest.skip("no PostgreSQL server binaries under /usr/lib/postgresql")
        self.bin = bin_dir
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix=f"sahel-pg-{self.port}-"))
        self.data = self.root / "data"
        self._as: list[str] = []
        if os.geteuid() == 0:
            self._as = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres?connect_timeout=2"

    def _run(self, *args: str) -> None:
        subprocess.run(
            [*self._as, *args], check=True, capture_output=True, timeout=120, cwd=self.root
        )

    def init(self) -> PgInstance:
        if self._as:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
        initdb = str(self.bin / "initdb")
        self._run(initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        return self

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        pg_ctl = str(self.bin / "pg_ctl")
        log = str(self.root / "server.log")  # not a pipe: the server outlives pg_ctl
        self._run(pg_ctl, "-D", str(self.data), "-l", log, "-o", options, "-w", "-t", "60", "start")

    def stop(self) -> None:
        """Fast shutdown: open connections are cut, as when the server goes away."""
        pg_ctl = str(self.bin / "pg_ctl")
        self._run(pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def __enter__(self) -> PgInstance:
        self.init().start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        pg_ctl = str(self.bin / "pg_ctl")
        subprocess.run([*self._as, pg_ctl, "-D", str(self.data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60, cwd=self.root)  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)
