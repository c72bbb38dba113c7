"""Fetch feeds over HTTP: one shared client, bounded in concurrency, time and size.

`Fetcher.fetch` answers one of four things and never raises for a feed problem:

* ``changed``       a new body (bytes, decoded) with the validators to store;
* ``unchanged``     200 with the same body hash as last time (nothing to parse);
* ``not_modified``  304 to our conditional GET (ETag / Last-Modified);
* ``failed``        a short reason safe to show users ("HTTP 404", "timed out after
                    30 s", "body larger than 5000000 bytes", ...) and, for 429/503,
                    the server's Retry-After in seconds.

`max_age` and `expires_in` read how long an answer stays fresh from its headers, for the
poll schedule (bot/feeds/schedule.py).

Bounds: `limits.concurrency` fetches at once and `limits.per_host_concurrency` per
host (semaphores held here, so any caller gets them); connect and per-read timeouts
from the client plus an overall deadline per fetch (`limits.total_timeout`, which
also bounds a body that drips or never ends); the body cap is applied to the decoded
bytes while they stream in, and decompression is done here with an output bound, so a
gzip bomb costs at most the cap. Redirects are followed by hand, at most
`limits.max_redirects` hops.

Every hop goes through the address guard (`bot.feeds.guard`): with
`limits.allow_private_addresses = false` only public addresses; with the default `true`
anything but cloud metadata / link-local addresses, which only the feed's own URL may
name. A refused hop fails the fetch ("refused address 169.254.169.254 (cloud metadata or
link-local)") before any connection to it is opened.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import httpx

from bot.errors import FetchError
from bot.feeds import guard
from bot.feeds.body import drain, read_body
from bot.pacing import KeyedGate
from bot.settings import Limits

log = logging.getLogger(__name__)

FetchStatus = Literal["changed", "unchanged", "not_modified", "failed"]

ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, application/feed+json;q=0.8, */*;q=0.5"
)
_REDIRECTS = frozenset((301, 302, 303, 307, 308))
_RETRY_AFTER_STATUSES = frozenset((429, 503))
_DROPPED_HEADERS = frozenset(("content-encoding", "content-length", "transfer-encoding"))
_MAX_ERROR_CHARS = 160


@dataclass(frozen=True, slots=True)
class Validators:
    """What we remember about a feed's last body, for the next conditional GET."""

    etag: str | None = None
    last_modified: str | None = None
    content_hash: str | None = None


@dataclass(frozen=True, slots=True)
class FetchOutcome:
    """The answer of one fetch. `url` is the URL asked for; `final_url` after redirects."""

    url: str
    status: FetchStatus
    body: bytes | None
    headers: Mapping[str, str]
    http_status: int | None
    validators: Validators
    error: str | None
    retry_after: float | None
    elapsed: float
    final_url: str = field(default="")


def make_client(limits: Limits) -> httpx.AsyncClient:
    """The one shared client: our timeouts, pool size, User-Agent and address guard."""
    # In-flight requests are bounded by Fetcher's semaphores. Every connection may stay
    # open: httpcore 1.0's pool closes an idle connection as soon as it holds more
    # connections than `max_keepalive_connections` (it counts them all, not the idle ones),
    # so with 10 of 50 no connection was ever reused: a connect and a close per request.
    # A cycle's lanes stay with their host (bot/feeds/lanes.py), so few connections are
    # idle at a time; each costs a poll() per request while it is.
    pool = httpx.Limits(
        max_connections=limits.concurrency,
        max_keepalive_connections=limits.concurrency,
        keepalive_expiry=15.0,
    )
    timeout = httpx.Timeout(
        connect=limits.connect_timeout,
        read=limits.read_timeout,
        write=limits.read_timeout,
        pool=limits.total_timeout,
    )
    return httpx.AsyncClient(
        transport=guard.guarded_transport(pool),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
        event_hooks={"response": [_normalise_location]},
        headers={
            "User-Agent": limits.user_agent,
            "Accept": ACCEPT,
            "Accept-Encoding": "gzip, deflate",
        },
    )


async def _normalise_location(response: httpx.Response) -> None:
    """Write a numeric IPv4 host in Location as a dotted quad (``0177.0.0.1``).

    httpx parses Location even when it does not follow redirects, and refuses some of
    these spellings; rewritten here, the hop reaches the address guard like any other.
    """
    location = response.headers.get("location")
    if location is not None:
        response.headers["location"] = guard.normalise_url(location.strip())


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date; None if unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    when = _http_date(value)
    if when is None:
        return None
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


