"""Chat commands end to end: the real PTB Application long-polls the Bot API test server and
answers from the real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.feeds.guard import IPAddress, is_public_address
from bot.settings import Settings
from bot.storage.models import Feed, PollRun, Subscriber
from bot.telegram import commands, replies
from bot.telegram.app import App, build_application, start_application, stop_application
from tests.servers import feedgen
from tests.servers.bot_api import BotApiServer, Limits, SentMessage
from tests.servers.bot_fixtures import ADMIN_ID
from tests.servers.feed_server import FeedServer


@pytest.fixture(autouse=True)
def _typing_fast(bot_api: BotApiServer) -> None:
    """Tests type faster than people: allow bursts per chat (test_replies_survive_a_429 aside)."""
    bot_api.set_limits(Limits(chat_burst=50))


async def ask(server: BotApiServer, chat_id: int, text: str, **options: object) -> SentMessage:
    """Send `text` as a user and return the bot's next message to that chat."""
    before = len(server.sent(chat_id))
    server.send_text(chat_id, text, **options)  # type: ignore[arg-type]
    messages = await asyncio.to_thread(server.wait_sent, chat_id, before + 1, 10.0)
    return messages[before]


async def silent(server: BotApiServer, chat_id: int, text: str, **options: object) -> None:
    """`text` gets no answer: the next message the chat gets is the answer to /help."""
    before = len(server.sent(chat_id))
    server.send_text(chat_id, text, **options)  # type: ignore[arg-type]
    reply = await ask(server, chat_id, "/help", **options)
    assert reply.plain.startswith("Sahel Watch commands")
    assert len(server.sent(chat_id)) == before + 1


def subscribers(engine: Engine) -> list[tuple[int, int, str, bool]]:
    with Session(engine) as session:
        rows = session.exec(select(Subscriber).order_by(col(Subscriber.id))).all()
        return [(s.chat_id, s.thread_id, s.chat_type, s.active) for s in rows]


async def test_commands_are_registered(running_bot: App, bot_api: BotApiServer) -> None:
    names = [c["command"] for c in bot_api.commands]
    assert names[:6] == ["start", "latest", "status", "sources", "subscribe", "unsubscribe"]
    assert {"language", "id"} <= set(names) and names[-1] == "help"
    french = bot_api.commands_for(language_code="fr")
    assert [c["command"] for c in french] == [replies.command(n).shown("fr") for n in names]
    assert {"dernieres", "statut", "abonner", "desabonner", "langue", "aide"} <= {
        c["command"] for c in french
    }
    assert french[-1]["description"] == "Comment utiliser le bot"
    assert sorted(language for _scope, language in bot_api.command_sets) == ["", "fr"]


async def test_start_welcomes_and_subscribes_once(
    running_bot: App, bot_api: BotApiServer, engine: Engine
) -> None:
    welcome = await ask(bot_api, 501, "/start")
    assert "The seed story, in one line" in welcome.plain
    assert "This chat is now subscribed" in welcome.plain
    assert welcome.parse_mode == "HTML"
    again = await ask(bot_api, 501, "/start")
    assert "already subscribed" in again.plain
    assert subscribers(engine) == [(501, 0, "private", True)]


async def test_subscribe_unsubscribe_and_stop_are_idempotent(
    running_bot: App, bot_api: BotApiServer, engine: Engine
) -> None:
    assert "Subscribed" in (await ask(bot_api, 502, "/subscribe")).plain
    assert "Already subscribed" in (await ask(bot_api, 502, "/subscribe")).plain
    assert "Unsubscribed" in (await ask(bot_api, 502, "/unsubscribe")).plain
    assert "was not subscribed" in (await ask(bot_api, 502, "/stop")).plain
    assert subscribers(engine) == [(502, 0, "private", False)]
    assert "Subscribed" in (await ask(bot_api, 502, "/subscribe")).plain
    assert "Unsubscribed" in (await ask(bot_api, 502, "/stop")).plain


