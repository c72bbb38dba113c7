"""Digests (bot/delivery/digest.py, bot/storage/digests.py): a digest chat's alerts held, folded
at the period's end into one digest grouped by topic, newest first, split cleanly at 4096
characters, delivered once (across a kill -9 too), a part Telegram does not answer at most
twice (across a restart too); an empty period sends nothing. Through the
real PTB client and the Bot API test server, on SQLite and PostgreSQL, with an injected
clock."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot import metrics
from bot.delivery.digest import Digests, render_digest
from bot.i18n import Voice, translator
from bot.owners import make_owner
from bot.records import Entry
from bot.settings import Settings
from bot.storage import items, outbox, subscribers
from bot.storage.digests import DigestStory
from bot.storage.models import Delivery, Digest, Story, Subscriber
from bot.telegram.app import App, build_application, sender_for
from bot.telegram.render import utf16_len
from bot.topics import TOPICS
from tests.servers.bot_api import BotApiServer
from tests.servers.bot_fixtures import subscribe_chats
from tests.servers.bot_process import BotProcess, write_config

NOW = datetime(2026, 3, 10, 6, 0, tzinfo=UTC)  # 07:00 in Algiers (UTC+1)


def digest_chat(engine: Engine, chat_id: int, **values: Any) -> int:
    """A chat reading a daily digest at 07:00 Algiers time, due at NOW."""
    subscribe_chats(engine, [chat_id])
    settings: dict[str, Any] = {
        "delivery_mode": "daily", "digest_at": 7 * 60, "timezone": "Africa/Algiers",
        "next_digest_at": NOW, **values,
    }  # fmt: skip
    with Session(engine) as session:
        session.execute(
            update(Subscriber).where(col(Subscriber.chat_id) == chat_id).values(**settings)
        )
        session.commit()
        found = session.exec(select(Subscriber.id).where(Subscriber.chat_id == chat_id)).one()
        assert found is not None
        return found


def add_story(
    engine: Engine, title: str, *, topics: str = "", at: datetime, summary: str = ""
) -> int:
    with Session(engine) as session:
        story = Story(
            created_at=at, title=title, link=f"https://wire.test/{abs(hash(title))}",
            feed_name="Wire", outlet="Le Wire", summary=summary or f"{title}: what happened.",
            published=at, topics=topics,
        )  # fmt: skip
        session.add(story)
        session.flush()
        assert story.id is not None
        for subscriber_id in session.exec(
            select(Subscriber.id).where(col(Subscriber.active).is_(True))
        ).all():
            assert subscriber_id is not None
            session.add(Delivery(story_id=story.id, subscriber_id=subscriber_id,
                                 next_attempt_at=at, created_at=at))  # fmt: skip
        session.commit()
        return story.id


def hold(engine: Engine, now: datetime) -> None:
    """What the deliverer does first: digest chats' alerts held, instant ones claimed."""
    claimed = outbox.claim(engine, owner="test-holder", limit=1000, lease_seconds=30, now=now)
    outbox.release(engine, [c.delivery_id for c in claimed], owner="test-holder")


def digest_rows(engine: Engine) -> list[Digest]:
    with Session(engine) as session:
        return list(session.exec(select(Digest).order_by(col(Digest.id))).all())