def max_age(headers: Mapping[str, str]) -> float | None:
    """Seconds the response stays fresh by `Cache-Control: max-age`, less its `Age`.

    None without a max-age, or when `no-cache` / `no-store` say it is never fresh (the
    client is private: `s-maxage` is for shared caches). Lower-case header names.
    """
    directives: dict[str, str] = {}
    for part in headers.get("cache-control", "").split(","):
        name, _, value = part.partition("=")
        directives[name.strip().lower()] = value.strip().strip('"')
    if "no-cache" in directives or "no-store" in directives:
        return None
    seconds = directives.get("max-age", "")
    if not seconds.isdigit():
        return None
    age = headers.get("age", "").strip()
    return max(0.0, float(seconds) - (float(age) if age.isdigit() else 0.0))


def expires_in(headers: Mapping[str, str]) -> float | None:
    """Seconds the response stays fresh by `Expires`, counted from its `Date` (the server's
    clock on both sides); None without a readable Expires. An invalid Expires such as "0"
    means already expired (RFC 9111): 0. Lower-case header names."""
    value = headers.get("expires")
    if value is None:
        return None
    expires = _http_date(value)
    if expires is None:
        return 0.0
    sent = _http_date(headers.get("date", "")) or datetime.now(UTC)
    return max(0.0, (expires - sent).total_seconds())


def _http_date(value: str) -> datetime | None:
    """An HTTP date as an aware datetime; None if unreadable."""
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def _short(message: str) -> str:
    flat = " ".join(message.split())
    if len(flat) > _MAX_ERROR_CHARS:
        flat = flat[: _MAX_ERROR_CHARS - 1] + "…"
    return flat


def _conditional_headers(validators: Validators) -> dict[str, str]:
    headers = {}
    if validators.etag:
        headers["If-None-Match"] = validators.etag
    if validators.last_modified:
        headers["If-Modified-Since"] = validators.last_modified
    return headers


@dataclass(slots=True)
class _Run:
    """The state of one fetch while it follows redirects."""

    url: str
    validators: Validators
    strict: bool  # only public addresses; else anything but metadata addresses
    named: guard.IPAddress | None  # the address the feed's own URL spells, if it does
    deadline: asyncio.Timeout
    started: float = 0.0

    def elapsed(self) -> float:
        return time.monotonic() - self.started if self.started else 0.0


