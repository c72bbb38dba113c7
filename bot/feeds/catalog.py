"""The feed list: the config file's feeds plus those added from a chat or the command line.

Added feeds are rows of the `feed` table with `source` ``chat`` or ``cli`` (who added them
in `added_by`), so they survive restarts and every replica polls the same list. Removing
one marks it ``removed``: its items keep their feed, and it is no longer polled. Config
feeds are changed by editing the file; a URL the config lists is a config feed whatever
its row says.

An added feed is fetched and parsed once before it is accepted (`probe`). A feed added
from a chat is always fetched under the strict address policy (only public addresses, for
the URL, every redirect and every DNS answer), whatever `limits.allow_private_addresses`
says: that setting is the operator's, for the feeds the operator names, in the config file
or on the command line (`allow_private`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from bot.decide.language import detect_language
from bot.decide.textcut import shorten
from bot.errors import ParseError
from bot.feeds.bounded import parse_bounded
from bot.feeds.fetch import Fetcher, Validators
from bot.feeds.textsafe import storable
from bot.records import FeedSpec
from bot.settings import Limits
from bot.storage.errors import StorageConflict
from bot.storage.models import Feed, utcnow

Source = Literal["config", "chat", "cli"]
ADDED: tuple[Source, ...] = ("chat", "cli")
REMOVED = "removed"
LANGUAGES = ("en", "fr")
MAX_URL_CHARS = 2_000
MAX_NAME_CHARS = 120


@dataclass(frozen=True, slots=True)
class CatalogFeed:
    """One feed of the list, with where it comes from."""

    spec: FeedSpec
    source: str  # config | chat | cli
    added_by: str | None = None
    added_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Probe:
    """What fetching and parsing a candidate feed once found, or why it was refused."""

    url: str
    error: str | None = None
    title: str = ""
    entries: int = 0
    language: str = ""


def allow_private(source: str) -> bool | None:
    """The fetch's `allow_private`: never for a chat's feed, else the setting (None)."""
    return False if source == "chat" else None


def added_feeds(session: Session) -> list[CatalogFeed]:
    """The feeds added from a chat or the command line, oldest first."""
    rows = session.execute(
        select(Feed).where(col(Feed.source).in_(ADDED)).order_by(col(Feed.id))
    ).scalars()
    return [
        CatalogFeed(FeedSpec(r.url, r.name or r.url, r.language), r.source, r.added_by, r.added_at)
        for r in rows
    ]


def listing(session: Session, config: Sequence[FeedSpec]) -> list[CatalogFeed]:
    """Every feed polled: the config's first, then the added ones it does not list."""
    urls = {spec.url for spec in config}
    return [CatalogFeed(spec, "config") for spec in config] + [
        feed for feed in added_feeds(session) if feed.spec.url not in urls
    ]


def feed_specs(session: Session, config: Sequence[FeedSpec]) -> list[FeedSpec]:
    return [feed.spec for feed in listing(session, config)]


def check_request(url: str, name: str, language: str) -> str | None:
    """Why a feed cannot be added as asked, or None."""
    if len(url) > MAX_URL_CHARS:
        return f"the address is longer than {MAX_URL_CHARS} characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return "that is not a valid address"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "the address must start with http:// or https:// and name a host"
    if language and language not in LANGUAGES:
        return f"the language must be one of {', '.join(LANGUAGES)}"
    return None


def clean_name(name: str) -> str:
    return shorten(" ".join(storable(name).split()), MAX_NAME_CHARS)


async def probe(
    fetcher: Fetcher,
    limits: Limits,
    url: str,
    *,
    source: Source,
    name: str = "",
    language: str = "",
) -> Probe:
    """Fetch `url` once, as `source`'s feeds are fetched, and parse it with the CPU budget."""
    outcome = await fetcher.fetch(url, Validators(), allow_private=allow_private(source))
    if outcome.status != "changed" or outcome.body is None:
        return Probe(url, error=outcome.error or f"nothing to read ({outcome.status})")
    spec = FeedSpec(url, name or url, language or "en")
    try:
        parsed = await parse_bounded(
            outcome.body,
            outcome.headers,
            spec,
            max_entries=limits.max_entries_per_feed,
            cpu_seconds=limits.parse_cpu_seconds,
        )
    except ParseError as exc:
        return Probe(url, error=f"not a feed: {exc}")
    sample = " ".join(f"{e.title}. {e.text[:300]}" for e in parsed.entries[:20])
    found = language or detect_language(sample, "en")
    return Probe(url, title=clean_name(parsed.title), entries=len(parsed.entries), language=found)


def add_feed(
    session: Session,
    spec: FeedSpec,
    *,
    source: Source,
    added_by: str,
    now: datetime,
    config_urls: Collection[str],
) -> Literal["added", "exists", "config"]:
    """Add (or bring back) a probed feed; "exists" when it is already polled."""
    if spec.url in config_urls:
        return "config"
    row = session.execute(select(Feed).where(col(Feed.url) == spec.url)).scalars().first()
    if row is not None and row.source in ADDED:
        return "exists"
    if row is None:
        row = Feed(url=spec.url)
    row.name, row.language = spec.name, spec.language
    row.source, row.added_by, row.added_at = source, added_by, now
    row.next_poll_at = None  # a feed brought back is polled at the next cycle
    session.add(row)
    try:
        session.flush()
    except StorageConflict:  # another replica added the same URL a moment ago
        session.rollback()
        return "exists"
    return "added"


def find_added(session: Session, key: str) -> list[Feed]:
    """The added feeds whose URL is `key`, else whose name is `key` (case-insensitive)."""
    rows = list(
        session.execute(select(Feed).where(col(Feed.source).in_(ADDED)).order_by(col(Feed.id)))
        .scalars()
        .all()
    )
    by_url = [r for r in rows if r.url == key]
    if by_url:
        return by_url
    folded = key.casefold()
    return [r for r in rows if r.name.casefold() == folded]


def remove_feed(
    session: Session, key: str, *, config: Sequence[FeedSpec]
) -> tuple[Literal["removed", "config", "missing", "ambiguous"], list[str]]:
    """Stop polling the added feed whose URL or name is `key`; with the names concerned."""
    key = key.strip()
    in_config = [s for s in config if s.url == key or s.name.casefold() == key.casefold()]
    if in_config:
        return "config", [in_config[0].name]
    found = find_added(session, key)
    if not found:
        return "missing", []
    if len(found) > 1:
        return "ambiguous", [r.url for r in found]
    row = found[0]
    row.source = REMOVED
    row.lease_owner, row.lease_until = None, None
    session.add(row)
    session.flush()
    return "removed", [row.name or row.url]


# --- the same, each in its own transaction (for callers in a thread) ---------------------


def list_feeds(engine: Engine, config: Sequence[FeedSpec]) -> list[CatalogFeed]:
    with Session(engine) as session:
        return listing(session, config)


def save_feed(
    engine: Engine,
    spec: FeedSpec,
    *,
    source: Source,
    added_by: str,
    config_urls: Collection[str],
) -> Literal["added", "exists", "config"]:
    with Session(engine) as session:
        done = add_feed(
            session, spec, source=source, added_by=added_by, now=utcnow(), config_urls=config_urls
        )
        session.commit()
        return done


def drop_feed(
    engine: Engine, key: str, *, config: Sequence[FeedSpec]
) -> tuple[Literal["removed", "config", "missing", "ambiguous"], list[str]]:
    with Session(engine) as session:
        answer = remove_feed(session, key, config=config)
        session.commit()
        return answer
