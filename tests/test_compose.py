"""docker-compose.yml, started for real with podman-compose: both services healthy, an alert
delivered through the test Bot API server, everything removed afterwards.

Slow and opt-in like tests/test_container.py: with SAHEL_WATCH_CONTAINER_TESTS=1 (what
`.ci/run` sets after `.ci/container.sh build` made both images) a missing podman,
podman-compose or image FAILS the test; without it the test is skipped. The images:
SAHEL_WATCH_IMAGE (default localhost/sahel-watch:ci) and POSTGRES_IMAGE (default
localhost/sahel-watch-postgres:ci, built from containers/postgres: no registry image can be
pulled here).

What the test adds to the compose file, in an override file of its own:
- The bot shares the host's network. The test's feed and Bot API servers listen on the
  host's 127.0.0.1 only, like every test server of this project, and a container on the
  compose network cannot reach the host's loopback (podman's bridge network works here, but
  host.containers.internal is the host's outside address, and slirp4netns, whose
  allow_host_loopback would help, is not installed). So the bot reaches the database
  through the port the db service publishes on 127.0.0.1, and its ops endpoint listens on
  a free port of the host. The db service stays on the compose network as users run it.
- The config file names the test's feed; the ulimits this kernel needs
  (../shared/CONTAINERS.md); no pod (a pod would share one network between the services).
podman-compose runs podman with `--runtime runc` (crun refuses this host's cgroups).

Podman 4.3 (Debian bookworm) has no `podman wait --condition=healthy`, so podman-compose
starts the bot without waiting for the database's health; `run` then waits for the
database itself (tests/test_run_wait.py). Without systemd, health checks
run only when asked: the test runs `podman healthcheck run` on both.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import httpx
import pytest
import yaml

from tests.servers.bot_api import BotApiServer
from tests.servers.feed_server import FeedServer
from tests.servers.feedgen import rss
from tests.test_container import _config, _fresh_story

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "docker-compose.yml"
BOT_IMAGE = os.environ.get("SAHEL_WATCH_IMAGE", "localhost/sahel-watch:ci")
POSTGRES_IMAGE = os.environ.get("POSTGRES_IMAGE", "localhost/sahel-watch-postgres:ci")
REQUIRED = os.environ.get("SAHEL_WATCH_CONTAINER_TESTS") == "1"
TOKEN = "7000000002:AAComposeRunTestToken_abcdefghijklmn"
PASSWORD = "composeci" + uuid.uuid4().hex[:8]
CHAT = 515151

pytestmark = pytest.mark.slow


def _unavailable(reason: str) -> NoReturn:
    if REQUIRED:
        pytest.fail(f"compose test cannot run: {reason}", pytrace=False)
    pytest.skip(f"{reason} (set SAHEL_WATCH_CONTAINER_TESTS=1 to make this a failure)")


def _podman_compose() -> str | None:
    beside = Path(sys.executable).parent / "podman-compose"  # the venv's, from the dev extra
    return str(beside) if beside.exists() else shutil.which("podman-compose")


def _podman(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", "--runtime", "runc", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait(
    what: str,
    ready: Callable[[], bool],
    timeout: float,
    log: Callable[[], str],
    broken: Callable[[], str | None] = lambda: None,
) -> float:
    """Seconds until `ready()`; fails at the deadline, or as soon as `broken()` says why."""
    start = time.monotonic()
    while not ready():
        if (reason := broken()) is not None:
            pytest.fail(f"no {what}: {reason}:\n{log()}", pytrace=False)
        if time.monotonic() - start > timeout:
            pytest.fail(f"no {what} after {timeout:.0f} s:\n{log()}", pytrace=False)
        time.sleep(0.25)
    return time.monotonic() - start


class Project:
    """One compose project: `podman-compose -p NAME -f docker-compose.yml -f OVERRIDE …`."""

    def __init__(self, folder: Path, env: dict[str, str], overrides: dict[str, object]) -> None:
        self.name = f"sw-compose-{uuid.uuid4().hex[:8]}"
        self.override = folder / "compose.ci.yml"
        self.override.write_text(yaml.safe_dump(overrides, sort_keys=False), encoding="utf-8")
        self.env = env
        tool = _podman_compose()
        assert tool is not None
        self.command = [
            tool, "--podman-args=--runtime=runc", "-p", self.name,
            "-f", str(COMPOSE_FILE), "-f", str(self.override),
        ]  # fmt: skip

    def run(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.command, *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def container(self, service: str) -> str:
        out = _podman(
            "ps", "--all", "--format", "{{.Names}}",
            "--filter", f"label=com.docker.compose.project={self.name}",
            "--filter", f"label=com.docker.compose.service={service}",
        ).stdout.split()  # fmt: skip
        assert len(out) == 1, f"containers of {service}: {out}"
        return out[0]

    def restarts(self, service: str) -> int:
        out = _podman("inspect", "--format", "{{.RestartCount}}", self.container(service))
        return int(out.stdout.strip() or 0)

    def crash_loop(self, service: str) -> str | None:
        """Why `service` is past hope: started again and again by its restart policy."""
        n = self.restarts(service)
        return f"{service} restarted {n} times" if n > 2 else None

    def healthy(self, service: str) -> bool:
        return _podman("healthcheck", "run", self.container(service)).returncode == 0

    def logs(self, service: str, lines: int = 60) -> str:
        result = _podman("logs", "--tail", str(lines), self.container(service))
        return f"--- {service} log:\n{result.stdout}{result.stderr}"

    def leftovers(self) -> list[str]:
        label = f"label=com.docker.compose.project={self.name}"
        containers = _podman("ps", "--all", "--quiet", "--filter", label).stdout.split()
        volumes = _podman("volume", "ls", "--quiet", "--filter", label).stdout.split()
        return containers + volumes


@pytest.fixture(scope="module")
def images() -> None:
    if not REQUIRED:
        _unavailable("container tests are opt-in: run .ci/container.sh build first")
    if shutil.which("podman") is None:
        _unavailable("podman is not installed (.ci/container.sh installs it from Debian)")
    if _podman_compose() is None:
        _unavailable("podman-compose is not installed (pip install -e '.[dev]')")
    for image in (BOT_IMAGE, POSTGRES_IMAGE):
        if _podman("image", "exists", image).returncode != 0:
            _unavailable(f"image {image} is not built (.ci/container.sh build builds it)")


def _environment(**values: str) -> dict[str, str]:
    """The caller's environment without what compose would read from it by accident."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "METRICS_"))}
    for var in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_API_URL", "DATABASE_URL", "SAHEL_WATCH_CONFIG"):
        keep.pop(var, None)
    return {**keep, **values}


