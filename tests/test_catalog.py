"""bot.feeds.catalog: the feed list (config + added), on SQLite and PostgreSQL, and the poll
cycle over it through real HTTP."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.feeds import catalog
from bot.feeds.guard import IPAddress, is_public_address
from bot.pipeline import CycleReport, Pipeline
from bot.records import FeedSpec
from bot.settings import Settings, load_settings
from bot.storage.models import Feed
from tests.servers import feedgen
from tests.servers.feed_server import FeedServer

REPO = Path(__file__).resolve().parent.parent
CONFIG = [FeedSpec("https://config.test/rss", "Config Wire", "en")]
FEED = feedgen.rss(
    [{"id": f"c{n}", "title": f"Weather report {n}", "summary": "Sunny."} for n in range(3)]
)


def save(engine: Engine, url: str, name: str, source: catalog.Source = "chat") -> str:
    urls = {s.url for s in CONFIG}
    spec = FeedSpec(url, name, "en")
    return catalog.save_feed(engine, spec, source=source, added_by="test", config_urls=urls)


def test_add_list_remove_and_bring_back(engine: Engine) -> None:
    assert save(engine, "https://a.test/rss", "Alpha") == "added"
    assert save(engine, "https://a.test/rss", "Alpha again") == "exists"
    assert save(engine, "https://config.test/rss", "Dup") == "config"
    assert save(engine, "https://b.test/rss", "Beta", "cli") == "added"
    listed = catalog.list_feeds(engine, CONFIG)
    assert [(f.spec.url, f.spec.name, f.source, f.added_by) for f in listed] == [
        ("https://config.test/rss", "Config Wire", "config", None),
        ("https://a.test/rss", "Alpha", "chat", "test"),
        ("https://b.test/rss", "Beta", "cli", "test"),
    ]
    assert catalog.drop_feed(engine, "config wire", config=CONFIG) == ("config", ["Config Wire"])
    assert catalog.drop_feed(engine, "Gamma", config=CONFIG) == ("missing", [])
    assert catalog.drop_feed(engine, "ALPHA", config=CONFIG) == ("removed", ["Alpha"])
    assert [f.spec.name for f in catalog.list_feeds(engine, CONFIG)] == ["Config Wire", "Beta"]
    with Session(engine) as session:  # the row stays for its items, marked removed
        row = session.exec(select(Feed).where(Feed.url == "https://a.test/rss")).one()
        assert row.source == "removed"
    assert save(engine, "https://a.test/rss", "Alpha back") == "added"
    names = [f.spec.name for f in catalog.list_feeds(engine, CONFIG)]
    assert names == ["Config Wire", "Alpha back", "Beta"]  # its row, its place
    save(engine, "https://c.test/rss", "Beta")
    done, urls = catalog.drop_feed(engine, "beta", config=CONFIG)
    assert (done, urls) == ("ambiguous", ["https://b.test/rss", "https://c.test/rss"])
    assert catalog.drop_feed(engine, "https://c.test/rss", config=CONFIG)[0] == "removed"


@pytest.mark.parametrize(
    ("url", "name", "language", "why"),
    [
        ("ftp://a.test/feed", "", "", "must start with http"),
        ("file:///etc/passwd", "", "", "must start with http"),
        ("https:///feed", "", "", "name a host"),
        ("http://a.test:99999/feed", "", "", "not a valid address"),
        ("http://[::1/feed", "", "", "not a valid address"),
        ("https://a.test/" + "x" * 2000, "", "", "longer than 2000"),
        ("https://a.test/feed", "", "de", "one of en, fr"),
    ],
)
def test_requests_that_are_refused_before_any_fetch(
    url: str, name: str, language: str, why: str
) -> None:
    problem = catalog.check_request(url, name, language)
    assert problem is not None and why in problem


def stand_in_public(*public: str) -> Callable[[IPAddress], bool]:
    """The strict policy, with chosen loopback addresses standing in for public ones."""
    allowed = {ipaddress.ip_address(a) for a in public}
    return lambda address: address in allowed or is_public_address(address)


def settings_for(tmp_path: Path, database_url: str, url: str) -> Settings:
    lines = [
        f'seeds_dir = "{REPO / "seeds"}"',
        "[limits]",
        "total_timeout = 3.0",
        "[[feeds]]",
        f'url = "{url}"',
        'name = "Config Wire"',
    ]
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_settings({"SAHEL_WATCH_CONFIG": str(path), "DATABASE_URL": database_url})


def cycle(settings: Settings, engine: Engine) -> CycleReport:
    async def go() -> CycleReport:
        # a new Pipeline each time: the list comes from the database, as after a restart
        pipeline = Pipeline(settings, engine, address_policy=stand_in_public("127.0.0.2"))
        try:
            return await pipeline.run_cycle(force=True)
        finally:
            await pipeline.aclose()

    return asyncio.run(go())


def test_the_cycle_polls_added_feeds_chat_ones_strictly_and_stops_at_removal(
    tmp_path: Path,
    database_url: str,
    engine: Engine,
    feed_server_factory: Callable[..., FeedServer],
) -> None:
    server = feed_server_factory(hosts=2)  # 127.0.0.2 plays a public host
    for path in ("/config.xml", "/cli.xml", "/chat.xml", "/private.xml"):
        server.add(path, FEED)
    settings = settings_for(tmp_path, database_url, server.url("/config.xml"))
    assert settings.limits.allow_private_addresses  # the operator allows the LAN for its feeds
    config = settings.feed_specs()
    urls = {s.url for s in config}
    added: dict[str, tuple[str, catalog.Source]] = {
        "Cli": (server.url("/cli.xml"), "cli"),  # the operator's: follows the setting
        "Chat": (server.url("/chat.xml", host=1), "chat"),  # on a "public" address
        "Private": (server.url("/private.xml"), "chat"),  # loopback from a chat: never
    }
    for name, (url, source) in added.items():
        spec = FeedSpec(url, name, "en")
        done = catalog.save_feed(engine, spec, source=source, added_by="t", config_urls=urls)
        assert done == "added"
    first = cycle(settings, engine)
    assert first.feeds_polled == 4 and first.feeds_failed == 1
    assert first.feed_errors == {"Private": "refused address 127.0.0.1 (not public)"}
    hits = {path: server.hits(path) for path in ("/config.xml", "/cli.xml", "/chat.xml")}
    assert hits == {"/config.xml": 1, "/cli.xml": 1, "/chat.xml": 1}
    assert server.hits("/private.xml") == 0
    assert (
        sorted(v.entry.feed_name for v in first.verdicts)
        == ["Chat"] * 3 + ["Cli"] * 3 + ["Config Wire"] * 3
    )
    assert catalog.drop_feed(engine, "Chat", config=config) == ("removed", ["Chat"])
    second = cycle(settings, engine)
    assert second.feeds_polled == 3
    assert server.hits("/chat.xml") == 1 and server.hits("/config.xml") == 2
    assert server.hits("/cli.xml") == 2 and server.hits("/private.xml") == 0