async def test_latest_default_count_and_bad_arguments(
    running_bot: App, bot_api: BotApiServer, add_story: Callable[..., int]
) -> None:
    assert "No new developments yet" in (await ask(bot_api, 503, "/latest")).plain
    start = datetime.now(UTC) - timedelta(hours=7)
    for n in range(7):
        add_story(
            title=f"Development {n}",
            link=f"https://wire.test/{n}",
            created_at=start + timedelta(hours=n),
            summary=f"Summary of development {n}.",
        )
    add_story(title="Stale one", alerted=False)
    latest = await ask(bot_api, 503, "/latest")
    assert latest.plain.startswith("Latest 5 developments")
    order = [latest.plain.index(f"Development {n}") for n in (6, 5, 4, 3, 2)]
    assert order == sorted(order)
    assert "Development 1" not in latest.plain and "Stale one" not in latest.plain
    assert ("Development 6", "https://wire.test/6") in latest.links
    assert "Summary of development 6." in latest.plain
    two = await ask(bot_api, 503, "/latest 2")
    assert two.plain.startswith("Latest 2 developments") and "Development 4" not in two.plain
    for wrong in (
        "/latest abc",
        "/latest 0",
        "/latest 1 2",
        "/latest -3",
        "/latest ٣",
    ):
        answer = await ask(bot_api, 503, wrong)
        assert "is not a number from 1 to 20" in answer.plain, wrong


async def test_oversized_and_odd_arguments_get_the_usage_answer(
    running_bot: App, bot_api: BotApiServer
) -> None:
    for wrong, shown in (
        ("/latest 0005", "0005"),
        ("/latest 021", "021"),
        ("/latest " + "x" * 3000, "x" * 39 + "…"),
        ("/latest 𝟓", "𝟓"),  # a mathematical digit: isdecimal() but not ASCII
    ):
        answer = await ask(bot_api, 511, wrong)
        assert answer.plain == (
            f"“{shown}” is not a number from 1 to 20. Try /latest for the 5 newest "
            "developments, or /latest 10."
        ), wrong[:20]
    assert not any("went wrong" in m.plain for m in bot_api.sent(511))
    assert (await ask(bot_api, 511, "/latest 20")).plain.startswith("No new developments")


@pytest.fixture
async def bot_with_secret_feeds(
    engine: Engine, make_settings: Callable[..., Settings], bot_api: BotApiServer
) -> AsyncIterator[App]:
    """A running bot whose feed URLs carry keys and credentials, one feed without a name."""
    feeds = [
        {"url": "https://news.test/rss/africa?apikey=SECRET1&lang=fr", "name": "Keyed Wire"},
        {"url": "https://reader:SECRET2@feeds.test:8443/private/feed.xml", "name": "Members"},
        {"url": "https://unnamed.test/feed?token=SECRET3"},
    ]
    settings = make_settings(bot_api, feeds=feeds)
    application = build_application(settings, engine, seeds=("The seed story",))
    await start_application(application, settings)
    try:
        yield application
    finally:
        await stop_application(application)


async def test_sources_shows_hosts_to_everyone_and_no_secrets_to_anyone(
    bot_with_secret_feeds: App, bot_api: BotApiServer
) -> None:
    public = (await ask(bot_api, 512, "/sources")).plain
    assert public.splitlines()[1:] == [
        "⏳ Keyed Wire (en) — news.test",
        "⏳ Members (en) — feeds.test",
        "⏳ unnamed.test (en) — unnamed.test",
    ]
    admin = (await ask(bot_api, ADMIN_ID, "/sources")).plain
    assert admin.splitlines()[1:] == [
        "⏳ Keyed Wire (en) — https://news.test/rss/africa?apikey=…&lang=…",
        "⏳ Members (en) — https://feeds.test:8443/private/feed.xml",
        "⏳ unnamed.test (en) — https://unnamed.test/feed?token=…",
    ]
    stats = (await ask(bot_api, ADMIN_ID, "/stats")).plain
    for text in (public, admin, stats):
        assert "SECRET" not in text and "reader" not in text


