"""`python -m bot run` end to end: a child process, the loopback feed server, the Bot API test
server and a real database (SQLite and PostgreSQL). Slow: each test starts the bot."""

from __future__ import annotations

import json
import signal
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from bot.delivery.console import CURSOR
from bot.health import check_health
from bot.storage import cursors
from bot.storage.db import create_schema, make_engine
from bot.storage.models import Delivery, StoryCursor, Subscriber
from tests.servers.bot_api import BotApiServer, Limits
from tests.servers.bot_fixtures import insert_story, settings_for, subscribe_chats
from tests.servers.bot_process import REPO, BotProcess, write_config
from tests.servers.feed_server import FeedServer
from tests.servers.feedgen import rss

pytestmark = pytest.mark.slow

LABELLED = REPO.parent / "shared" / "data" / "labelled_items.json"
RSS = "application/rss+xml"


def labelled(*ids: str) -> dict[str, dict[str, Any]]:
    """Items of the labelled set, re-dated to now so that none is stale."""
    items = {it["id"]: it for it in json.loads(LABELLED.read_text(encoding="utf-8"))}
    now = datetime.now(UTC)
    return {
        i: {**items[i], "published": format_datetime(now - timedelta(minutes=n))}
        for n, i in enumerate(ids)
    }


def wait(check: Any, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met in {timeout} s")
        time.sleep(0.05)


def ask(server: BotApiServer, chat_id: int, text: str, timeout: float = 15.0) -> str:
    before = len(server.sent(chat_id))
    server.send_text(chat_id, text)
    return server.wait_sent(chat_id, before + 1, timeout)[before].plain


def deliveries(engine: Engine) -> list[Delivery]:
    with Session(engine) as session:
        return list(session.exec(select(Delivery)).all())


def test_a_new_development_alerts_once_and_noise_never(
    tmp_path: Path, feed_server: FeedServer, bot_api: BotApiServer, database_url: str
) -> None:
    items = labelled("dev-029", "dev-001", "dev-018", "dev-031")
    feed_server.add("/wire.xml", body=rss([]), content_type=RSS)
    feed_server.add("/world.xml", body=rss([]), content_type=RSS)
    feeds = [
        (feed_server.url("/wire.xml"), "Wire EN", "en"),
        (feed_server.url("/world.xml"), "World News", "en"),
    ]
    config = write_config(tmp_path, feeds=feeds)
    with BotProcess(tmp_path, config, database_url, api=bot_api, log_level="DEBUG") as bot:
        bot.wait_for("long polling as @sahel_test_bot")
        welcome = ask(bot_api, 1001, "/start")
        assert "now subscribed" in welcome and "Tin Zaouatine" in welcome
        feed_server.set_body(
            "/wire.xml", rss([items["dev-029"], items["dev-001"], items["dev-018"]])
        )
        [_, alert] = bot_api.wait_sent(1001, 2, timeout=30)
        assert alert.parse_mode == "HTML"
        assert alert.plain.startswith(items["dev-029"]["title"])
        assert (
            alert.links[0][1]
            == "https://www.panafricawire.test/africa/2025/09/05/mali-icj-algeria-drone"
        )
        assert "International Court of Justice" in alert.plain.split("\n", 2)[2]  # the summary
        assert "Wire EN · " in alert.plain
        feed_server.set_body("/world.xml", rss([items["dev-031"]]))  # the same news elsewhere
        wait(lambda: feed_server.hits("/world.xml") >= 3, what="three polls of the second feed")
        time.sleep(1.5)
        assert len(bot_api.sent(1001)) == 2  # the welcome and one alert: nothing more
        latest = ask(bot_api, 1001, "/latest")
        assert "Also reported by 1 outlet: World News" in latest
        assert ask(bot_api, 1001, "/latest abc").startswith("“abc” is not a number")
        assert "This chat: ✅ subscribed" in ask(bot_api, 1001, "/status")
        assert bot.stop() == 0
    logs = bot.output
    assert "stopped" in logs and "HTTP Request" not in logs
    assert bot_api.token not in logs and bot_api.token.split(":")[1] not in logs


def test_console_mode_prints_alerts_without_a_token(
    tmp_path: Path, feed_server: FeedServer, database_url: str
) -> None:
    items = labelled("dev-029", "dev-018")
    feed_server.add("/wire.xml", body=rss([items["dev-018"]]), content_type=RSS)
    config = write_config(tmp_path, feeds=[(feed_server.url("/wire.xml"), "Wire EN", "en")])
    with BotProcess(tmp_path, config, database_url) as bot:
        bot.wait_for("console mode")
        wait(lambda: feed_server.hits("/wire.xml") >= 1, what="a first poll")
        feed_server.set_body("/wire.xml", rss([items["dev-029"], items["dev-018"]]))
        bot.wait_for(items["dev-029"]["title"])
        assert bot.stop(signal.SIGINT) == 0
    printed = bot.stdout()
    assert printed.startswith("Sahel Watch is running in console mode")
    assert "<https://www.panafricawire.test/africa/2025/09/05/mali-icj-algeria-drone>" in printed
    assert printed.count(items["dev-029"]["title"]) == 1
    assert items["dev-018"]["title"] not in printed
    engine = make_engine(database_url)
    try:  # the console is no subscriber: no chat, no outbox row
        with Session(engine) as session:
            assert session.exec(select(func.count()).select_from(Subscriber)).one() == 0
            assert session.exec(select(func.count()).select_from(Delivery)).one() == 0
    finally:
        engine.dispose()


def cursor_row(engine: Engine) -> StoryCursor | None:
    with Session(engine) as session:
        return session.get(StoryCursor, CURSOR)


def test_a_run_with_a_token_drops_the_console_cursor(
    tmp_path: Path, bot_api: BotApiServer, database_url: str
) -> None:
    engine = make_engine(database_url)
    try:
        create_schema(engine)
        cursors.start(engine, CURSOR)  # a console run was here before
        config = write_config(tmp_path, feeds=[("http://127.0.0.1:9/none.xml", "None", "en")])
        with BotProcess(tmp_path, config, database_url, api=bot_api) as bot:
            wait(lambda: cursor_row(engine) is None, what="the console's cursor dropped")
            bot.wait_for("long polling as @sahel_test_bot")
            assert bot.stop() == 0
        insert_story(engine, title="Sent to Telegram meanwhile")
        assert cursors.start(engine, CURSOR) > 0  # a later console run starts fresh
        assert cursors.pending(engine, CURSOR, 10).stories == ()
    finally:
        engine.dispose()


def test_a_rejected_token_is_a_clear_error_without_the_token(
    tmp_path: Path, bot_api: BotApiServer, database_url: str
) -> None:
    config = write_config(tmp_path, feeds=[("http://127.0.0.1:9/none.xml", "None", "en")])
    wrong = "999999:WRONG-secret-token-value-AAAAAAAAAAAA"
    bot = BotProcess(tmp_path, config, database_url, api=bot_api, token=wrong).start()
    assert bot.process is not None
    assert bot.process.wait(timeout=60) == 2
    assert "TELEGRAM_BOT_TOKEN was rejected by the Bot API" in bot.output
    assert "WRONG-secret" not in bot.output and "Traceback" not in bot.output


def broadcast_setup(engine: Engine, bot_api: BotApiServer, subscribers: int) -> list[int]:
    chats = list(range(20_000, 20_000 + subscribers))
    subscribe_chats(engine, chats)
    insert_story(engine, title="Broadcast story", link="https://wire.test/broadcast")
    bot_api.set_delay("sendMessage", 0.05)  # a request takes 50 ms: some are always in flight
    return chats


def test_sigkill_mid_broadcast_then_restart_delivers_each_alert_once(
    tmp_path: Path, bot_api: BotApiServer, database_url: str, engine: Engine
) -> None:
    chats = broadcast_setup(engine, bot_api, 200)
    config = write_config(tmp_path, feeds=[("http://127.0.0.1:9/none.xml", "None", "en")])
    bot = BotProcess(tmp_path, config, database_url, api=bot_api)
    with bot:
        wait(lambda: len(bot_api.sent()) >= 70, timeout=60, what="70 messages sent")
        bot.kill()
    states = [d.state for d in deliveries(engine)]
    accepted = len(bot_api.sent())
    # the window: sends Telegram accepted that the database had not recorded when we died
    unrecorded = accepted - states.count("sent")
    assert states.count("pending") + states.count("sending") > 0
    with bot.start():
        wait(lambda: all(d.state == "sent" for d in deliveries(engine)), timeout=60,
             what="every delivery sent after the restart")  # fmt: skip
        assert bot.stop() == 0
    per_chat = {chat: len(bot_api.sent(chat)) for chat in chats}
    duplicates = sum(n - 1 for n in per_chat.values())
    print(f"\nSIGKILL after {accepted} of 200 messages: {unrecorded} accepted but unrecorded, "
          f"{duplicates} duplicate(s) after the restart")  # fmt: skip
    assert min(per_chat.values()) == 1  # nobody missed the alert
    assert duplicates == unrecorded  # exactly the documented window, nothing else
    assert unrecorded <= 4  # ~1.5 requests of 50 ms on the wire at 29/s, plus the commit
    assert bot_api.rate_limited == 0, bot_api.rate_limited_by


def test_sigterm_mid_broadcast_leaves_nothing_half_done(
    tmp_path: Path, bot_api: BotApiServer, database_url: str, engine: Engine
) -> None:
    chats = broadcast_setup(engine, bot_api, 120)
    config = write_config(tmp_path, feeds=[("http://127.0.0.1:9/none.xml", "None", "en")])
    bot = BotProcess(tmp_path, config, database_url, api=bot_api)
    with bot:
        wait(lambda: len(bot_api.sent()) >= 40, timeout=60, what="40 messages sent")
        assert bot.stop() == 0
    rows = deliveries(engine)
    assert "sending" not in {d.state for d in rows}
    assert sum(d.state == "sent" for d in rows) == len(bot_api.sent())  # every send recorded
    assert sum(d.state == "pending" for d in rows) > 0
    with bot.start():
        wait(lambda: all(d.state == "sent" for d in deliveries(engine)), timeout=60,
             what="the rest delivered")  # fmt: skip
        assert bot.stop() == 0
    assert sorted(m.chat_id for m in bot_api.sent()) == chats  # exactly once each


def test_blocked_chat_and_429_flood_in_the_running_bot(
    tmp_path: Path, bot_api: BotApiServer, database_url: str, engine: Engine
) -> None:
    bot_api.set_limits(Limits())
    subscribe_chats(engine, [30_001, 30_002, 30_003])
    bot_api.block(30_002)
    bot_api.flood(times=4, retry_after=1)
    insert_story(engine, title="Flood story", link="https://wire.test/flood")
    config = write_config(tmp_path, feeds=[("http://127.0.0.1:9/none.xml", "None", "en")])
    with BotProcess(tmp_path, config, database_url, api=bot_api) as bot:
        wait(lambda: all(d.state in ("sent", "skipped") for d in deliveries(engine)), timeout=60,
             what="deliveries settled")  # fmt: skip
        assert bot.stop() == 0
    assert [len(bot_api.sent(c)) for c in (30_001, 30_002, 30_003)] == [1, 0, 1]
    assert sorted(d.state for d in deliveries(engine)) == ["sent", "sent", "skipped"]


def test_webhook_mode(
    tmp_path: Path, bot_api: BotApiServer, database_url: str, unused_tcp_port: int
) -> None:
    pytest.importorskip("tornado")
    hook = f"http://127.0.0.1:{unused_tcp_port}/telegram-hook"
    extra = (
        f'[telegram]\nmode = "webhook"\nwebhook_url = "{hook}"\n'
        f'webhook_listen = "127.0.0.1"\nwebhook_port = {unused_tcp_port}\n'
    )
    config = write_config(tmp_path, feeds=[("http://127.0.0.1:9/none.xml", "None", "en")],
                          extra=extra)  # fmt: skip
    with BotProcess(tmp_path, config, database_url, api=bot_api) as bot:
        bot.wait_for("webhook on 127.0.0.1")
        assert "now subscribed" in ask(bot_api, 1201, "/start")
        assert bot.stop() == 0
    [call] = bot_api.calls("setWebhook")
    assert call.params["url"] == hook and len(call.params["secret_token"]) == 64
    assert bot_api.token not in call.params["secret_token"]


UPDATES_FAST = "[telegram]\nupdates_lease_seconds = 4\n"  # long polls of 1 s, renewed every 1 s


def health_of(database_url: str) -> tuple[bool, str]:
    settings = settings_for(database_url, poll_interval=60, telegram={"updates_lease_seconds": 4})
    return check_health(settings)


def test_a_token_refused_on_get_updates_ends_the_run_with_one_line(
    tmp_path: Path, bot_api: BotApiServer, database_url: str
) -> None:
    config = write_config(tmp_path, feeds=[("http://127.0.0.1:9/none.xml", "None", "en")],
                          poll_interval=60, extra=UPDATES_FAST)  # fmt: skip
    bot = BotProcess(tmp_path, config, database_url, api=bot_api, log_level="DEBUG").start()
    with bot:
        bot.wait_for("long polling as @sahel_test_bot")
        wait(lambda: health_of(database_url)[0], what="healthy while polling")
        bot_api.fail("getUpdates", status=401, description="Unauthorized")
        assert bot.process is not None
        assert bot.process.wait(timeout=30) == 1
    lines = [line for line in bot.output.splitlines() if "refused the bot token" in line]
    assert len(lines) == 1 and "HTTP 401" in lines[0], bot.output[-3000:]
    assert "Traceback" not in bot.output and "Invalid token" not in bot.output
    assert bot_api.token not in bot.output and bot_api.token.split(":")[1] not in bot.output
    healthy, line = health_of(database_url)
    assert not healthy and "refused the bot token on getUpdates" in line


def test_get_updates_failing_for_a_while_is_unhealthy_then_recovers(
    tmp_path: Path, bot_api: BotApiServer, database_url: str
) -> None:
    config = write_config(tmp_path, feeds=[("http://127.0.0.1:9/none.xml", "None", "en")],
                          poll_interval=60, extra=UPDATES_FAST)  # fmt: skip
    with BotProcess(tmp_path, config, database_url, api=bot_api) as bot:
        bot.wait_for("long polling as @sahel_test_bot")
        wait(lambda: health_of(database_url)[0], what="healthy while polling")
        bot_api.fail("getUpdates", status=502, description="Bad Gateway", times=5)
        wait(lambda: "getUpdates has not answered" in health_of(database_url)[1],
             what="unhealthy while getUpdates fails")  # fmt: skip
        wait(lambda: health_of(database_url)[0], what="healthy again", timeout=60)
        assert "now subscribed" in ask(bot_api, 1301, "/start")  # commands work, no restart
        assert bot.process is not None and bot.process.poll() is None
        assert bot.stop() == 0
    assert bot.output.count("getUpdates failed (NetworkError: Bad Gateway); retrying") == 5
