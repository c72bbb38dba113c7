"""Quiet hours (bot/delivery/choices.py): a chat's alerts are held while its quiet hours last
(in its own time zone) and delivered when they end, never dropped; a digest chat's alerts of
the night go into its next digest, and a digest due in quiet hours waits for their end.
Through the real PTB client and the Bot API test server, on SQLite and PostgreSQL, with an
injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.delivery.digest import Digests
from bot.delivery.worker import Deliverer, Policy
from bot.owners import make_owner
from bot.storage.models import Delivery, Digest, Story, Subscriber
from bot.telegram.app import App, sender_for
from tests.servers.bot_api import BotApiServer
from tests.servers.bot_fixtures import subscribe_chats

FAST = Policy(backoff_base=0.05, backoff_max=0.2, idle_poll=0.05, grace=2.0)
# Lagos is UTC+1 all year: quiet from 22:00 to 07:00 there is 21:00 to 06:00 UTC
NIGHT = datetime(2026, 3, 10, 21, 30, tzinfo=UTC)  # 22:30 in Lagos
MORNING = datetime(2026, 3, 11, 6, 0, tzinfo=UTC)  # 07:00 in Lagos: quiet hours over
QUIET: dict[str, Any] = {"timezone": "Africa/Lagos", "quiet_from": 22 * 60, "quiet_to": 7 * 60}


def choose(engine: Engine, chat_id: int, **values: Any) -> None:
    with Session(engine) as session:
        session.execute(
            update(Subscriber).where(col(Subscriber.chat_id) == chat_id).values(**values)
        )
        session.commit()


def add_story(engine: Engine, title: str, at: datetime) -> None:
    with Session(engine) as session:
        story = Story(created_at=at, title=title, link="https://wire.test/q", feed_name="Wire",
                      summary="What happened.", published=at)  # fmt: skip
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


def rows_of(engine: Engine, chat_id: int) -> list[Delivery]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(Delivery)
                .join(Subscriber, col(Subscriber.id) == col(Delivery.subscriber_id))
                .where(Subscriber.chat_id == chat_id)
                .order_by(col(Delivery.id))
            ).all()
        )


async def test_alerts_are_held_through_quiet_hours_then_delivered(
    engine: Engine, ptb_app: App, bot_api: BotApiServer
) -> None:
    subscribe_chats(engine, [901, 902])
    choose(engine, 901, **QUIET)
    add_story(engine, "Late-night communiqué", NIGHT)
    add_story(engine, "Another one at midnight", NIGHT + timedelta(hours=1, minutes=30))
    now = [NIGHT]
    deliverer = Deliverer(
        engine, sender_for(ptb_app), owner=make_owner(), policy=FAST, clock=lambda: now[0]
    )
    await deliverer.drain()
    assert bot_api.sent(901) == [] and len(bot_api.sent(902)) == 1  # the other chat is awake
    [first, _] = rows_of(engine, 901)
    assert (first.state, first.next_attempt_at, first.attempts) == ("pending", MORNING, 0)

    now[0] = NIGHT + timedelta(hours=2)  # 00:30 in Lagos: the second alert is held too
    await deliverer.drain()
    assert bot_api.sent(901) == []
    assert [r.next_attempt_at for r in rows_of(engine, 901)] == [MORNING, MORNING]

    now[0] = MORNING - timedelta(seconds=1)
    await deliverer.drain()
    assert bot_api.sent(901) == []

    now[0] = MORNING
    await deliverer.drain()
    texts = [m.plain for m in bot_api.sent(901)]
    assert len(texts) == 2 and "Late-night communiqué" in texts[0]  # in publication order
    assert [r.state for r in rows_of(engine, 901)] == ["sent", "sent"]


async def test_a_digest_chats_night_goes_into_its_next_digest_sent_when_quiet_ends(
    engine: Engine, ptb_app: App, bot_api: BotApiServer
) -> None:
    subscribe_chats(engine, [911])
    due = MORNING - timedelta(minutes=30)  # 06:30 in Lagos, inside the quiet hours
    choose(engine, 911, delivery_mode="daily", digest_at=6 * 60 + 30, next_digest_at=due, **QUIET)
    add_story(engine, "Overnight clash", NIGHT)
    now = [NIGHT]
    clock = lambda: now[0]  # noqa: E731
    deliverer = Deliverer(engine, sender_for(ptb_app), owner=make_owner(), policy=FAST, clock=clock)
    digests = Digests(engine, sender_for(ptb_app), owner=make_owner(), clock=clock)
    await deliverer.drain()
    assert [r.state for r in rows_of(engine, 911)] == ["held"]  # for the digest, not dropped

    now[0] = due + timedelta(seconds=10)  # the period ends while the chat is quiet
    await digests.run_once()
    with Session(engine) as session:
        [digest] = session.exec(select(Digest)).all()
    assert (digest.state, digest.next_attempt_at) == ("pending", MORNING)
    assert bot_api.sent(911) == []

    now[0] = MORNING + timedelta(seconds=5)
    await digests.run_once()
    [message] = bot_api.sent(911)
    assert "Overnight clash" in message.plain
    assert [r.state for r in rows_of(engine, 911)] == ["digested"]
