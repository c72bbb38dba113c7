"""bot.feeds.fetch over real HTTP against the loopback feed server."""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from bot.errors import ParseError
from bot.feeds.fetch import (
    Fetcher,
    FetchOutcome,
    Validators,
    expires_in,
    make_client,
    max_age,
    parse_retry_after,
)
from bot.feeds.guard import IPAddress, is_public_address
from bot.feeds.parse import parse_feed
from bot.records import FeedSpec
from bot.settings import Limits
from tests.servers import feedgen
from tests.servers.feed_server import FeedServer

LIMITS = Limits(
    connect_timeout=1.0,
    read_timeout=1.0,
    total_timeout=1.5,
    max_body_bytes=1_000_000,
    max_redirects=3,
)
ITEMS = [
    {
        "id": f"id-{n}",
        "title": f"Story {n}",
        "summary": "<p>Niamey &amp; Bamako</p>",
        "link": f"https://wire.test/{n}",
        "published": "Tue, 01 Apr 2025 09:12:00 +0000",
    }
    for n in range(5)
]
FEED = feedgen.rss(ITEMS)
SPEC = FeedSpec(url="https://wire.test/feed", name="Wire")


@asynccontextmanager
async def fetcher_for(limits: Limits = LIMITS, **options: Any) -> AsyncIterator[Fetcher]:
    async with make_client(limits) as client:
        yield Fetcher(client, limits, **options)


async def fetch(url: str, validators: Validators | None = None, **kw: Any) -> FetchOutcome:
    limits = kw.pop("limits", LIMITS)
    async with fetcher_for(limits) as fetcher:
        return await fetcher.fetch(url, validators or Validators(), **kw)


# -- caching ----------------------------------------------------------------------------


async def test_etag_gives_304_and_keeps_the_validators(feed_server: FeedServer) -> None:
    url = feed_server.add("/feed.xml", FEED, etag=True)
    async with fetcher_for() as fetcher:
        first = await fetcher.fetch(url, Validators())
        second = await fetcher.fetch(url, first.validators)
    assert first.status == "changed" and first.body == FEED and first.http_status == 200
    assert first.validators.etag and first.validators.content_hash
    assert second.status == "not_modified" and second.body is None
    assert second.http_status == 304 and second.validators == first.validators
    sent = feed_server.requests("/feed.xml")
    assert "if-none-match" not in sent[0].headers
    assert sent[1].headers["if-none-match"] == first.validators.etag
    assert feed_server.stats().not_modified == 1


async def test_last_modified_gives_304(feed_server: FeedServer) -> None:
    stamp = "Tue, 01 Apr 2025 09:12:00 GMT"
    url = feed_server.add("/lm.xml", FEED, last_modified=stamp)
    first = await fetch(url)
    assert first.validators.last_modified == stamp and first.validators.etag is None
    second = await fetch(url, first.validators)
    assert second.status == "not_modified"
    assert feed_server.requests("/lm.xml")[1].headers["if-modified-since"] == stamp


async def test_same_body_without_validators_is_unchanged(feed_server: FeedServer) -> None:
    url = feed_server.add("/plain.xml", FEED)
    first = await fetch(url)
    second = await fetch(url, first.validators)
    assert second.status == "unchanged" and second.body is None and second.http_status == 200
    assert second.validators.content_hash == first.validators.content_hash
    feed_server.set_body("/plain.xml", feedgen.rss(ITEMS[:2]))
    third = await fetch(url, second.validators)
    assert third.status == "changed" and third.body == feedgen.rss(ITEMS[:2])


async def test_content_that_changes_between_requests(feed_server: FeedServer) -> None:
    url = feed_server.add("/live.xml", lambda hit: feedgen.rss(ITEMS[:hit]), etag=True)
    validators = Validators()
    for hit in (1, 2, 3):
        outcome = await fetch(url, validators)
        assert outcome.status == "changed"
        assert outcome.body is not None
        assert len(parse_feed(outcome.body, outcome.headers, SPEC).entries) == hit
        validators = outcome.validators