class Fetcher:
    """Fetches feeds with one shared client; see the module docstring for the bounds.

    Each hop takes its host's slot, then an overall slot, and gives both back before
    the next hop (no hop waits for a slot while holding one, so no deadlock). The
    deadline starts when the first hop gets its slots: queueing is not a timeout.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        limits: Limits,
        *,
        address_policy: guard.AddressPolicy = guard.is_public_address,
    ) -> None:
        self._client = client
        self._limits = limits
        self._policy = address_policy
        self._allow_private = limits.allow_private_addresses
        self._overall = asyncio.Semaphore(limits.concurrency)
        self._hosts: KeyedGate[str] = KeyedGate(limits.per_host_concurrency)

    async def fetch(
        self, url: str, validators: Validators, *, allow_private: bool | None = None
    ) -> FetchOutcome:
        """Fetch `url` with a conditional GET; never raises for a feed problem.

        `allow_private`: None follows `limits.allow_private_addresses`.
        """
        if allow_private is None:
            allow_private = self._allow_private
        run = _Run(
            url=url,
            validators=validators,
            strict=not allow_private,
            named=None,
            deadline=asyncio.timeout(None),
        )
        try:
            async with run.deadline:
                return await self._follow(run)
        except TimeoutError:
            if run.deadline.expired():
                reason = f"timed out after {self._limits.total_timeout:g} s"
            else:
                reason = "timed out"
        except FetchError as exc:
            reason = str(exc)
        except httpx.ConnectTimeout:
            reason = "connect timeout"
        except httpx.ReadTimeout:
            reason = "read timeout (server stopped sending)"
        except httpx.TimeoutException:
            reason = "timed out"
        except httpx.ConnectError as exc:
            reason = f"cannot connect: {exc}" if str(exc) else "cannot connect"
        except httpx.RemoteProtocolError as exc:
            reason = f"protocol error: {exc}"
        except (httpx.InvalidURL, httpx.UnsupportedProtocol):
            reason = "invalid URL"
        except httpx.HTTPError as exc:
            reason = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # one odd feed must not stop the cycle
            log.exception("unexpected error while fetching a feed")
            reason = f"internal error ({type(exc).__name__})"
        return _failed(run, _short(reason))

    async def _follow(self, run: _Run) -> FetchOutcome:
        current = httpx.URL(guard.normalise_url(run.url))
        run.named = guard.literal_address(current.host)
        seen = {str(current)}
        for _hop in range(self._limits.max_redirects + 1):
            if current.scheme not in ("http", "https"):
                raise FetchError("invalid URL: only http and https are fetched")
            if not current.host:
                raise FetchError("invalid URL: no host")
            policy = await self._hop_policy(run, current)
            with guard.address_policy(policy):
                async with self._hosts.hold(current.host.lower()), self._overall:
                    if not run.started:
                        run.started = time.monotonic()
                        loop = asyncio.get_running_loop()
                        run.deadline.reschedule(loop.time() + self._limits.total_timeout)
                    request = self._client.build_request(
                        "GET", current, headers=_conditional_headers(run.validators)
                    )
                    response = await self._client.send(request, stream=True)
                    try:
                        if response.status_code in _REDIRECTS:
                            await drain(response)
                            current = _next_hop(response, seen)
                            continue
                        return await self._answer(run, response)
                    finally:
                        await response.aclose()
        raise FetchError(f"too many redirects (more than {self._limits.max_redirects})")

    async def _hop_policy(self, run: _Run, url: httpx.URL) -> guard.AddressPolicy:
        """The address policy of one hop, checked here for its host before anything is sent.

        An address literal is checked at once (no connection is opened to a refused one).
        A name is resolved here only under the strict policy, which also covers a pooled
        connection; otherwise the transport checks the addresses it connects to.
        """
        literal = guard.literal_address(url.host)
        if run.strict:
            policy = self._policy
        else:
            named = run.named if literal is not None and literal == run.named else None
            policy = guard.hop_policy(guard.not_metadata, named)
        if literal is not None:
            guard.check_address(literal, policy)
        elif run.strict:
            await self._check(url, policy)
        return policy

    async def _check(self, url: httpx.URL, policy: guard.AddressPolicy) -> None:
        """The address guard for one hop, its DNS lookup bounded by the connect timeout."""
        try:
            async with asyncio.timeout(self._limits.connect_timeout):
                await guard.check_host(url.host, url.port or 0, policy)
        except TimeoutError:
            raise FetchError("timed out resolving host") from None

    async def _answer(self, run: _Run, response: httpx.Response) -> FetchOutcome:
        status = response.status_code
        headers = {
            k.lower(): v for k, v in response.headers.items() if k.lower() not in _DROPPED_HEADERS
        }
        final_url = str(response.url)
        old = run.validators
        if status == 304:
            await drain(response)
            kept = Validators(
                etag=headers.get("etag") or old.etag,
                last_modified=headers.get("last-modified") or old.last_modified,
                content_hash=old.content_hash,
            )
            return FetchOutcome(
                url=run.url,
                status="not_modified",
                body=None,
                headers=headers,
                http_status=status,
                validators=kept,
                error=None,
                retry_after=None,
                elapsed=run.elapsed(),
                final_url=final_url,
            )
        if not 200 <= status < 300:
            await drain(response)
            retry_after = None
            if status in _RETRY_AFTER_STATUSES:
                retry_after = parse_retry_after(headers.get("retry-after"))
            error = f"HTTP {status}"
            if retry_after is not None:
                error += f" (retry after {retry_after:.0f} s)"
            return _failed(
                run,
                error,
                http_status=status,
                headers=headers,
                retry_after=retry_after,
                final_url=final_url,
            )
        content = await read_body(response, self._limits.max_body_bytes)
        digest = hashlib.sha256(content).hexdigest()
        fresh = Validators(
            etag=headers.get("etag"),
            last_modified=headers.get("last-modified"),
            content_hash=digest,
        )
        unchanged = digest == old.content_hash
        return FetchOutcome(
            url=run.url,
            status="unchanged" if unchanged else "changed",
            body=None if unchanged else content,
            headers=headers,
            http_status=status,
            validators=fresh,
            error=None,
            retry_after=None,
            elapsed=run.elapsed(),
            final_url=final_url,
        )


def _next_hop(response: httpx.Response, seen: set[str]) -> httpx.URL:
    location = response.headers.get("location")
    if not location:
        raise FetchError(f"HTTP {response.status_code} redirect without a Location")
    try:
        target = response.url.join(guard.normalise_url(location.strip()))
        target = target.copy_with(fragment=None)
    except httpx.InvalidURL as exc:
        raise FetchError("invalid redirect Location") from exc
    if str(target) in seen:
        raise FetchError("redirect loop")
    seen.add(str(target))
    return target


def _failed(
    run: _Run,
    error: str,
    *,
    http_status: int | None = None,
    headers: Mapping[str, str] | None = None,
    retry_after: float | None = None,
    final_url: str = "",
) -> FetchOutcome:
    return FetchOutcome(
        url=run.url,
        status="failed",
        body=None,
        headers=headers or {},
        http_status=http_status,
        validators=run.validators,
        error=error,
        retry_after=retry_after,
        elapsed=run.elapsed(),
        final_url=final_url or run.url,
    )
