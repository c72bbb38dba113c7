"""A chat's choices honoured by delivery (bot/delivery/choices.py, bot/storage/outbox.py):
topics, muted stories and their follow-ups, silent and preview choices, and a cycle's alerts
in publication order; through the real PTB client and the Bot API test server, on SQLite and
PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.delivery import choices
from bot.delivery.worker import Deliverer, Policy
from bot.owners import make_owner
from bot.storage.models import Delivery, Story, StoryMute, Subscriber
from bot.telegram.app import App, sender_for
from tests.servers.bot_api import BotApiServer
from tests.servers.bot_fixtures import subscribe_chats

FAST = Policy(backoff_base=0.05, backoff_max=0.2, idle_poll=0.05, grace=2.0)
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def set_choices(engine: Engine, chat_id: int, **values: Any) -> int:
    with Session(engine) as session:
        session.execute(
            update(Subscriber).where(col(Subscriber.chat_id) == chat_id).values(**values)
        )
        session.commit()
        found = session.exec(select(Subscriber.id).where(Subscriber.chat_id == chat_id)).one()
        assert found is not None
        return found


def add_story(
    engine: Engine,
    title: str,
    *,
    topics: str = "",
    published: datetime | None = None,
    follows: int | None = None,
    created: datetime = NOW,
) -> int:
    """A story with one pending delivery per active subscriber, as the pipeline writes it."""
    with Session(engine) as session:
        story = Story(
            created_at=created, title=title, link=f"https://wire.test/{abs(hash(title))}",
            feed_name="Wire", summary=f"{title}, in one line.", published=published or created,
            topics=topics, follows_id=follows,
        )  # fmt: skip
        session.add(story)
        session.flush()
        assert story.id is not None
        for subscriber_id in session.exec(
            select(Subscriber.id).where(col(Subscriber.active).is_(True))
        ).all():
            assert subscriber_id is not None
            session.add(
                Delivery(story_id=story.id, subscriber_id=subscriber_id, next_attempt_at=created,
                         created_at=created)
            )  # fmt: skip
        session.commit()
        return story.id


def states(engine: Engine, chat_id: int) -> dict[str, str]:
    """story title → delivery state, for one chat."""
    with Session(engine) as session:
        rows = session.exec(
            select(Story.title, Delivery.state)
            .join(Delivery, col(Delivery.story_id) == col(Story.id))
            .join(Subscriber, col(Subscriber.id) == col(Delivery.subscriber_id))
            .where(Subscriber.chat_id == chat_id)
        ).all()
    return dict(rows)


def deliverer(engine: Engine, app: App, now: datetime = NOW) -> Deliverer:
    return Deliverer(engine, sender_for(app), owner=make_owner(), policy=FAST, clock=lambda: now)


def titles(server: BotApiServer, chat_id: int) -> list[str]:
    return [m.plain.splitlines()[0] for m in server.sent(chat_id)]


async def test_topics_and_mutes_decide_which_alerts_a_chat_gets(
    engine: Engine, ptb_app: App, bot_api: BotApiServer
) -> None:
    subscribe_chats(engine, [501, 502, 503])
    set_choices(engine, 501, topics="security")
    muter = set_choices(engine, 503, topics="")
    raid = add_story(engine, "Raid near Menaka", topics="security")
    add_story(engine, "New cabinet in Niamey", topics="politics", created=at(1))
    add_story(engine, "Unclassified note", topics="", created=at(2))
    with Session(engine) as session:
        session.add(StoryMute(subscriber_id=muter, story_id=raid))
        session.commit()
    sequel = add_story(engine, "Raid follow-up", topics="security", follows=raid, created=at(3))
    add_story(
        engine, "Raid, third day", topics="security", follows=sequel,
        created=at(4),
    )  # fmt: skip
    await deliverer(engine, ptb_app, NOW + timedelta(seconds=5)).drain()

    # security only: politics skipped; a story of no known topic reaches every chat
    assert sorted(titles(bot_api, 501)) == sorted(
        ["Raid near Menaka", "Unclassified note", "Raid follow-up", "Raid, third day"]
    )
    assert states(engine, 501)["New cabinet in Niamey"] == "skipped"
    assert len(bot_api.sent(502)) == 5
    # the muted story and its saga's later stories are skipped
    assert sorted(titles(bot_api, 503)) == ["New cabinet in Niamey", "Unclassified note"]
    assert states(engine, 503)["Raid, third day"] == "skipped"


async def test_silent_and_no_preview_reach_telegram(
    engine: Engine, ptb_app: App, bot_api: BotApiServer
) -> None:
    subscribe_chats(engine, [601, 602])
    set_choices(engine, 601, silent=True, link_previews=False)
    add_story(engine, "Border reopens")
    await deliverer(engine, ptb_app).drain()
    [quiet] = bot_api.sent(601)
    [loud] = bot_api.sent(602)
    assert quiet.params.get("disable_notification") in (True, "true", "True")
    assert json.loads(quiet.params["link_preview_options"]) == {"is_disabled": True}
    assert "disable_notification" not in loud.params
    assert json.loads(loud.params["link_preview_options"]).get("is_disabled") is not True


async def test_a_cycles_alerts_go_out_in_publication_order(
    engine: Engine, ptb_app: App, bot_api: BotApiServer
) -> None:
    subscribe_chats(engine, [701, 702])
    published = {"third": 3, "first": 1, "fifth": 5, "second": 2, "fourth": 4}
    for title, minute in published.items():  # stored in another order, in one cycle
        add_story(engine, title, published=NOW - timedelta(minutes=10 - minute))
    await deliverer(engine, ptb_app).drain()
    for chat in (701, 702):
        assert titles(bot_api, chat) == ["first", "second", "third", "fourth", "fifth"]


def test_quiet_hours_cross_midnight_in_the_chats_zone() -> None:
    chat = choices.Choices(timezone="Africa/Lagos", quiet_from=22 * 60, quiet_to=7 * 60)
    # 21:30 UTC is 22:30 in Lagos (UTC+1): quiet until 07:00 Lagos, 06:00 UTC
    assert choices.quiet_until(chat, datetime(2026, 3, 10, 21, 30, tzinfo=UTC)) == datetime(
        2026, 3, 11, 6, 0, tzinfo=UTC
    )
    assert choices.quiet_until(chat, datetime(2026, 3, 11, 5, 59, tzinfo=UTC)) == datetime(
        2026, 3, 11, 6, 0, tzinfo=UTC
    )
    assert choices.quiet_until(chat, datetime(2026, 3, 11, 6, 0, tzinfo=UTC)) is None
    assert choices.quiet_until(chat, datetime(2026, 3, 10, 20, 59, tzinfo=UTC)) is None
    daytime = choices.Choices(quiet_from=12 * 60, quiet_to=14 * 60)
    assert choices.quiet_until(daytime, datetime(2026, 3, 10, 13, 0, tzinfo=UTC)) == datetime(
        2026, 3, 10, 14, 0, tzinfo=UTC
    )
    assert choices.quiet_until(choices.Choices(quiet_from=600, quiet_to=600), NOW) is None


def test_digest_times_in_the_chats_zone_and_across_a_clock_change() -> None:
    paris = choices.Choices(timezone="Europe/Paris", delivery_mode="daily", digest_at=8 * 60)
    # the night of 29 March 2026 Paris moves from UTC+1 to UTC+2
    assert choices.next_digest(paris, datetime(2026, 3, 28, 12, 0, tzinfo=UTC)) == datetime(
        2026, 3, 29, 6, 0, tzinfo=UTC
    )
    assert choices.next_digest(paris, datetime(2026, 3, 27, 12, 0, tzinfo=UTC)) == datetime(
        2026, 3, 28, 7, 0, tzinfo=UTC
    )
    every6 = choices.Choices(timezone="Africa/Bamako", delivery_mode="digest", digest_hours=6)
    assert choices.next_digest(every6, datetime(2026, 3, 10, 12, 0, tzinfo=UTC)) == datetime(
        2026, 3, 10, 18, 0, tzinfo=UTC
    )
    assert choices.next_digest(every6, datetime(2026, 3, 10, 23, 0, tzinfo=UTC)) == datetime(
        2026, 3, 11, 0, 0, tzinfo=UTC
    )