# -- encodings and sizes ----------------------------------------------------------------


async def test_gzip_is_asked_for_and_decoded(feed_server: FeedServer) -> None:
    url = feed_server.add("/gz.xml", FEED, gzip=True)
    outcome = await fetch(url)
    assert outcome.status == "changed" and outcome.body == FEED
    assert "content-encoding" not in outcome.headers
    (request,) = feed_server.requests("/gz.xml")
    assert "gzip" in request.headers["accept-encoding"]
    assert request.headers["user-agent"] == LIMITS.user_agent


def gzip_bomb(size: int) -> bytes:
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = b"\0" * 1_000_000
    parts = [squeeze.compress(zeros) for _ in range(size // len(zeros))]
    return b"".join([*parts, squeeze.flush()])


async def test_gzip_bomb_is_bounded_in_memory(feed_server: FeedServer) -> None:
    bomb = gzip_bomb(200_000_000)
    assert len(bomb) < 300_000
    url = feed_server.add("/bomb.gz", bomb, headers={"Content-Encoding": "gzip"})
    tracemalloc.start()
    try:
        outcome = await fetch(url)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outcome.status == "failed"
    assert outcome.error == f"body larger than {LIMITS.max_body_bytes} bytes"
    assert peak < 4 * LIMITS.max_body_bytes


async def test_multi_member_and_deflate_bodies(feed_server: FeedServer) -> None:
    half = len(FEED) // 2
    members = gzip.compress(FEED[:half]) + gzip.compress(FEED[half:])
    url = feed_server.add("/multi.gz", members, headers={"Content-Encoding": "gzip"})
    assert (await fetch(url)).body == FEED
    raw = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    url = feed_server.add(
        "/raw.deflate", raw.compress(FEED) + raw.flush(), headers={"Content-Encoding": "deflate"}
    )
    assert (await fetch(url)).body == FEED
    url = feed_server.add("/bad.gz", b"not gzip at all", headers={"Content-Encoding": "gzip"})
    assert (await fetch(url)).error == "cannot decode gzip body"
    url = feed_server.add("/br", b"x", headers={"Content-Encoding": "br"})
    assert (await fetch(url)).error == "unsupported content-encoding 'br'"


@pytest.mark.parametrize("announce", [False, True], ids=["chunked", "content-length"])
async def test_50_mb_body_is_refused_with_memory_bounded(
    feed_server: FeedServer, announce: bool
) -> None:
    limits = Limits(total_timeout=10.0)  # the default 5 MB cap
    url = feed_server.add("/huge.xml", size=50_000_000, announce_size=announce)
    tracemalloc.start()
    try:
        started = time.monotonic()
        outcome = await fetch(url, limits=limits)
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outcome.status == "failed" and outcome.error == "body larger than 5000000 bytes"
    assert peak < 3 * limits.max_body_bytes
    assert elapsed < 5.0


async def test_endless_body_hits_the_size_cap(feed_server: FeedServer) -> None:
    url = feed_server.add("/endless.xml", endless=True)
    outcome = await fetch(url)
    assert outcome.error == f"body larger than {LIMITS.max_body_bytes} bytes"


# -- time -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [{"drip_interval": 0.05}, {"endless": True, "chunk_interval": 0.2}],
    ids=["slow-drip", "slow-endless"],
)
async def test_slow_bodies_are_bounded_by_the_deadline(
    feed_server: FeedServer, options: dict[str, Any]
) -> None:
    url = feed_server.add("/slow.xml", FEED, **options)
    started = time.monotonic()
    outcome = await fetch(url)
    elapsed = time.monotonic() - started
    assert outcome.status == "failed"
    assert outcome.error == "timed out after 1.5 s"
    assert LIMITS.total_timeout <= elapsed < LIMITS.total_timeout + 1.0


async def test_a_silent_server_hits_the_read_timeout(feed_server: FeedServer) -> None:
    url = feed_server.add("/silent.xml", FEED, latency=1.2)
    outcome = await fetch(url, limits=Limits(read_timeout=0.5, total_timeout=5.0))
    assert outcome.error == "read timeout (server stopped sending)"
    assert outcome.elapsed < 1.2


# -- redirects --------------------------------------------------------------------------


async def test_redirects_are_followed(feed_server: FeedServer) -> None:
    feed_server.add("/final.xml", FEED)
    feed_server.add("/moved", redirect_to="/final.xml", status=301)
    url = feed_server.add("/old", redirect_to=feed_server.url("/moved"), status=302)
    outcome = await fetch(url)
    assert outcome.status == "changed" and outcome.body == FEED
    assert outcome.url == url and outcome.final_url == feed_server.url("/final.xml")


async def test_redirect_loop_and_too_many_redirects(feed_server: FeedServer) -> None:
    feed_server.add("/a", redirect_to="/b")
    loop_url = feed_server.add("/b", redirect_to="/a")
    for hop in range(6):
        feed_server.add(f"/r{hop}", redirect_to=f"/r{hop + 1}")
    loop = await fetch(loop_url)
    chain = await fetch(feed_server.url("/r0"))
    assert loop.status == "failed" and loop.error == "redirect loop"
    assert chain.error == "too many redirects (more than 3)"
    assert feed_server.hits("/r4") == 0  # 1 request + 3 redirects, then it stopped


# -- HTTP errors ------------------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 410, 500, 502])
async def test_error_statuses(feed_server: FeedServer, status: int) -> None:
    url = feed_server.add("/err", b"<html>oops</html>", status=status, content_type="text/html")
    outcome = await fetch(url)
    assert (outcome.status, outcome.error, outcome.http_status) == (
        "failed",
        f"HTTP {status}",
        status,
    )
    assert outcome.retry_after is None and outcome.body is None


async def test_retry_after_seconds_and_http_date(feed_server: FeedServer) -> None:
    url = feed_server.add("/busy", status=429, headers={"Retry-After": "120"})
    busy = await fetch(url)
    assert (busy.error, busy.retry_after) == ("HTTP 429 (retry after 120 s)", 120.0)
    later = format_datetime(datetime.now(UTC) + timedelta(minutes=10), usegmt=True)
    url = feed_server.add("/down", status=503, headers={"Retry-After": later})
    down = await fetch(url)
    assert down.http_status == 503 and down.retry_after is not None
    assert 590 <= down.retry_after <= 600


async def test_freshness_headers_reach_the_outcome_on_200_and_304(feed_server: FeedServer) -> None:
    fresh = {"Cache-Control": "public, max-age=1800", "Age": "300"}
    url = feed_server.add("/cached.xml", body=FEED, etag=True, headers=fresh)
    first = await fetch(url)
    assert first.status == "changed" and max_age(first.headers) == 1500.0
    again = await fetch(url, first.validators)
    assert again.status == "not_modified" and max_age(again.headers) == 1800.0
    expires = format_datetime(datetime.now(UTC) + timedelta(minutes=45), usegmt=True)
    url = feed_server.add("/expires.xml", body=FEED, headers={"Expires": expires})
    outcome = await fetch(url)
    left = expires_in(outcome.headers)  # counted from the server's own Date header
    assert left is not None and 2690 <= left <= 2700 and max_age(outcome.headers) is None


async def test_errors_never_carry_the_url_or_its_token(feed_server: FeedServer) -> None:
    feed_server.add("/private", status=404)
    token = "s3cr3t-T0KEN"
    urls = [
        feed_server.url(f"/private?token={token}"),
        f"http://127.0.0.1:1/feed?token={token}",
        f"http://{token}.invalid/feed",
        f"ftp://127.0.0.1/{token}",
        f"http://[{token}/",
    ]
    async with fetcher_for() as fetcher:
        outcomes = await asyncio.gather(*(fetcher.fetch(u, Validators()) for u in urls))
    for outcome in outcomes:
        assert outcome.status == "failed"
        assert outcome.error and token not in outcome.error and len(outcome.error) <= 160
    assert [o.error for o in outcomes[:1]] == ["HTTP 404"]
    assert outcomes[1].error is not None and outcomes[1].error.startswith("cannot connect")


# -- bad bodies, end to end with the parser ---------------------------------------------


async def test_html_page_instead_of_a_feed(feed_server: FeedServer) -> None:
    page = b"<!DOCTYPE html><html><head><title>Welcome</title></head><body>Hi</body></html>"
    url = feed_server.add("/page", page, content_type="text/html; charset=utf-8")
    outcome = await fetch(url)
    assert outcome.status == "changed" and outcome.body is not None
    with pytest.raises(ParseError, match="not a feed: got an HTML page"):
        parse_feed(outcome.body, outcome.headers, SPEC)


async def test_wrong_declared_encoding_over_http(feed_server: FeedServer) -> None:
    item = {"id": "fr", "title": "Tinzaouatène : l’Algérie répond", "summary": "Maïga"}
    url = feed_server.add(
        "/fr.xml", feedgen.rss([item]), content_type="application/rss+xml; charset=ISO-8859-1"
    )
    outcome = await fetch(url)
    assert outcome.body is not None
    parsed = parse_feed(outcome.body, outcome.headers, SPEC)
    assert [(e.title, e.text) for e in parsed.entries] == [(item["title"], "Maïga")]
    assert any("read as UTF-8" in w for w in parsed.warnings)


async def test_entity_bomb_over_http(feed_server: FeedServer) -> None:
    url = feed_server.add("/bomb.xml", feedgen.entity_bomb(), gzip=True)
    outcome = await fetch(url)
    assert outcome.body is not None
    started = time.perf_counter()
    parsed = parse_feed(outcome.body, outcome.headers, SPEC)
    assert time.perf_counter() - started < 2.0
    assert all(len(e.title) <= 500 for e in parsed.entries)


# -- addresses --------------------------------------------------------------------------


async def test_private_addresses_are_refused_for_untrusted_feeds(feed_server: FeedServer) -> None:
    url = feed_server.add("/feed.xml", FEED)
    port = feed_server.port
    refused = [
        url,
        f"http://localhost:{port}/feed.xml",
        f"http://[::1]:{port}/feed.xml",
        f"http://[::ffff:127.0.0.1]:{port}/feed.xml",
        f"http://2130706433:{port}/feed.xml",  # 127.0.0.1 as one number
        "http://10.0.0.1/feed.xml",
        "http://192.168.1.1/feed.xml",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/feed.xml",
        "http://0.0.0.0/feed.xml",
    ]
    async with fetcher_for() as fetcher:
        outcomes = await asyncio.gather(
            *(fetcher.fetch(u, Validators(), allow_private=False) for u in refused)
        )
        trusted = await fetcher.fetch(url, Validators(), allow_private=True)
    for target, outcome in zip(refused, outcomes, strict=True):
        assert outcome.status == "failed", target
        assert outcome.error is not None and outcome.error.startswith("refused address"), target
    assert feed_server.hits("/feed.xml") == 1  # only the trusted fetch reached the server
    assert trusted.status == "changed"


async def test_every_redirect_hop_is_checked(
    feed_server_factory: Callable[..., FeedServer],
) -> None:
    server = feed_server_factory(hosts=2)
    server.add("/inside.xml", FEED)
    url = server.add("/outside", redirect_to=server.url("/inside.xml", host=1))

    def only_first_host(address: IPAddress) -> bool:  # stands in for "public"
        return address == ipaddress.ip_address("127.0.0.1")

    async with fetcher_for(address_policy=only_first_host) as fetcher:
        untrusted = await fetcher.fetch(url, Validators(), allow_private=False)
        trusted = await fetcher.fetch(url, Validators(), allow_private=True)
    assert untrusted.status == "failed" and untrusted.error is not None
    assert untrusted.error.startswith("refused address 127.0.0.2")
    assert trusted.status == "changed"
    assert [r.host for r in server.requests("/inside.xml")] == ["127.0.0.2"]  # trusted only


STRICT = LIMITS.model_copy(update={"allow_private_addresses": False})


def stand_in_public(*public: str) -> Callable[[IPAddress], bool]:
    """The strict policy, with chosen loopback addresses standing in for public ones."""
    allowed = {ipaddress.ip_address(a) for a in public}
    return lambda address: address in allowed or is_public_address(address)


async def test_the_setting_refuses_private_redirects_and_names(
    feed_server_factory: Callable[..., FeedServer],
) -> None:
    outside = feed_server_factory(hosts=2)  # 127.0.0.2 plays a public host
    inside = feed_server_factory()  # another port on 127.0.0.1
    inside.add("/secret.xml", FEED)
    port = inside.port
    targets = {
        "other-port": (inside.url("/secret.xml"), "127.0.0.1"),
        "mapped": (f"http://[::ffff:127.0.0.1]:{port}/secret.xml", "::ffff:7f00:1"),
        "mapped-hex": (f"http://[::ffff:7f00:1]:{port}/secret.xml", "::ffff:7f00:1"),
        "decimal": (f"http://2130706433:{port}/secret.xml", "127.0.0.1"),
        "octal": (f"http://0177.0.0.1:{port}/secret.xml", "127.0.0.1"),
        "hex": (f"http://0x7f.1:{port}/secret.xml", "127.0.0.1"),
        "name": (f"http://localhost:{port}/secret.xml", ""),
    }
    urls = {
        key: outside.add(f"/{key}", redirect_to=target)
        for key, (target, _address) in targets.items()
    }
    public = outside.url("/feed.xml", host=1)
    outside.add("/feed.xml", FEED)
    async with fetcher_for(STRICT, address_policy=stand_in_public("127.0.0.2")) as fetcher:
        outcomes = await asyncio.gather(
            *(
                fetcher.fetch(url.replace("127.0.0.1", "127.0.0.2"), Validators())
                for url in urls.values()
            )
        )
        direct = await fetcher.fetch(f"http://localhost:{port}/secret.xml", Validators())
        allowed = await fetcher.fetch(public, Validators())
    for (key, (_target, address)), outcome in zip(targets.items(), outcomes, strict=True):
        assert outcome.status == "failed", key
        assert outcome.error is not None
        assert outcome.error.startswith(f"refused address {address}"), (key, outcome.error)
        assert outcome.error.endswith("(not public)"), key
    assert direct.status == "failed" and direct.error is not None
    assert direct.error.startswith("refused address ") and direct.error.endswith("(not public)")
    assert allowed.status == "changed" and allowed.body == FEED
    assert inside.requests() == []  # nothing reached the private server
    assert len(outside.requests()) == len(targets) + 1


async def test_metadata_addresses_are_refused_by_default_before_connecting(
    feed_server: FeedServer,
) -> None:
    targets = {
        "/plain": "http://169.254.169.254/latest/meta-data/",
        "/decimal": "http://2852039166/latest/meta-data/",
        "/mapped": "http://[::ffff:169.254.169.254]/latest/meta-data/",
        "/nat64": "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
        "/ecs": "http://169.254.170.2/v2/credentials",
        "/aws-v6": "http://[fd00:ec2::254]/latest/meta-data/",
        "/alibaba": "http://100.100.100.200/latest/meta-data/",
    }
    urls = [feed_server.add(path, redirect_to=target) for path, target in targets.items()]
    local = feed_server.add("/feed.xml", FEED)
    assert LIMITS.allow_private_addresses  # the default: private feeds are fine
    started = time.perf_counter()
    async with fetcher_for() as fetcher:
        outcomes = await asyncio.gather(*(fetcher.fetch(u, Validators()) for u in urls))
    elapsed = time.perf_counter() - started
    async with fetcher_for() as fetcher:
        loopback = await fetcher.fetch(local, Validators())
    for path, outcome in zip(targets, outcomes, strict=True):
        assert outcome.status == "failed", path
        assert outcome.error is not None
        assert outcome.error.startswith("refused address "), (path, outcome.error)
        assert outcome.error.endswith("(cloud metadata or link-local)"), path
        assert outcome.http_status is None
    assert outcomes[0].error == "refused address 169.254.169.254 (cloud metadata or link-local)"
    assert outcomes[1].error == outcomes[0].error  # the decimal spelling is the same address
    # refused before any connection: far below the 1 s connect timeout a try would cost
    assert elapsed < LIMITS.connect_timeout / 2
    assert loopback.status == "changed"


# -- concurrency ------------------------------------------------------------------------


async def test_overall_and_per_host_limits_hold(
    feed_server_factory: Callable[..., FeedServer],
) -> None:
    server = feed_server_factory(latency=0.15, hosts=3)
    urls = []
    for n in range(24):
        server.add(f"/f{n}.xml", FEED)
        urls.append(server.url(f"/f{n}.xml", host=n % 3))
    limits = Limits(concurrency=5, per_host_concurrency=2)
    async with fetcher_for(limits) as fetcher:
        outcomes = await asyncio.gather(*(fetcher.fetch(u, Validators()) for u in urls))
    assert {o.status for o in outcomes} == {"changed"}
    stats = server.stats()
    assert stats.requests == 24
    assert stats.max_in_flight == 5  # reached, never passed
    assert max(stats.max_in_flight_by_host.values()) == 2


async def test_one_host_is_limited_while_others_proceed(
    feed_server_factory: Callable[..., FeedServer],
) -> None:
    server = feed_server_factory(latency=0.2, hosts=2)
    for n in range(8):
        server.add(f"/f{n}.xml", FEED)
    busy = [server.url(f"/f{n}.xml", host=0) for n in range(6)]
    other = [server.url(f"/f{n}.xml", host=1) for n in (6, 7)]
    limits = Limits(concurrency=4, per_host_concurrency=2)
    async with fetcher_for(limits) as fetcher:
        started = time.monotonic()
        tasks = [asyncio.create_task(fetcher.fetch(u, Validators())) for u in busy + other]
        done_other = await asyncio.gather(*tasks[6:])
        other_elapsed = time.monotonic() - started
        await asyncio.gather(*tasks[:6])
    assert all(o.status == "changed" for o in done_other)
    assert server.stats().max_in_flight_by_host == {"127.0.0.1": 2, "127.0.0.2": 2}
    assert other_elapsed < 0.6  # not stuck behind the six feeds of the busy host


# -- pure helpers -----------------------------------------------------------------------


def test_parse_retry_after() -> None:
    now = datetime(2025, 4, 1, 9, 0, tzinfo=UTC)
    assert parse_retry_after("120", now=now) == 120.0
    assert parse_retry_after("Tue, 01 Apr 2025 09:05:00 GMT", now=now) == 300.0
    assert parse_retry_after("Tue, 01 Apr 2025 08:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("-5") is None


def test_max_age_reads_cache_control_less_age() -> None:
    assert max_age({"cache-control": "max-age=600"}) == 600.0
    assert max_age({"cache-control": 'Public, MAX-AGE="900", must-revalidate'}) == 900.0
    assert max_age({"cache-control": "max-age=600", "age": "700"}) == 0.0
    assert max_age({"cache-control": "s-maxage=600"}) is None  # for shared caches only
    assert max_age({"cache-control": "no-cache, max-age=600"}) is None
    assert max_age({"cache-control": "no-store"}) is None
    assert max_age({"cache-control": "max-age=-1"}) is None
    assert max_age({}) is None


def test_expires_in_counts_from_the_servers_date() -> None:
    date = "Tue, 01 Apr 2025 09:00:00 GMT"
    assert expires_in({"date": date, "expires": "Tue, 01 Apr 2025 10:00:00 GMT"}) == 3600.0
    assert expires_in({"date": date, "expires": "Tue, 01 Apr 2025 08:00:00 GMT"}) == 0.0
    assert expires_in({"date": date, "expires": "0"}) == 0.0  # invalid: already expired
    assert expires_in({"date": date}) is None
    later = format_datetime(datetime.now(UTC) + timedelta(hours=2), usegmt=True)
    no_date = expires_in({"expires": later})
    assert no_date is not None and 7000 < no_date <= 7200  # from our clock without a Date