async def test_status_reports_subscription_poll_feeds_and_day(
    running_bot: App, bot_api: BotApiServer, engine: Engine, add_story: Callable[..., int]
) -> None:
    now = datetime.now(UTC)
    with Session(engine) as session:
        session.add(
            PollRun(
                started_at=now - timedelta(seconds=305), finished_at=now - timedelta(seconds=300)
            )
        )
        session.add(Feed(url="http://127.0.0.1:9/feed.xml", name="Test Wire", last_status="error",
                         consecutive_failures=2, last_error="HTTP 500"))  # fmt: skip
        session.commit()
    before = await ask(bot_api, 504, "/status")
    assert "This chat: 🔕 not subscribed" in before.plain
    assert "Feeds: 0 healthy, 1 failing" in before.plain
    assert "(5 min. ago)" in before.plain
    await ask(bot_api, 504, "/subscribe")
    add_story(title="Today's news")
    after = await ask(bot_api, 504, "/status")
    assert "This chat: ✅ subscribed" in after.plain
    assert "Last 24 h: 1 new development, 0 alerts delivered here" in after.plain


async def test_help_and_sources(running_bot: App, bot_api: BotApiServer) -> None:
    help_text = (await ask(bot_api, 505, "/help")).plain
    for command in ("/start", "/latest", "/status", "/sources", "/subscribe", "/unsubscribe"):
        assert command in help_text
    assert "/stats" not in help_text
    sources = (await ask(bot_api, 505, "/sources")).plain
    assert "Feeds watched (1)" in sources and "Test Wire (en)" in sources


async def test_stats_is_for_admins_only(
    running_bot: App, bot_api: BotApiServer, add_story: Callable[..., int]
) -> None:
    await ask(bot_api, 506, "/start")
    add_story()
    refused = await ask(bot_api, 506, "/stats")
    assert refused.plain == "Sorry, /stats is for the bot's administrators."
    for command in ("/addfeed https://news.test/rss", "/removefeed Test Wire", "/feeds"):
        word = command.split()[0]
        assert (await ask(bot_api, 506, command)).plain == (
            f"Sorry, {word} is for the bot's administrators."
        )
    stats = await ask(bot_api, ADMIN_ID, "/stats")
    assert "Subscribers: 1 active, 0 inactive" in stats.plain
    assert "Deliveries: pending 1" in stats.plain
    assert "Test Wire" in stats.plain
    assert "/stats" in (await ask(bot_api, ADMIN_ID, "/help")).plain


async def test_unknown_commands_get_a_short_answer(running_bot: App, bot_api: BotApiServer) -> None:
    answer = await ask(bot_api, 507, "/frobnicate now")
    assert answer.plain == "I don't know /frobnicate. /help lists what I can do."
    plain_text = await ask(bot_api, 507, "/<b>&")
    assert "I don't know /<b>&" in plain_text.plain


async def test_group_commands_with_and_without_the_bot_name(
    running_bot: App, bot_api: BotApiServer, engine: Engine
) -> None:
    group = -600
    bot_api.add_chat(group, "group", title="Sahel desk")
    bot_api.set_admins(group, [42])  # only administrators (un)subscribe a group
    reply = await ask(bot_api, group, "/start@sahel_test_bot", user_id=42)
    assert "now subscribed" in reply.plain
    assert subscribers(engine) == [(group, 0, "group", True)]
    await silent(bot_api, group, "/unsubscribe@another_bot", user_id=42)
    await silent(bot_api, group, "/frobnicate", user_id=42)  # probably for another bot
    await silent(bot_api, group, "/frobnicate@another_bot", user_id=42)
    unknown = await ask(bot_api, group, "/frobnicate@sahel_test_bot", user_id=42)
    assert "I don't know /frobnicate" in unknown.plain
    assert subscribers(engine) == [(group, 0, "group", True)]


