"""Refuse private, loopback, link-local and reserved addresses for untrusted feed URLs.

Feeds from the operator's config may live anywhere (a feed on the LAN is fine); feeds
added from a chat may not, or a chat user could make the bot read internal services.

Two checks, both driven by an address policy carried in a context variable so that one
shared `httpx.AsyncClient` serves both kinds of feed:

* `check_host` resolves the host of every URL (first request and each redirect hop)
  before the request is sent; this also covers a pooled keep-alive connection.
* `GuardedBackend`, the network backend of the transport built by `guarded_transport`,
  resolves again when it opens a connection, checks every address and connects to the
  checked address itself, so a DNS answer that changes between check and connect
  (rebinding) cannot slip through. TLS still verifies the original host name.

`httpx-secure` does the same per client; we keep one shared client and need the check
per request, so this small module is used instead (no extra dependency).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import httpcore
import httpx

from bot.errors import FetchError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
AddressPolicy = Callable[[IPAddress], bool]

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # the IPv4 address sits in the last 32 bits
_POLICY: ContextVar[AddressPolicy | None] = ContextVar("sahel_watch_address_policy", default=None)


class AddressRefused(FetchError):
    """The host resolves to an address the policy refuses (the message names no URL)."""


def is_public_address(address: IPAddress) -> bool:
    """True for globally routable unicast addresses only."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        elif address.teredo is not None:
            embedded = address.teredo[1]
        if embedded is not None:
            return is_public_address(embedded)
    return bool(address.is_global) and not address.is_multicast


@contextmanager
def address_policy(policy: AddressPolicy | None) -> Iterator[None]:
    """Apply `policy` to connections opened in this context (None: no check)."""
    token = _POLICY.set(policy)
    try:
        yield
    finally:
        _POLICY.reset(token)


async def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError("cannot resolve host") from exc
    found: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        # The address part may carry a scope ("fe80::1%eth0"): ip_address refuses it.
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    if not found:
        raise FetchError("cannot resolve host")
    return found


def _first_refused(addresses: Iterable[IPAddress], policy: AddressPolicy) -> IPAddress | None:
    return next((a for a in addresses if not policy(a)), None)


async def check_host(host: str, port: int, policy: AddressPolicy) -> list[IPAddress]:
    """Resolve `host`; raise `AddressRefused` if any of its addresses is refused."""
    addresses = await _resolve(host, port)
    refused = _first_refused(addresses, policy)
    if refused is not None:
        raise AddressRefused(f"refused address {refused} (not a public address)")
    return addresses


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """A network backend that applies the current address policy when connecting."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._inner = inner if inner is not None else httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        policy = _POLICY.get()
        if policy is None:
            return await self._inner.connect_tcp(
                host,
                port,
                timeout=timeout,
                local_address=local_address,
                socket_options=socket_options,
            )
        try:
            async with asyncio.timeout(timeout):
                addresses = await check_host(host, port, policy)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout("timed out resolving host") from exc
        last_error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if _POLICY.get() is not None:
            raise AddressRefused("refused: unix sockets are not allowed")
        return await self._inner.connect_unix_socket(
            path, timeout=timeout, socket_options=socket_options
        )

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_transport(limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose connections go through `GuardedBackend`.

    httpx 0.28 does not take a network backend, so the transport's connection pool is
    rebuilt with the same settings plus ours (httpx is pinned below 0.29; the fetch
    tests that refuse private addresses over real sockets would catch a change).
    """
    ssl_context = httpx.create_ssl_context()
    transport = httpx.AsyncHTTPTransport(verify=ssl_context, limits=limits, retries=0)
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl_context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        http1=True,
        http2=False,
        retries=0,
        network_backend=GuardedBackend(),
    )
    return transport
