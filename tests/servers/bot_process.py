"""`python -m bot run` as a child process, for end-to-end tests and benchmarks.

    config = write_config(tmp_path, feeds=[(url, "Wire EN", "en")])
    with BotProcess(tmp_path, config, database_url, api=server) as bot:
        bot.wait_for("running")
        ...
        code = bot.stop()              # SIGTERM, then the exit status

Output goes to files (no pipe can fill up); `output` reads stdout and stderr so far.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from tests.servers.bot_api import BotApiServer

REPO = Path(__file__).resolve().parents[2]


def write_config(
    folder: Path,
    *,
    feeds: Sequence[tuple[str, str, str]],
    poll_interval: float = 1,
    admin_chat_ids: Sequence[int] = (),
    extra: str = "",
    name: str = "sahel-watch.toml",
) -> Path:
    """A config file: feeds as (url, name, language)."""
    lines = [
        f"poll_interval = {poll_interval}",
        f'seeds_dir = "{REPO / "seeds"}"',
        f"admin_chat_ids = {list(admin_chat_ids)}",
        extra,
    ]
    for url, feed_name, language in feeds:
        lines += [
            "[[feeds]]",
            f'url = "{url}"',
            f'name = "{feed_name}"',
            f'language = "{language}"',
        ]
    path = folder / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class BotProcess:
    def __init__(
        self,
        folder: Path,
        config: Path,
        database_url: str,
        *,
        api: BotApiServer | None = None,
        token: str | None = None,
        log_level: str = "INFO",
        tag: str = "bot",
        session: bool = False,
    ) -> None:
        self.folder = folder
        self.session = session  # a session (and process group) of its own: `signal_group`
        self.env = {
            **os.environ,
            "SAHEL_WATCH_CONFIG": str(config),
            "DATABASE_URL": database_url,
            "LOG_LEVEL": log_level,
            "PYTHONUNBUFFERED": "1",
        }
        for var in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_API_URL", "METRICS_PORT"):
            self.env.pop(var, None)
        if api is not None:
            self.env["TELEGRAM_API_URL"] = api.base_url
            self.env["TELEGRAM_BOT_TOKEN"] = token or api.token
        self.stdout_path = folder / f"{tag}.stdout"
        self.stderr_path = folder / f"{tag}.stderr"
        self.process: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self) -> BotProcess:
        self.runs += 1
        out = self.stdout_path.open("ab")
        err = self.stderr_path.open("ab")
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bot", "run"],
                cwd=self.folder,
                env=self.env,
                stdout=out,
                stderr=err,
                start_new_session=self.session,
            )
        finally:
            out.close()
            err.close()
        return self

    @property
    def output(self) -> str:
        def read(path: Path) -> str:
            return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

        return read(self.stdout_path) + read(self.stderr_path)

    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, text: str, timeout: float = 30.0, *, count: int = 1) -> None:
        """Wait until `text` appears `count` times in the output (or the process ends)."""
        deadline = time.monotonic() + timeout
        while self.output.count(text) < count:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"bot exited ({self.process.returncode}):\n{self.output}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{text!r} not seen in {timeout} s:\n{self.output[-3000:]}")
            time.sleep(0.05)

    def send_signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def signal_group(self, sig: signal.Signals) -> None:
        """`sig` to the bot and every process it started, as Ctrl-C in a terminal does."""
        assert self.process is not None and self.session
        os.killpg(self.process.pid, sig)

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 60.0) -> int:
        """Send `sig` and wait for the exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL: no clean-up at all."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def __enter__(self) -> BotProcess:
        if self.process is None or self.process.poll() is not None:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