async def test_forum_topic_subscription_is_per_topic(
    running_bot: App, bot_api: BotApiServer, engine: Engine
) -> None:
    forum = -1006000
    bot_api.add_chat(forum, "supergroup", title="Newsroom", is_forum=True)
    bot_api.set_admins(forum, [42])
    reply = await ask(bot_api, forum, "/subscribe", user_id=42, thread_id=77)
    assert reply.thread_id == 77 and "Subscribed" in reply.plain
    status = await ask(bot_api, forum, "/status", user_id=42)  # General topic: not subscribed
    assert status.thread_id is None and "not subscribed" in status.plain
    assert subscribers(engine) == [(forum, 77, "supergroup", True)]


async def test_blocked_or_removed_bot_turns_the_chat_off(
    running_bot: App, bot_api: BotApiServer, engine: Engine
) -> None:
    await ask(bot_api, 508, "/start")
    when = int(datetime.now(UTC).timestamp())
    user = {"id": 508, "is_bot": False, "first_name": "U"}
    me = {"id": bot_api.bot_id, "is_bot": True, "first_name": "Bot", "username": bot_api.username}
    bot_api.inject_update({"my_chat_member": {
        "chat": {"id": 508, "type": "private", "first_name": "U"}, "from": user, "date": when,
        "old_chat_member": {"status": "member", "user": me},
        "new_chat_member": {"status": "kicked", "user": me, "until_date": 0},
    }})  # fmt: skip
    await asyncio.to_thread(bot_api.wait_updates_consumed)
    await asyncio.sleep(0.2)
    with Session(engine) as session:
        row = session.exec(select(Subscriber).where(Subscriber.chat_id == 508)).one()
        assert not row.active and row.deactivated_reason == "bot blocked by the user"


async def test_group_upgrade_moves_the_subscription(
    running_bot: App, bot_api: BotApiServer, engine: Engine
) -> None:
    bot_api.set_admins(-700, [42])
    await ask(bot_api, -700, "/subscribe", user_id=42)
    bot_api.inject_update({"message": {
        "message_id": 9, "date": int(datetime.now(UTC).timestamp()),
        "chat": {"id": -700, "type": "group", "title": "G"}, "migrate_to_chat_id": -1000700,
    }})  # fmt: skip
    await asyncio.to_thread(bot_api.wait_updates_consumed)
    await asyncio.sleep(0.2)
    assert subscribers(engine) == [(-1000700, 0, "supergroup", True)]


async def test_replies_survive_a_429(running_bot: App, bot_api: BotApiServer) -> None:
    bot_api.set_limits(Limits())
    bot_api.flood(times=1, retry_after=1, chat_id=509)
    answers = [await ask(bot_api, 509, "/help") for _ in range(5)]  # also past the 1/s burst
    assert all(a.plain.startswith("Sahel Watch commands") for a in answers)
    assert bot_api.rate_limited >= 1


# -- feeds managed from the chat ---------------------------------------------------------

FRENCH = [
    {
        "id": f"fr-{n}",
        "title": f"Le ministre de la santé visite les hôpitaux de la région {n}",
        "summary": "La visite a eu lieu dans le cadre de la campagne de vaccination.",
    }
    for n in range(3)
]


def use_policy(application: App, policy: Callable[[IPAddress], bool]) -> None:
    """What /addfeed counts as public (the running bot reads its deps at each command)."""
    found = application.bot_data[commands.DEPS]
    application.bot_data[commands.DEPS] = dataclasses.replace(found, address_policy=policy)


def stand_in_public(*public: str) -> Callable[[IPAddress], bool]:
    """The strict policy, with chosen loopback addresses standing in for public ones."""
    allowed = {ipaddress.ip_address(a) for a in public}
    return lambda address: address in allowed or is_public_address(address)


