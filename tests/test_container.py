"""The image, end to end: podman runs it against the loopback feed and Bot API servers.

Slow and opt-in. `.ci/container.sh` lints and builds the image, then runs this module with
SAHEL_WATCH_CONTAINER_TESTS=1: then a missing podman or image FAILS the test. Without the
variable it is skipped (a stale local image would test old code). SAHEL_WATCH_IMAGE names
the image (default localhost/sahel-watch:ci, what the script builds).

The container shares the host network, so the bot inside reaches both test servers on
127.0.0.1; its config file is mounted in, its database is the image's /data volume.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import NoReturn

import pytest

from tests.servers.bot_api import BotApiServer
from tests.servers.feed_server import FeedServer
from tests.servers.feedgen import rss

IMAGE = os.environ.get("SAHEL_WATCH_IMAGE", "localhost/sahel-watch:ci")
REQUIRED = os.environ.get("SAHEL_WATCH_CONTAINER_TESTS") == "1"
# Shaped like a real token, so the image's log redaction is exercised too.
TOKEN = "7000000001:AAContainerSmokeTestToken_abcdefghij"
CHAT = 424242
STOP_TIMEOUT = 10  # podman stop -t: SIGTERM, then SIGKILL after this many seconds
# Flags this host needs (../shared/CONTAINERS.md); harmless where they are not needed.
ULIMITS = ("--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768")

pytestmark = pytest.mark.slow


def _unavailable(reason: str) -> NoReturn:
    if REQUIRED:
        pytest.fail(f"container smoke test cannot run: {reason}", pytrace=False)
    pytest.skip(f"{reason} (set SAHEL_WATCH_CONTAINER_TESTS=1 to make this a failure)")


def _podman_base() -> list[str]:
    podman = shutil.which("podman")
    assert podman is not None
    # crun refuses this host's hybrid cgroups; runc works everywhere podman does.
    return [podman, "--runtime", "runc"] if shutil.which("runc") else [podman]


def podman(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*_podman_base(), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"podman {' '.join(args)} exited {result.returncode}:\n{result.stderr[-3000:]}"
        )
    return result


@pytest.fixture(scope="module")
def image() -> str:
    if not REQUIRED:
        _unavailable("container tests are opt-in: run .ci/container.sh")
    if shutil.which("podman") is None:
        _unavailable("podman is not installed (.ci/container.sh installs it from Debian)")
    if podman("image", "exists", IMAGE, check=False).returncode != 0:
        _unavailable(f"image {IMAGE} is not built (.ci/container.sh builds it)")
    return IMAGE


def _fresh_story() -> dict[str, str]:
    """A new development on the watched topic (not the seed), published now."""
    tag = uuid.uuid4().hex[:6]
    return {
        "title": f"Alliance of Sahel States opens joint air base in Niamey for Mali, "
        f"Burkina Faso and Niger ({tag})",
        "summary": "The Alliance of Sahel States (AES) inaugurated a joint air base in Niamey "
        "on Tuesday, where Malian, Burkinabe and Nigerien crews will share surveillance "
        "aircraft for the unified force. Officials said the base would support operations "
        "in the Liptako-Gourma region from next month. Algeria was not mentioned.",
        "link": f"http://127.0.0.1/news/aes-air-base-{tag}",
        "id": f"http://127.0.0.1/news/aes-air-base-{tag}",
        "published": format_datetime(datetime.now(UTC), usegmt=True),
    }


def _config(path: Path, feed_url: str) -> Path:
    path.write_text(
        "poll_interval = 2\n"
        "max_age_hours = 48\n"
        "[limits]\nbackoff_base_seconds = 1.0\nbackoff_max_seconds = 2.0\n"
        "[[feeds]]\n"
        f'name = "Loopback wire"\nurl = "{feed_url}"\nlanguage = "en"\n',
        encoding="utf-8",
    )
    path.chmod(0o644)  # read by the container's user 10001
    return path


class Container:
    def __init__(self, name: str) -> None:
        self.name = name

    def state(self) -> dict[str, object]:
        out = podman("inspect", "--format", "{{json .State}}", self.name).stdout
        state: dict[str, object] = json.loads(out)
        return state

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.logs().splitlines()[-lines:])

    def wait(self, what: str, ready: Callable[[], bool], timeout: float) -> float:
        """Seconds until `ready()`; fails early, with the logs, if the container exits."""
        start = time.monotonic()
        while not ready():
            if not self.state().get("Running"):
                pytest.fail(f"container exited while waiting for {what}:\n{self.tail()}")
            if time.monotonic() - start > timeout:
                pytest.fail(f"no {what} after {timeout:.0f} s; container log:\n{self.tail()}")
            time.sleep(0.25)
        return time.monotonic() - start


@pytest.fixture
def container_name() -> Iterator[str]:
    name = f"sahel-watch-smoke-{uuid.uuid4().hex[:8]}"
    yield name
    podman("rm", "--force", "--volumes", "--time", "0", name, check=False)


def test_image_metadata(image: str) -> None:
    """Built in docker format (or HEALTHCHECK would be gone), non-root, `run` by default."""
    (inspected,) = json.loads(podman("image", "inspect", image).stdout)
    config = inspected["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["python", "-m", "bot"]
    assert config["Cmd"] == ["run"]
    assert "/data" in config["Volumes"]
    assert "DATABASE_URL=sqlite:////data/sahel-watch.db" in config["Env"]
    assert "SAHEL_WATCH_MODEL_CACHE=/opt/sahel-watch/model" in config["Env"]  # prepared at build
    assert inspected["Healthcheck"]["Test"] == ["CMD", "python", "-m", "bot", "health"]
    help_run = podman("run", "--rm", *ULIMITS, image, "--help")
    for command in ("run", "health", "poll-once", "feeds", "db"):
        assert command in help_run.stdout


def test_container_smoke(image: str, container_name: str, tmp_path: Path) -> None:
    """/start answered, an alert delivered, healthy, and a clean stop on SIGTERM in time."""
    timings: dict[str, float] = {}
    with FeedServer() as feeds, BotApiServer(token=TOKEN) as api:
        feed_url = feeds.add("/wire.xml", body=rss([], title="Loopback wire"), etag=True)
        config = _config(tmp_path / "sahel-watch.toml", feed_url)
        started = time.monotonic()
        podman(
            "run", "--detach", "--name", container_name, "--network=host", *ULIMITS,
            "--volume", f"{config}:/config/sahel-watch.toml:ro",
            "--env", "SAHEL_WATCH_CONFIG=/config/sahel-watch.toml",
            "--env", f"TELEGRAM_BOT_TOKEN={TOKEN}",
            "--env", f"TELEGRAM_API_URL={api.base_url}",
            "--env", "LOG_LEVEL=DEBUG",
            "--env", "LOG_FORMAT=json",
            image,
        )  # fmt: skip
        box = Container(container_name)

        # A user says /start: the bot (inside the container) answers and subscribes them.
        # deleteWebhook is PTB's last call before long polling (a call is recorded when it
        # returns, so the first getUpdates would show only when its long poll ends).
        box.wait("polling to start", lambda: bool(api.calls("deleteWebhook")), timeout=90)
        api.send_text(CHAT, "/start")
        box.wait("/start reply", lambda: bool(api.sent(CHAT)), timeout=60)
        timings["/start answered"] = time.monotonic() - started  # includes the bot's start-up

        # A new development appears in the feed: the subscriber gets an alert.
        story = _fresh_story()
        feeds.set_body("/wire.xml", rss([story], title="Loopback wire"))
        before = time.monotonic()
        box.wait("alert", lambda: len(api.sent(CHAT)) >= 2, timeout=60)
        timings["alert delivered"] = time.monotonic() - before
        alert = api.sent(CHAT)[1]
        assert "Alliance of Sahel States opens joint air base" in alert.plain
        assert story["link"] in [href for _, href in alert.links] or story["link"] in alert.plain

        # The image's HEALTHCHECK (`python -m bot health`): a poll cycle finished just now.
        before = time.monotonic()
        health = podman("healthcheck", "run", container_name, check=False)
        timings["healthcheck run"] = time.monotonic() - before
        assert health.returncode == 0, (
            f"healthcheck failed: {health.stdout}{health.stderr}\n"
            f"{json.dumps(box.state().get('Health') or box.state().get('Healthcheck'))}"
        )

        # SIGTERM (podman stop): the app stops itself, well before podman's SIGKILL.
        before = time.monotonic()
        podman("stop", "--time", str(STOP_TIMEOUT), container_name, timeout=STOP_TIMEOUT + 30)
        stop_seconds = time.monotonic() - before
        timings["stop (SIGTERM)"] = stop_seconds

    state = box.state()
    log = box.logs()
    assert stop_seconds < STOP_TIMEOUT - 1, f"stop took {stop_seconds:.1f} s:\n{box.tail()}"
    assert state["ExitCode"] != 137, "killed by SIGKILL: SIGTERM was not handled"
    assert not state.get("OOMKilled")
    assert "Traceback" not in log, box.tail(120)
    assert TOKEN not in log, "the bot token reached the container log"
    # the model's token table prepared in the image is read by the unprivileged user
    assert "cannot be written" not in log and "embedding model loaded" in log, box.tail(120)
    timings["total"] = time.monotonic() - started
    print("\ncontainer smoke test timings:")
    for what, seconds in timings.items():
        print(f"  {what:<18} {seconds:6.1f} s")
