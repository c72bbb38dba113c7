"""Two `python -m bot run` replicas on one PostgreSQL database, with the loopback feed server
and the Bot API test server: each feed polled once per interval, each alert delivered once
to each subscriber, one reader of Telegram updates at a time, a takeover when that reader
is killed, and a broadcast by both at once kept under Telegram's 30 messages/s.

Each replica reaches the Bot API through its own root (`/a`, `/b`: the same API, recorded
per call as `via`), which is how the test tells whose getUpdates calls it sees. Slow.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.run import UPDATES_LEASE
from bot.storage.db import create_schema, make_engine
from bot.storage.models import Delivery, Lease, PollRun
from tests.servers.bot_api import BotApiServer
from tests.servers.bot_fixtures import insert_story, subscribe_chats
from tests.servers.bot_process import BotProcess, write_config
from tests.servers.feed_server import FeedServer
from tests.servers.feedgen import rss
from tests.test_run_e2e import RSS, labelled, wait

pytestmark = pytest.mark.slow

INTERVAL = 1.0  # poll_interval
LEASE_TTL = 4.0  # telegram.updates_lease_seconds: replicas look for a free lease every 1 s
FEEDS = ("/a.xml", "/b.xml", "/c.xml")
SUBSCRIBERS = [5001, 5002, 5003, 5004]


class RecordingFeeds:
    """Feeds whose every fetch is timed; their content can change."""

    def __init__(self, server: FeedServer) -> None:
        self.server = server
        self.hits: dict[str, list[float]] = defaultdict(list)
        self.bodies = {path: rss([]) for path in FEEDS}
        for path in FEEDS:
            server.add(path, body=self._serve(path), content_type=RSS)

    def _serve(self, path: str) -> Callable[[int], bytes]:
        def body(_hit: int) -> bytes:
            self.hits[path].append(time.monotonic())
            return self.bodies[path]

        return body

    def publish(self, path: str, *items: dict[str, Any]) -> None:
        self.bodies[path] = rss(list(items))

    def between(self, path: str, start: float, end: float) -> list[float]:
        return [t for t in self.hits[path] if start <= t <= end]


def replica(tmp_path: Path, config: Path, url: str, api: BotApiServer, tag: str) -> BotProcess:
    bot = BotProcess(tmp_path, config, url, api=api, tag=tag)
    bot.env["TELEGRAM_API_URL"] = api.url_via(tag)
    return bot


def pid(bot: BotProcess) -> int:
    assert bot.process is not None
    return bot.process.pid


def lease_holder_pid(engine: Engine) -> int | None:
    with Session(engine) as session:
        lease = session.get(Lease, UPDATES_LEASE)
        return None if lease is None else int(lease.owner.split("|")[2])


def alerts(api: BotApiServer, chat_id: int, title: str) -> int:
    return sum(m.plain.startswith(title) for m in api.sent(chat_id))


def ask(api: BotApiServer, chat_id: int, text: str, timeout: float) -> str:
    before = len(api.sent(chat_id))
    api.send_text(chat_id, text)
    return api.wait_sent(chat_id, before + 1, timeout)[before].plain


def test_two_replicas_share_the_work_and_take_over_updates(
    tmp_path: Path, feed_server: FeedServer, bot_api: BotApiServer, pg_url: str
) -> None:
    items = labelled("dev-029", "dev-034")
    first, second = items["dev-029"]["title"], items["dev-034"]["title"]
    feeds = RecordingFeeds(feed_server)
    engine = make_engine(pg_url)
    create_schema(engine)
    subscribe_chats(engine, SUBSCRIBERS)
    config = write_config(
        tmp_path,
        feeds=[(feed_server.url(path), f"Wire {path[1]}", "en") for path in FEEDS],
        poll_interval=INTERVAL,
        extra=f"[telegram]\nupdates_lease_seconds = {LEASE_TTL}\n",
    )
    a = replica(tmp_path, config, pg_url, bot_api, "a")
    b = replica(tmp_path, config, pg_url, bot_api, "b")
    try:
        with a, b:
            a.wait_for("running: polling 3 feeds")
            b.wait_for("running: polling 3 feeds")
            wait(lambda: lease_holder_pid(engine) is not None, what="an updates reader")
            both_running = time.monotonic()
            by_pid = {pid(a): a, pid(b): b}
            holder = by_pid[lease_holder_pid(engine) or 0]
            other = b if holder is a else a
            tag = {a: "a", b: "b"}

            # commands are answered (once: one reader), alerts reach every subscriber once
            assert "now subscribed" in ask(bot_api, 5005, "/start", timeout=15)
            feeds.publish("/a.xml", items["dev-029"])
            for chat in [*SUBSCRIBERS, 5005]:
                bot_api.wait_sent(chat, 1 if chat != 5005 else 2, timeout=20)
            # >= 8 polls per feed; the kill falls between two of the survivor's lease checks
            time.sleep(max(0.0, both_running + 8.5 - time.monotonic()))

            # SIGKILL the reader of updates: the other replica answers, and still alerts
            holder.kill()
            killed = time.monotonic()
            answer = ask(bot_api, 6001, "/start", timeout=60)
            took_over = time.monotonic() - killed
            assert "now subscribed" in answer
            assert lease_holder_pid(engine) == pid(other)
            feeds.publish("/b.xml", items["dev-034"])
            everyone = [*SUBSCRIBERS, 5005, 6001]
            wait(lambda: all(alerts(bot_api, c, second) for c in everyone), timeout=20,
                 what="the second alert to every subscriber")  # fmt: skip
            time.sleep(INTERVAL * 1.5)  # room for a duplicate to show up, if there were one
            assert other.stop() == 0
        stopped = time.monotonic()

        # every alert exactly once to every subscriber
        for chat in [*SUBSCRIBERS, 5005]:
            assert (alerts(bot_api, chat, first), alerts(bot_api, chat, second)) == (1, 1), chat
        assert alerts(bot_api, 6001, second) == 1 and alerts(bot_api, 6001, first) == 0
        with Session(engine) as session:
            states = session.exec(select(Delivery.state)).all()
            assert sorted(states) == ["sent"] * 11
            assert session.get(Lease, UPDATES_LEASE) is None  # released at the clean stop

        # one reader of updates at a time: the holder until it died, then the other
        polls = bot_api.calls("getUpdates")
        before = {c.via for c in polls if c.began < killed}
        after = {c.via for c in polls if c.began > killed}
        assert before == {tag[holder]} and after == {tag[other]}

        # each feed polled once per interval, by one replica or the other
        for path in FEEDS:
            hits = feeds.between(path, both_running, killed)
            gaps = [later - earlier for earlier, later in itertools.pairwise(hits)]
            # a feed polled by both replicas would show two hits a few ms apart; a loaded
            # machine delays a request after its claim by a few tenths, so a gap may shrink
            assert len(hits) >= 4 and min(gaps) >= 0.3 * INTERVAL, (path, gaps)
            assert max(gaps) <= 2.5 * INTERVAL, (path, gaps)  # and polled every interval
        with Session(engine) as session:
            recorded = session.exec(select(func.sum(PollRun.feeds_polled))).one()
        fetched = sum(len(feeds.hits[path]) for path in FEEDS)
        assert 0 <= fetched - int(recorded or 0) <= len(FEEDS)  # the killed cycle, at most
        print(
            f"\ntwo replicas: {fetched} fetches of {len(FEEDS)} feeds in "
            f"{stopped - both_running:.1f} s, updates taken over {took_over:.1f} s after SIGKILL"
        )
    finally:
        engine.dispose()


def test_two_replicas_broadcast_together_under_telegrams_limit(
    tmp_path: Path, bot_api: BotApiServer, pg_url: str
) -> None:
    """Both `run` processes send one alert to 240 chats through one server enforcing 30/s:
    together under the limit (no 429), each chat once, and both replicas sending."""
    chats = list(range(15_000, 15_240))
    engine = make_engine(pg_url)
    create_schema(engine)
    subscribe_chats(engine, chats)
    config = write_config(tmp_path, feeds=[("http://127.0.0.1:9/none.xml", "None", "en")])
    a = replica(tmp_path, config, pg_url, bot_api, "a")
    b = replica(tmp_path, config, pg_url, bot_api, "b")
    try:
        with a, b:
            a.wait_for("running: polling 1 feeds")
            b.wait_for("running: polling 1 feeds")
            insert_story(engine, title="Broadcast by two replicas", link="https://wire.test/two")
            wait(lambda: delivered(engine) == len(chats), timeout=90, what="every row sent")
            assert a.stop() == 0 and b.stop() == 0
        assert bot_api.rate_limited == 0, bot_api.rate_limited_by
        assert sorted(m.chat_id for m in bot_api.sent()) == chats
        sends = [c for c in bot_api.calls("sendMessage") if c.status == 200]
        by_replica = {tag: sum(c.via == tag for c in sends) for tag in ("a", "b")}
        assert min(by_replica.values()) > 20, by_replica
    finally:
        engine.dispose()


def delivered(engine: Engine) -> int:
    with Session(engine) as session:
        return len(session.exec(select(Delivery.id).where(Delivery.state == "sent")).all())