@pytest.fixture
def project(images: None, tmp_path: Path) -> Iterator[Callable[..., Project]]:
    made: list[Project] = []

    def make(env: dict[str, str], overrides: dict[str, object]) -> Project:
        made.append(Project(tmp_path, env, overrides))
        return made[-1]

    yield make
    for p in made:  # always torn down, volumes included
        down = p.run("down", "--volumes", "--timeout", "10")
        assert down.returncode == 0, down.stderr[-2000:]
        assert p.leftovers() == [], f"{p.name} left {p.leftovers()}"


def test_compose_up_healthy_and_an_alert_delivered(
    project: Callable[..., Project], tmp_path: Path
) -> None:
    timings: dict[str, float] = {}
    pg_port, metrics_port = _free_port(), _free_port()
    ulimits = {"nofile": {"soft": 20000, "hard": 20000}, "nproc": {"soft": 32768, "hard": 32768}}
    with FeedServer() as feeds, BotApiServer(token=TOKEN) as api:
        feed_url = feeds.add("/wire.xml", body=rss([], title="Loopback wire"), etag=True)
        config = _config(tmp_path / "sahel-watch.toml", feed_url)
        overrides: dict[str, object] = {
            "x-podman": {"in_pod": False},
            "services": {
                "bot": {
                    "network_mode": "host",
                    "environment": {
                        "DATABASE_URL": f"postgresql://sahel:{PASSWORD}@127.0.0.1:{pg_port}/"
                        "sahel_watch",
                        "SAHEL_WATCH_CONFIG": "/config/sahel-watch.toml",
                    },
                    "volumes": [f"{config}:/config/sahel-watch.toml:ro"],
                    "ulimits": ulimits,
                },
                "db": {"ports": [f"127.0.0.1:{pg_port}:5432"], "ulimits": ulimits},
            },
        }
        env = _environment(
            TELEGRAM_BOT_TOKEN=TOKEN,
            TELEGRAM_API_URL=api.base_url,
            POSTGRES_PASSWORD=PASSWORD,
            POSTGRES_IMAGE=POSTGRES_IMAGE,
            SAHEL_WATCH_IMAGE=BOT_IMAGE,
            METRICS_PORT=str(metrics_port),
            LOG_LEVEL="DEBUG",
        )
        p = project(env, overrides)

        def logs() -> str:
            return p.logs("db") + "\n" + p.logs("bot")

        started = time.monotonic()
        up = p.run("up", "--detach", "--no-build")
        assert up.returncode == 0, f"{up.stdout[-3000:]}\n{up.stderr[-3000:]}"
        timings["up"] = time.monotonic() - started

        timings["db healthy"] = _wait("healthy db", lambda: p.healthy("db"), 60, logs)
        _wait(
            "polling to start",
            lambda: bool(api.calls("deleteWebhook")),
            120,
            logs,
            lambda: p.crash_loop("bot"),
        )
        api.send_text(CHAT, "/start")
        _wait("/start reply", lambda: bool(api.sent(CHAT)), 60, logs)
        timings["/start answered"] = time.monotonic() - started

        story = _fresh_story()
        feeds.set_body("/wire.xml", rss([story], title="Loopback wire"))
        before = time.monotonic()
        _wait("alert", lambda: len(api.sent(CHAT)) >= 2, 60, logs)
        timings["alert delivered"] = time.monotonic() - before
        alert = api.sent(CHAT)[1]
        assert "Alliance of Sahel States opens joint air base" in alert.plain

        # the image's HEALTHCHECK (`python -m bot health`) in the bot's container
        before = time.monotonic()
        _wait("healthy bot", lambda: p.healthy("bot"), 30, logs)
        timings["bot healthy"] = time.monotonic() - before

        # the ops endpoint on the port compose gave it
        with httpx.Client(base_url=f"http://127.0.0.1:{metrics_port}", timeout=10) as http:
            assert http.get("/healthz").status_code == 200
            assert "sahelwatch_" in http.get("/metrics").text

        # PostgreSQL restarted on its volume: the cluster is kept (no second initdb), it
        # stops at once (SIGINT, fast shutdown) and the bot carries on
        before = time.monotonic()
        restart = _podman("restart", "--time", "10", p.container("db"))
        assert restart.returncode == 0, restart.stderr
        timings["db restarted"] = time.monotonic() - before
        _wait("healthy db after restart", lambda: p.healthy("db"), 60, logs)
        db_log = p.logs("db", lines=100_000)
        assert db_log.count("initialising a new cluster") == 1, db_log
        _wait("bot healthy again", lambda: p.healthy("bot"), 30, logs)

        bot_log = p.logs("bot", lines=100_000)
        assert "Traceback" not in bot_log, bot_log[-5000:]
        assert TOKEN not in bot_log, "the bot token reached the container log"
        assert PASSWORD not in bot_log, "the database password reached the container log"
        restarts = p.restarts("bot")
    timings["total"] = time.monotonic() - started
    print("\ncompose run timings:")
    for what, seconds in timings.items():
        print(f"  {what:<18} {seconds:6.1f} s")
    # started before the database answered (podman 4.3 cannot wait for its health)
    print(f"  bot restarts       {restarts}")