def delivery_states(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return sorted(d.state for d in session.exec(select(Delivery)).all())


def digester(engine: Engine, app: App, clock: Callable[[], datetime]) -> Digests:
    return Digests(engine, sender_for(app), owner=make_owner(), clock=clock)


async def test_a_digest_groups_the_periods_stories_by_topic_newest_first_once(
    engine: Engine, ptb_app: App, bot_api: BotApiServer
) -> None:
    digest_chat(engine, 801)
    night = NOW - timedelta(hours=8)
    add_story(engine, "Convoy attacked near Gao", topics="security", at=night)
    add_story(
        engine, "Algiers recalls its ambassador", topics="diplomacy", at=night + timedelta(hours=1)
    )
    add_story(
        engine, "Second attack on the convoy", topics="security", at=night + timedelta(hours=2)
    )
    add_story(engine, "Note <b>unclassified</b> & more", at=night + timedelta(hours=3))
    hold(engine, night + timedelta(hours=4))
    assert delivery_states(engine) == ["held"] * 4
    now = [NOW - timedelta(minutes=1)]
    job = digester(engine, ptb_app, lambda: now[0])
    await job.run_once()
    assert bot_api.sent(801) == [] and digest_rows(engine) == []  # not due yet

    now[0] = NOW + timedelta(seconds=20)
    await job.run_once()
    [message] = bot_api.sent(801)
    text = message.plain
    assert "4 new developments" in text
    assert "5 hr. ago" in text and "8 hr. ago" in text  # the time since, beside each date
    relations = text.index("Algeria–AES relations")
    security = text.index("Security")
    other = text.index("Other news")
    assert relations < security < other  # topics in the menu's order
    assert text.index("Second attack on the convoy") < text.index("Convoy attacked near Gao")
    assert "Note <b>unclassified</b> & more" in text  # escaped, shown as written
    assert message.params.get("disable_notification") is None
    [row] = digest_rows(engine)
    assert (row.state, row.parts_sent, row.period_end) == ("sent", 1, NOW)
    assert delivery_states(engine) == ["digested"] * 4
    with Session(engine) as session:
        chat = session.exec(select(Subscriber).where(Subscriber.chat_id == 801)).one()
        assert chat.next_digest_at == NOW + timedelta(days=1)  # tomorrow, 07:00 Algiers

    now[0] = NOW + timedelta(hours=1)
    await job.run_once()
    assert len(bot_api.sent(801)) == 1  # delivered once


async def test_an_empty_period_sends_nothing(
    engine: Engine, ptb_app: App, bot_api: BotApiServer
) -> None:
    digest_chat(engine, 811)
    digest_chat(engine, 812, delivery_mode="digest", digest_hours=6)
    job = digester(engine, ptb_app, lambda: NOW + timedelta(seconds=5))
    tally = await job.run_once()
    assert bot_api.sent() == [] and digest_rows(engine) == []
    assert tally.empty == 2
    with Session(engine) as session:
        due = sorted(
            s.next_digest_at for s in session.exec(select(Subscriber)).all() if s.next_digest_at
        )
    assert due == [NOW + timedelta(hours=5), NOW + timedelta(days=1)]  # 12:00 and 07:00 local


async def test_a_long_digest_is_split_cleanly_at_4096(
    engine: Engine, ptb_app: App, bot_api: BotApiServer
) -> None:
    digest_chat(engine, 821, language="fr")
    titles = [f"Story number {n:02d} about the border" for n in range(30)]
    for n, title in enumerate(titles):
        add_story(engine, title, topics=("security", "politics", "economy")[n % 3],
                  at=NOW - timedelta(hours=20, minutes=-n), summary="Détails " * 60)  # fmt: skip
    hold(engine, NOW - timedelta(hours=1))
    await digester(engine, ptb_app, lambda: NOW + timedelta(seconds=5)).run_once()
    parts = bot_api.sent(821)
    assert len(parts) >= 3
    for part in parts:
        assert utf16_len(part.text) <= 4096
    shown = "\n".join(p.plain for p in parts)
    for title in titles:  # every story once, none cut in two
        assert shown.count(title) == 1
        assert any(title in p.plain for p in parts)
    assert "mars 2026" in shown  # dates in the chat's language
    labels = {"Sécurité", "Politique et gouvernance", "Économie et ressources"}
    assert {translator("fr").gettext(t.label) for t in TOPICS[1:4]} == labels
    starts = [p.plain.splitlines()[0] for p in parts[1:]]  # every part says its topic
    continued = {f"{label} (suite)" for label in labels}
    assert all(first in labels | continued for first in starts), starts
    assert any(first in continued for first in starts), starts  # a topic across a cut
    [row] = digest_rows(engine)
    assert (row.state, row.parts_sent) == ("sent", len(parts))


def test_a_part_that_starts_inside_a_topic_repeats_its_heading() -> None:
    stories = [
        DigestStory(n, f"Title {n}", f"https://w.test/{n}", "Outlet", NOW - timedelta(hours=n),
                    "y " * 300, ("security", "humanitarian")[n // 6])
        for n in range(12)
    ]  # fmt: skip
    since = NOW - timedelta(days=1)
    parts = render_digest(stories, Voice("en", "UTC"), since=since, now=NOW, limit=1400)
    assert len(parts) >= 4 and all(utf16_len(p) <= 1400 for p in parts)
    firsts = [p.split("\n")[0] for p in parts]
    assert firsts[0] == "<b>Sahel Watch digest</b>: 12 new developments"
    headings = [line for p in parts for line in p.split("\n") if line in (
        "<b>Security</b>", "<b>Humanitarian</b>",
        "<b>Security (continued)</b>", "<b>Humanitarian (continued)</b>",
    )]  # fmt: skip
    assert headings[0] == "<b>Security</b>" and headings.count("<b>Security</b>") == 1
    assert headings.count("<b>Humanitarian</b>") == 1
    for part, first in zip(parts[1:], firsts[1:], strict=True):  # each part names its topic
        assert first in headings and part.split("\n")[1].startswith("• <b>"), part[:80]
    assert "<b>Security (continued)</b>" in firsts[1:]
    assert "<b>Humanitarian (continued)</b>" in firsts[1:]
    assert sum(p.count("https://w.test/") for p in parts) == 12
    parts_fr = render_digest(stories, Voice("fr", "UTC"), since=since, now=NOW, limit=1400)
    assert "<b>Sécurité (suite)</b>" in [p.split("\n")[0] for p in parts_fr]


async def test_quiet_hours_then_a_chat_leaving_digests_gets_its_held_alerts_at_once(
    engine: Engine, ptb_app: App, bot_api: BotApiServer
) -> None:
    chat = digest_chat(engine, 831)
    add_story(engine, "Held alert", at=NOW - timedelta(hours=3))
    hold(engine, NOW - timedelta(hours=2))
    with Session(engine) as session:  # the chat switches to alerts as they come
        session.execute(
            update(Subscriber).where(col(Subscriber.id) == chat).values(delivery_mode="instant")
        )
        session.commit()
    await digester(engine, ptb_app, lambda: NOW - timedelta(hours=1)).run_once()
    [message] = bot_api.sent(831)
    assert "Held alert" in message.plain
    assert delivery_states(engine) == ["digested"]


def test_the_pipelines_outbox_holds_a_digest_chats_alert_from_the_start(engine: Engine) -> None:
    digest_chat(engine, 851)
    subscribe_chats(engine, [852])
    entry = Entry("https://wire.test/feed", "Wire", "g1", "Border closed", "Text.",
                  "https://wire.test/b", NOW, "en")  # fmt: skip
    with Session(engine) as session:
        items.add_story(session, entry, summary="", alerted=True, now=NOW)
        session.commit()
    with Session(engine) as session:
        states = {
            chat: state
            for chat, state in session.exec(
                select(Subscriber.chat_id, Delivery.state).join(
                    Delivery, col(Delivery.subscriber_id) == col(Subscriber.id)
                )
            ).all()
        }
    assert states == {851: "held", 852: "pending"}  # never claimed, never in an alert's way


async def test_unsubscribing_skips_what_was_held_for_the_digest(
    engine: Engine, ptb_app: App, bot_api: BotApiServer
) -> None:
    digest_chat(engine, 861)
    add_story(engine, "Held, then unsubscribed", at=NOW - timedelta(hours=2))
    hold(engine, NOW - timedelta(hours=1))
    assert subscribers.unsubscribe(engine, 861)
    assert delivery_states(engine) == ["skipped"]
    assert subscribers.subscribe(engine, subscribers.Chat(861))  # back the next day
    await digester(engine, ptb_app, lambda: NOW + timedelta(days=1, seconds=5)).run_once()
    assert bot_api.sent(861) == [] and digest_rows(engine) == []  # no stale digest


async def test_two_replicas_fold_and_send_a_period_once(
    engine: Engine, ptb_app: App, bot_api: BotApiServer
) -> None:
    for chat in (871, 872, 873):
        digest_chat(engine, chat)
        add_story(engine, f"Story for {chat}", at=NOW - timedelta(hours=2))
    hold(engine, NOW - timedelta(hours=1))
    one, two = (digester(engine, ptb_app, lambda: NOW + timedelta(seconds=5)) for _ in range(2))
    await asyncio.gather(one.run_once(), two.run_once())
    assert sorted(m.chat_id for m in bot_api.sent()) == [871, 872, 873]
    assert len(digest_rows(engine)) == 3
    assert one.tally.sent + two.tally.sent == 3


async def test_flood_control_delays_a_digest_without_counting_an_attempt(
    engine: Engine, ptb_app: App, bot_api: BotApiServer
) -> None:
    digest_chat(engine, 881)
    add_story(engine, "Flooded digest", at=NOW - timedelta(hours=2))
    hold(engine, NOW - timedelta(hours=1))
    bot_api.flood(times=1, retry_after=1)
    now = [NOW + timedelta(seconds=5)]
    job = digester(engine, ptb_app, lambda: now[0])
    await job.run_once()
    [row] = digest_rows(engine)
    assert (row.state, row.attempts, bot_api.sent(881)) == ("pending", 0, [])
    assert row.next_attempt_at == now[0] + timedelta(seconds=1)
    now[0] += timedelta(seconds=2)
    await job.run_once()
    [message] = bot_api.sent(881)
    assert "Flooded digest" in message.plain
    [row] = digest_rows(engine)
    assert (row.state, row.attempts, row.parts_sent) == ("sent", 1, 1)


async def test_a_digest_cancelled_at_shutdown_is_released_not_stranded(
    engine: Engine, ptb_app: App, bot_api: BotApiServer
) -> None:
    digest_chat(engine, 891)
    add_story(engine, "Digest at shutdown", at=NOW - timedelta(hours=2))
    hold(engine, NOW - timedelta(hours=1))
    bot_api.set_delay("sendMessage", 2.0)
    job = digester(engine, ptb_app, lambda: NOW + timedelta(seconds=5))
    running = asyncio.create_task(job.run_once())
    deadline = time.monotonic() + 10
    while not bot_api.sent(891):  # on the wire, not answered yet
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running
    [row] = digest_rows(engine)
    assert (row.state, row.lease_owner, row.parts_sent) == ("pending", None, 0)


def wait(check: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def test_a_digest_is_delivered_once_across_kill_9_and_restart(
    tmp_path: Path, bot_api: BotApiServer, database_url: str, engine: Engine
) -> None:
    now = datetime.now(UTC)
    digest_chat(engine, 841, next_digest_at=now - timedelta(minutes=1))
    for n in range(24):
        add_story(engine, f"Kill story {n:02d}", topics="security",
                  at=now - timedelta(hours=5, minutes=-n), summary="Context " * 40)  # fmt: skip
    hold(engine, now)
    bot_api.set_delay("sendMessage", 0.5)  # a part on the wire for half a second
    config = write_config(tmp_path, feeds=[("http://127.0.0.1:9/none.xml", "None", "en")])
    bot = BotProcess(tmp_path, config, database_url, api=bot_api)

    def recorded() -> int:
        return sum(d.parts_sent for d in digest_rows(engine))

    with bot:
        wait(lambda: recorded() >= 1 and len(bot_api.sent(841)) >= 2, timeout=90,
             what="two parts on the wire, one recorded")  # fmt: skip
        bot.kill()
    accepted, done = len(bot_api.sent(841)), recorded()
    [row] = digest_rows(engine)
    assert row.state == "sending" and 0 < done < len(json.loads(row.parts))
    with bot.start():
        wait(lambda: digest_rows(engine)[0].state == "sent", timeout=90,
             what="the digest finished after the restart")  # fmt: skip
        assert bot.stop() == 0
    [row] = digest_rows(engine)
    texts = [m.text for m in bot_api.sent(841)]
    parts = json.loads(row.parts)
    assert row.parts_sent == len(parts) >= 3
    duplicates = len(texts) - len(set(texts))
    assert set(texts) == set(parts)  # every part arrived, and only the digest's parts
    assert duplicates == accepted - done <= 1  # only a part on the wire at the kill repeats
    assert texts[:done] == parts[:done]  # resumed after the parts recorded
    assert bot_api.rate_limited == 0


def unconfirmed(then: str) -> float:
    return (
        metrics.REGISTRY.get_sample_value("sahelwatch_unconfirmed_sends_total", {"then": then})
        or 0.0
    )


async def test_a_digest_part_telegram_does_not_answer_is_sent_at_most_twice_across_a_restart(
    engine: Engine, make_settings: Callable[..., Settings], bot_api: BotApiServer
) -> None:
    """Telegram delivers but answers too late: the part goes out once more (the count is on
    the row, so a restart of the sender does not reset it), then it is not sent again and
    the rest of the digest goes on."""
    application = build_application(
        make_settings(bot_api, telegram={"send_timeout": 0.5}), engine, seeds=()
    )
    await application.initialize()
    digest_chat(engine, 901)
    for n in range(16):  # two parts
        add_story(engine, f"Unanswered story {n:02d}", topics="security",
                  at=NOW - timedelta(hours=9, minutes=-n), summary="Context " * 60)  # fmt: skip
    hold(engine, NOW - timedelta(hours=1))
    bot_api.set_delay("sendMessage", 2.0)  # delivered, answered after the client gave up
    retried, failed = unconfirmed("retried"), unconfirmed("failed")
    now = [NOW + timedelta(seconds=5)]
    try:
        first = Digests(engine, sender_for(application), owner=make_owner(), clock=lambda: now[0])
        await first.run_once()  # part 1 unanswered: pending again, its count stored
        [row] = digest_rows(engine)
        parts = json.loads(row.parts)
        assert len(parts) == 2
        assert (row.state, row.parts_sent, row.timeouts) == ("pending", 0, 1)
        assert [m.text for m in bot_api.sent(901)] == parts[:1]

        now[0] += timedelta(hours=1)  # the sender restarts
        second = Digests(engine, sender_for(application), owner=make_owner(), clock=lambda: now[0])
        await second.run_once()  # part 1 unanswered again: not sent again; part 2 unanswered
        [row] = digest_rows(engine)
        assert (row.state, row.parts_sent, row.timeouts) == ("pending", 1, 1)
        assert unconfirmed("failed") == failed + 1

        bot_api.set_delay("sendMessage", 0.0)
        now[0] += timedelta(hours=1)
        third = Digests(engine, sender_for(application), owner=make_owner(), clock=lambda: now[0])
        await third.run_once()
    finally:
        await application.shutdown()
    assert [m.text for m in bot_api.sent(901)] == [parts[0], parts[0], parts[1], parts[1]]
    [row] = digest_rows(engine)
    assert (row.state, row.parts_sent, row.timeouts) == ("sent", 2, 0)
    assert unconfirmed("retried") == retried + 2  # part 1 once, part 2 once
    assert unconfirmed("failed") == failed + 1  # part 1, given up
    assert (first.tally.unconfirmed, second.tally.unconfirmed, third.tally.unconfirmed) == (1, 2, 0)
    assert third.tally.sent == 1