def chat_feeds(engine: Engine) -> list[tuple[str, str, str, str | None]]:
    with Session(engine) as session:
        rows = session.exec(select(Feed).where(Feed.source != "config").order_by(col(Feed.id)))
        return [(f.url, f.name, f.source, f.added_by) for f in rows]


async def test_an_admin_adds_lists_and_removes_a_feed(
    running_bot: App,
    bot_api: BotApiServer,
    engine: Engine,
    feed_server_factory: Callable[..., FeedServer],
) -> None:
    server = feed_server_factory(hosts=2)
    use_policy(running_bot, stand_in_public("127.0.0.2"))
    server.add("/fr.xml", feedgen.rss(FRENCH, title="Le Journal & Cie"))
    server.add("/page.html", b"<html><body>Not a feed</body></html>", content_type="text/html")
    url = server.url("/fr.xml", host=1)
    added = await ask(bot_api, ADMIN_ID, f"/addfeed {url} Journal du Sahel")
    assert added.plain == (
        f"✅ Added Journal du Sahel — {url}\n"
        "Found “Le Journal & Cie”: 3 entries, language fr. Polled from the next cycle."
    )
    assert "Le Journal &amp; Cie" in added.text  # escaped for Telegram's HTML
    assert chat_feeds(engine) == [
        (url, "Journal du Sahel", "chat", f"Telegram user {ADMIN_ID} in chat {ADMIN_ID}")
    ]
    again = await ask(bot_api, ADMIN_ID, f"/addfeed {url}")
    assert again.plain == (
        f"ℹ️ Already polled: {url}\nFound “Le Journal & Cie”: 3 entries, language fr."
    )
    unnamed = server.url("/fr.xml", host=1) + "?v=2"
    reply = await ask(bot_api, ADMIN_ID, f"/addfeed {unnamed} en")
    assert reply.plain.startswith("✅ Added Le Journal & Cie — ")  # its own title; en as asked
    assert "3 entries, language en" in reply.plain
    page = await ask(bot_api, ADMIN_ID, f"/addfeed {server.url('/page.html', host=1)}")
    assert page.plain.startswith("❌ Not added: ") and "\nnot a feed: " in page.plain
    listed = (await ask(bot_api, ADMIN_ID, "/feeds")).plain.splitlines()
    assert listed[0] == "Feeds polled (3)"
    assert listed[1] == "⏳ Test Wire [config] http://127.0.0.1:9/feed.xml"
    assert listed[2] == "    never, last poll never, 0 failures"
    assert listed[3] == f"⏳ Journal du Sahel [chat] {url}"
    sources = (await ask(bot_api, 520, "/sources")).plain  # everyone sees it, by host
    assert "Journal du Sahel (fr) — 127.0.0.2" in sources
    gone = await ask(bot_api, ADMIN_ID, "/removefeed journal du sahel")
    assert gone.plain == "🗑 Removed Journal du Sahel: it is no longer polled."
    config = await ask(bot_api, ADMIN_ID, "/removefeed Test Wire")
    assert config.plain == "Test Wire comes from the config file: the operator removes it there."
    missing = await ask(bot_api, ADMIN_ID, "/removefeed Journal du Sahel")
    assert missing.plain == "No added feed is called “Journal du Sahel”. /feeds lists them."
    assert [row[2] for row in chat_feeds(engine)] == ["removed", "chat"]
    assert "Journal du Sahel" not in (await ask(bot_api, ADMIN_ID, "/feeds")).plain
    usage = await ask(bot_api, ADMIN_ID, "/addfeed")
    assert usage.plain.startswith("Usage: /addfeed URL [name] [en|fr]")
    ftp = await ask(bot_api, ADMIN_ID, "/addfeed ftp://news.test/rss")
    assert ftp.plain.endswith("the address must start with http:// or https:// and name a host")