def test_compose_publishes_ops_and_webhook_ports(images: None) -> None:
    """The ports the compose file publishes, by default and as the variables set them."""

    def ports(**values: str) -> list[object]:
        env = _environment(TELEGRAM_BOT_TOKEN=TOKEN, POSTGRES_PASSWORD=PASSWORD, **values)
        tool = _podman_compose()
        assert tool is not None
        done = subprocess.run(
            [tool, "-f", str(COMPOSE_FILE), "config"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        bot = yaml.safe_load(done.stdout)["services"]["bot"]
        return [bot["environment"]["METRICS_PORT"], *bot["ports"]]

    assert ports() == ["9108", "127.0.0.1:9108:9108", "8443:8443"]
    assert ports(METRICS_PUBLISH="0.0.0.0:19108", WEBHOOK_PUBLISH="127.0.0.1:18443") == [
        "9108",
        "0.0.0.0:19108:9108",
        "127.0.0.1:18443:8443",
    ]
    assert ports(METRICS_PORT="9200") == ["9200", "127.0.0.1:9108:9200", "8443:8443"]


def test_env_example_names_every_compose_variable() -> None:
    """Each ${VAR} docker-compose.yml reads is documented in .env.example."""
    used = set(re.findall(r"\$\{([A-Z_]+)", COMPOSE_FILE.read_text(encoding="utf-8")))
    documented = (REPO / ".env.example").read_text(encoding="utf-8")
    missing = sorted(v for v in used if not re.search(rf"^#? ?{v}=", documented, re.M))
    assert not missing, f".env.example does not mention {missing}"
    assert {"METRICS_PUBLISH", "WEBHOOK_PUBLISH", "POSTGRES_IMAGE"} <= used
