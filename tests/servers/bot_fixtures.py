"""pytest fixtures for the Telegram side (register with pytest_plugins in tests/conftest.py).

    bot_api          a started BotApiServer on 127.0.0.1, stopped after the test
    make_settings    Settings for a test: database, Bot API server, feeds, admins
    running_bot      the real PTB Application, long polling the test server, wired to `engine`
    ptb_app          the same Application, initialised but not polling (for deliveries)
    add_story        insert a Story (and its outbox rows, like the pipeline) directly

They use the `engine` / `database_url` fixtures of tests/conftest.py (SQLite and PostgreSQL).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.settings import Settings
from bot.storage import subscribers
from bot.storage.models import Delivery, Feed, Item, Story, Subscriber
from bot.storage.subscribers import Chat
from bot.telegram.app import App, build_application, start_application, stop_application
from tests.servers.bot_api import BotApiServer, Limits

REPO = Path(__file__).resolve().parents[2]
SEEDS = REPO / "seeds"
ADMIN_ID = 777


@pytest.fixture
def bot_api() -> Iterator[BotApiServer]:
    """The Bot API test server with Telegram's limits."""
    with BotApiServer(limits=Limits()) as server:
        yield server


def settings_for(
    database_url: str,
    *,
    server: BotApiServer | None = None,
    feeds: list[dict[str, str]] | None = None,
    **overrides: Any,
) -> Settings:
    """Settings without reading a file (the topic rules stay at their defaults)."""
    raw: dict[str, Any] = {
        "config_path": "test.toml",
        "database_url": database_url,
        "feeds": feeds or [{"url": "http://127.0.0.1:9/feed.xml", "name": "Test Wire"}],
        "seeds_dir": str(SEEDS),
        "admin_chat_ids": [ADMIN_ID],
        "poll_interval": 1,
    }
    if server is not None:
        raw["telegram_bot_token"] = SecretStr(server.token)
        raw["telegram_api_url"] = server.base_url
    raw.update(overrides)
    return Settings.model_validate(raw)


@pytest.fixture
def make_settings(database_url: str) -> Callable[..., Settings]:
    def make(server: BotApiServer | None = None, **overrides: Any) -> Settings:
        return settings_for(database_url, server=server, **overrides)

    return make


@pytest.fixture
async def running_bot(
    engine: Engine, make_settings: Callable[..., Settings], bot_api: BotApiServer
) -> AsyncIterator[App]:
    """The bot's Application, polling the test server, handlers on the test database."""
    settings = make_settings(bot_api)
    application = build_application(settings, engine, seeds=("The seed story, in one line",))
    await start_application(application, settings)
    try:
        yield application
    finally:
        await stop_application(application)


@pytest.fixture
async def ptb_app(
    engine: Engine, make_settings: Callable[..., Settings], bot_api: BotApiServer
) -> AsyncIterator[App]:
    """The bot's PTB Application (rate limiter, flood gate), initialised but not polling."""
    application = build_application(make_settings(bot_api), engine, seeds=())
    await application.initialize()
    try:
        yield application
    finally:
        await application.shutdown()


def subscribe_chats(
    engine: Engine, chat_ids: list[int], chat_type: str = "private", thread_id: int = 0
) -> None:
    for chat_id in chat_ids:
        subscribers.subscribe(engine, Chat(chat_id, thread_id, chat_type))


def insert_story(
    engine: Engine,
    *,
    title: str = "Mali takes Algeria to the International Court of Justice",
    link: str = "https://wire.test/icj",
    feed_name: str = "Wire EN",
    summary: str = "Mali filed a case at the ICJ. Algeria has not answered.",
    published: datetime | None = None,
    created_at: datetime | None = None,
    alerted: bool = True,
    deliver: bool = True,
    also: list[tuple[str, str]] | None = None,
) -> int:
    """A story as the pipeline writes it: with one pending delivery per active subscriber."""
    now = created_at or datetime.now(UTC)
    with Session(engine) as session:
        story = Story(
            created_at=now, title=title, link=link, feed_name=feed_name, summary=summary,
            published=published or now - timedelta(minutes=5), alerted=alerted,
        )  # fmt: skip
        session.add(story)
        session.flush()
        assert story.id is not None
        for number, (name, url) in enumerate(also or []):
            feed = session.exec(select(Feed).where(Feed.url == f"https://{name}.test/feed")).first()
            if feed is None:
                feed = Feed(url=f"https://{name}.test/feed", name=name)
                session.add(feed)
                session.flush()
            assert feed.id is not None
            session.add(
                Item(feed_id=feed.id, guid=f"{story.id}-{number}", link=url, title_key=f"k{number}",
                     title=title, text="", decision="duplicate", story_id=story.id)
            )  # fmt: skip
        if deliver and alerted:
            ids = session.exec(select(Subscriber.id).where(col(Subscriber.active).is_(True))).all()
            for subscriber_id in ids:
                assert subscriber_id is not None
                session.add(
                    Delivery(story_id=story.id, subscriber_id=subscriber_id, next_attempt_at=now)
                )
        session.commit()
        return story.id


@pytest.fixture
def add_story(engine: Engine) -> Callable[..., int]:
    def add(**fields: Any) -> int:
        return insert_story(engine, **fields)

    return add


async def wait_until(
    check: Callable[[], bool], *, within: float = 10.0, step: float = 0.05
) -> None:
    """Poll `check` (a cheap synchronous predicate) until true, else TimeoutError."""
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"condition not met within {within} s")
        await asyncio.sleep(step)