async def test_a_feed_added_from_a_chat_never_reaches_a_private_address(
    running_bot: App,
    bot_api: BotApiServer,
    engine: Engine,
    feed_server_factory: Callable[..., FeedServer],
) -> None:
    outside = feed_server_factory(hosts=2)  # 127.0.0.2 plays a public host
    inside = feed_server_factory()  # the private server: 127.0.0.1, another port
    inside.add("/secret.xml", feedgen.rss(FRENCH))
    port = inside.port
    use_policy(running_bot, stand_in_public("127.0.0.2"))
    assert running_bot.bot_data[commands.DEPS].settings.limits.allow_private_addresses
    not_public = "(not public)"
    metadata = "(cloud metadata or link-local)"
    targets = {
        "loopback": (f"http://127.0.0.1:{port}/secret.xml", "127.0.0.1", not_public),
        "name": (f"http://localhost:{port}/secret.xml", "", not_public),
        "ipv6": (f"http://[::1]:{port}/secret.xml", "::1", not_public),
        "mapped": (f"http://[::ffff:127.0.0.1]:{port}/secret.xml", "::ffff:7f00:1", not_public),
        "decimal": (f"http://2130706433:{port}/secret.xml", "127.0.0.1", not_public),
        "octal": (f"http://0177.0.0.1:{port}/secret.xml", "127.0.0.1", not_public),
        "hex": (f"http://0x7f.1:{port}/secret.xml", "127.0.0.1", not_public),
        "private": ("http://10.0.0.1/feed.xml", "10.0.0.1", not_public),
        "shared": ("http://100.64.0.1/feed.xml", "100.64.0.1", not_public),
        "metadata": ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", metadata),
        "link-local-v6": ("http://[fe80::1]/feed.xml", "fe80::1", metadata),
        "multicast": ("http://224.0.0.1/feed.xml", "224.0.0.1", not_public),
        "multicast-v6": ("http://[ff02::1]/feed.xml", "ff02::1", not_public),
        "reserved": ("http://240.0.0.1/feed.xml", "240.0.0.1", not_public),
        "unspecified": ("http://0.0.0.0/feed.xml", "0.0.0.0", not_public),
        "nat64": ("http://[64:ff9b::a00:1]/feed.xml", "64:ff9b::a00:1", not_public),
    }
    for key, (target, address, why) in list(targets.items())[:7]:  # and by a redirect
        hop = outside.add(f"/{key}", redirect_to=target).replace("127.0.0.1", "127.0.0.2")
        targets[f"redirect-{key}"] = (hop, address, why)
    for key, (url, address, why) in targets.items():
        reply = await ask(bot_api, ADMIN_ID, f"/addfeed {url}")
        assert reply.plain.startswith("❌ Not added: "), key
        refusal = reply.plain.splitlines()[1]
        assert refusal.startswith(f"refused address {address}"), (key, refusal)
        assert refusal.endswith(why), (key, refusal)
    assert inside.requests() == []  # nothing reached the private server
    assert len(outside.requests()) == 7  # each redirect was asked once, never followed
    assert chat_feeds(engine) == []


async def test_dns_that_changes_between_check_and_connect_is_refused(
    running_bot: App,
    bot_api: BotApiServer,
    engine: Engine,
    feed_server: FeedServer,
) -> None:
    """The name's first answer is "public", the next is not: the connect-time check holds.

    The policy plays a resolver whose second answer differs (what a rebinding DNS server
    does): the fetcher checks the name before the request, and the guarded transport
    resolves it again when it connects, checks that answer and connects to the address
    it checked.
    """
    feed_server.add("/secret.xml", feedgen.rss(FRENCH))
    asked: list[IPAddress] = []

    def public_once(address: IPAddress) -> bool:
        asked.append(address)
        return asked.count(address) == 1

    use_policy(running_bot, public_once)
    url = f"http://localhost:{feed_server.port}/secret.xml"
    reply = await ask(bot_api, ADMIN_ID, f"/addfeed {url}")
    assert reply.plain.startswith("❌ Not added: "), reply.plain
    assert reply.plain.splitlines()[1].startswith("refused address "), reply.plain
    assert reply.plain.endswith("(not public)")
    assert any(asked.count(a) == 2 for a in asked)  # checked again at connect time
    assert feed_server.requests() == []
    assert chat_feeds(engine) == []


