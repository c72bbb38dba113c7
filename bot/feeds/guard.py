"""Refuse private, loopback, link-local and reserved addresses when fetching feeds.

Two policies (`limits.allow_private_addresses`):

* ``false``: only globally routable unicast addresses (`is_public_address`): no private,
  loopback, link-local, multicast, reserved or unspecified address, nor one embedded in
  an IPv6 address (IPv4-mapped, IPv4-compatible, 6to4, Teredo, NAT64).
* ``true`` (the default): the operator's feeds may live on the LAN or on loopback, but
  cloud metadata addresses are refused (`is_metadata_address`: all of IPv4 link-local
  169.254.0.0/16, IPv6 link-local fe80::/10, fd00:ec2::254 and Alibaba's
  100.100.100.200), unless a hop's URL names that address literally; the feed's own URL
  may, a redirect or a DNS answer that lands there is refused (`hop_policy`).

IPv4 literals in the forms `inet_aton` accepts (``2130706433``, ``0177.0.0.1``,
``0x7f.1``, ``127.1``) are read as the address they mean (`literal_address`,
`normalise_url`), so no spelling slips past the check.

The policy travels in a context variable so that one shared `httpx.AsyncClient` serves
every fetch. Two checks:

* the fetcher checks each hop's host before the request is sent when it is an address
  literal (a refused hop never opens a connection), and resolves names too under the
  strict policy (a pooled keep-alive connection is checked that way as well);
* `GuardedBackend`, the network backend of the transport built by `guarded_transport`,
  resolves once when it opens a connection, checks every address and connects to the
  checked address itself, so a DNS answer that changes between check and connect
  (rebinding) cannot slip through. TLS still verifies the original host name.

`httpx-secure` does the same per client; we keep one shared client and need the policy
per request (and per hop), so this small module is used instead.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpcore
import httpx

from bot.errors import FetchError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
AddressPolicy = Callable[[IPAddress], bool]

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # the IPv4 address sits in the last 32 bits
_METADATA_NETWORKS = (
    ipaddress.IPv4Network("169.254.0.0/16"),  # AWS, GCP, Azure, OCI (169.254.169.254), ECS
    ipaddress.IPv6Network("fe80::/10"),
)
_METADATA_ADDRESSES = frozenset(
    (ipaddress.IPv6Address("fd00:ec2::254"), ipaddress.IPv4Address("100.100.100.200"))
)
# One to four parts, each decimal, octal (leading 0) or hex (0x): what inet_aton reads.
_NUMERIC_IPV4 = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}", re.I)
_POLICY: ContextVar[AddressPolicy | None] = ContextVar("sahel_watch_address_policy", default=None)


class AddressRefused(FetchError):
    """The host resolves to an address the policy refuses (the message names no URL)."""


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, 6to4, Teredo, NAT64)."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.teredo is not None:
        return address.teredo[1]
    if int(address) >> 32 == 0 and int(address) > 0xFFFF:  # deprecated IPv4-compatible ::a.b.c.d
        return ipaddress.IPv4Address(int(address))
    return None


def is_public_address(address: IPAddress) -> bool:
    """True for globally routable unicast addresses only."""
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        return is_public_address(embedded)
    return bool(address.is_global) and not address.is_multicast


def is_metadata_address(address: IPAddress) -> bool:
    """True for link-local and cloud metadata addresses, embedded ones included."""
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        return is_metadata_address(embedded)
    if address in _METADATA_ADDRESSES:
        return True
    return any(address in network for network in _METADATA_NETWORKS)


def not_metadata(address: IPAddress) -> bool:
    """The default policy: anything but a metadata address."""
    return not is_metadata_address(address)


def hop_policy(policy: AddressPolicy, named: IPAddress | None) -> AddressPolicy:
    """`policy`, except that the address a hop's URL names literally is allowed.

    Used with `not_metadata` for the feed's own URL: the operator who writes
    ``http://169.254.169.254/...`` in the config means it.
    """
    if named is None or policy(named):
        return policy
    return lambda address: address == named or policy(address)


def literal_address(host: str) -> IPAddress | None:
    """The address `host` spells, IPv6 in brackets and numeric IPv4 forms included."""
    bare = host.strip("[]")
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        pass
    if not _NUMERIC_IPV4.fullmatch(bare):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(bare))
    except OSError:
        return None


def normalise_url(url: str) -> str:
    """`url` with a numeric IPv4 host form (``0177.0.0.1``) written as a dotted quad.

    httpx refuses some of these forms and passes others to the resolver as names;
    written out, every hop names the address it goes to.
    """
    try:
        parts = urlsplit(url)
    except ValueError:  # a malformed URL: left for httpx to refuse
        return url
    userinfo, at, hostport = parts.netloc.rpartition("@")
    host, colon, port = hostport.partition(":")
    if not host or host.startswith("["):
        return url
    address = literal_address(host)
    if address is None or str(address) == host:
        return url
    netloc = f"{userinfo}{at}{address}{colon}{port}"
    return urlunsplit(parts._replace(netloc=netloc))


@contextmanager
def address_policy(policy: AddressPolicy | None) -> Iterator[None]:
    """Apply `policy` to connections opened in this context (None: no check)."""
    token = _POLICY.set(policy)
    try:
        yield
    finally:
        _POLICY.reset(token)


async def _resolve(host: str, port: int) -> list[IPAddress]:
    literal = literal_address(host)
    if literal is not None:
        return [literal]
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


def check_address(address: IPAddress, policy: AddressPolicy) -> None:
    """Raise `AddressRefused`, saying why, when `policy` refuses `address`."""
    if policy(address):
        return
    why = "cloud metadata or link-local" if is_metadata_address(address) else "not public"
    raise AddressRefused(f"refused address {address} ({why})")


async def check_host(host: str, port: int, policy: AddressPolicy) -> list[IPAddress]:
    """Resolve `host`; raise `AddressRefused` if any of its addresses is refused."""
    addresses = await _resolve(host, port)
    for address in addresses:
        check_address(address, policy)
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