async def test_latest_beyond_the_maximum_shows_twenty_and_says_so(
    running_bot: App, bot_api: BotApiServer, add_story: Callable[..., int]
) -> None:
    start = datetime.now(UTC) - timedelta(hours=30)
    for n in range(25):
        add_story(title=f"Development {n}", link=f"https://wire.test/{n}",
                  created_at=start + timedelta(hours=n), deliver=False)  # fmt: skip
    for asked in ("50", "9" * 5000):
        before = len(bot_api.sent(512))
        bot_api.send_text(512, f"/latest {asked}")
        await asyncio.to_thread(bot_api.wait_sent, 512, before + 1, 10.0)
        await asyncio.to_thread(bot_api.wait_updates_consumed)
        shown = "\n".join(m.plain for m in bot_api.sent(512)[before:])
        shown_asked = asked if len(asked) <= 12 else asked[:11] + "…"
        assert shown.startswith(
            f"Latest 20 developments\nYou asked for {shown_asked}; 20 is the most I show at once."
        )
        assert "Development 24" in shown and "Development 5" in shown
        assert "Development 4\n" not in shown


async def test_id_shows_the_chats_id_and_topic(running_bot: App, bot_api: BotApiServer) -> None:
    assert (await ask(bot_api, 513, "/id")).plain == "This chat's id: 513"
    group = -1001234
    reply = await ask(bot_api, group, "/id@" + (running_bot.bot.username or ""), user_id=9)
    assert reply.plain == f"This chat's id: {group}"
    bot_api.add_chat(group, chat_type="supergroup", is_forum=True)
    topic = await ask(bot_api, group, "/id", user_id=9, thread_id=77)
    assert topic.plain == f"This chat's id: {group}\nForum topic: 77"


async def test_plain_text_in_a_private_chat_gets_what_the_bot_is(
    running_bot: App, bot_api: BotApiServer
) -> None:
    reply = await ask(bot_api, 514, "hello, what are you?")
    assert reply.plain.startswith("I am Sahel Watch, a news alert bot")
    assert "/help lists what I can do, /start subscribes this chat." in reply.plain
    french = await ask(bot_api, 515, "bonjour", language_code="fr")
    assert french.plain.startswith("Je suis Sahel Watch, un bot d’alertes d’actualité")
    await silent(bot_api, -5140, "hello everyone", user_id=42)  # a group's talk is not for us


async def test_added_to_a_group_the_bot_introduces_itself(
    running_bot: App, bot_api: BotApiServer, engine: Engine
) -> None:
    bot_api.add_bot(-5150, by=42, chat_type="group", title="Sahel desk", language_code="fr")
    intro = (await asyncio.to_thread(bot_api.wait_sent, -5150, 1, 10.0))[0]
    assert intro.plain.startswith("Bonjour\u00a0! Je suis Sahel Watch\u00a0: j’envoie")
    assert "Un administrateur envoie /abonner pour recevoir les alertes ici" in intro.plain
    bot_api.add_bot(-1005160, by=43, chat_type="supergroup", title="Desk")
    intro = (await asyncio.to_thread(bot_api.wait_sent, -1005160, 1, 10.0))[0]
    assert intro.plain.startswith("Hello! I am Sahel Watch: I send a short alert")
    assert subscribers(engine) == []  # introduced, not subscribed: an admin decides
    # promoted to administrator where it already was: no second introduction
    bot_api.add_bot(-5150, by=42, status="administrator", language_code="fr")
    await silent(bot_api, -5150, "/nothing@another_bot", user_id=42)
    assert len(bot_api.sent(-5150)) == 2  # the introduction and /help's answer
