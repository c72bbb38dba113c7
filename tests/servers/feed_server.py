"""A real HTTP/1.1 feed server on 127.0.0.1 for tests and benchmarks (stdlib only).

It runs `ThreadingHTTPServer` in background threads and serves scripted routes::

    with FeedServer(latency=0.1) as server:
        url = server.add("/feed.xml", body=feedgen.rss(items), etag=True, gzip=True)
        ...
        assert server.hits("/feed.xml") == 2 and server.stats().not_modified == 1

A route can: serve bytes (or a function of the hit number, for content that changes)
with a content type; answer 304 to If-None-Match / If-Modified-Since; gzip when asked;
drip its body a byte at a time; never end; stream a huge generated body (never held
in memory); redirect; answer any status with any headers (429 + Retry-After ...).
With ``hosts=n`` the same routes answer on 127.0.0.1 ... 127.0.0.n (same port), so
per-host limits can be exercised. Every request is counted and logged (host, path,
status, headers; logged before the client can see the answer), with the peak number of
requests in flight overall and per host and the connections accepted. "In flight" runs
from arrival until the answer starts, so with a latency set it never exceeds the client's
real concurrency.
Status 0 in the log means the server stopped before answering.
"""

from __future__ import annotations

import dataclasses
import email.utils
import gzip as gzip_module
import hashlib
import threading
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

Body = bytes | Callable[[int], bytes]
CHUNK = 64 * 1024
_FILLER = b"<item><title>filler</title><description>" + b"x" * 900 + b"</description></item>\n"


@dataclass(frozen=True, slots=True)
class Route:
    """How one path answers. `body` may be a function of the 1-based hit number."""

    body: Body = b""
    content_type: str = "application/rss+xml; charset=utf-8"
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    etag: bool | str = False  # True: a hash of the body
    last_modified: str | None = None  # an HTTP date; enables If-Modified-Since
    gzip: bool = False  # compress when the client accepts gzip
    drip_interval: float | None = None  # send the body one byte per interval
    endless: bool = False  # chunked body that never ends
    chunk_interval: float = 0.0  # pause between chunks of an endless or huge body
    size: int | None = None  # stream a generated body of this many bytes
    announce_size: bool = False  # with `size`: send Content-Length (else chunked)
    redirect_to: str | None = None  # a path or URL; answered with `status` (302 default)
    latency: float | None = None  # overrides the server's latency for this route


@dataclass(frozen=True, slots=True)
class RequestRecord:
    host: str
    path: str
    status: int
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class ServerStats:
    requests: int
    not_modified: int
    by_path: Mapping[str, int]
    by_status: Mapping[int, int]
    max_in_flight: int
    max_in_flight_by_host: Mapping[str, int]
    connections: int = 0  # accepted, over all hosts: a client that reuses them opens few


@lru_cache(maxsize=4096)
def _gzipped(body: bytes) -> bytes:
    return gzip_module.compress(body, compresslevel=5, mtime=0)


def _matches_etag(header: str, etag: str) -> bool:
    wanted = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in wanted or etag.removeprefix("W/") in wanted


def _not_modified_since(header: str, last_modified: str) -> bool:
    try:
        since = email.utils.parsedate_to_datetime(header)
        modified = email.utils.parsedate_to_datetime(last_modified)
    except (TypeError, ValueError, IndexError):
        return False
    return modified <= since


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Listener
    logged = False

    def log_message(self, format: str, *args: object) -> None:
        pass

    def send_response(self, code: int, message: str | None = None) -> None:
        # Logged before the status line is flushed, so a client that has its answer
        # always finds its request in the log and stats.
        if not self.logged:
            self.logged = True
            owner = self.server.owner
            path = getattr(self, "path", "")  # unset when the request line was malformed
            headers = getattr(self, "headers", None) or Message()
            owner._record(str(self.server.server_address[0]), path, code, headers)
        super().send_response(code, message)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        owner = self.server.owner
        host = str(self.server.server_address[0])
        path = self.path
        hit = owner._begin(host, path)
        self.logged = False
        settled = False
        try:
            route = owner._route(path)
            latency = owner.latency if route is None or route.latency is None else route.latency
            if latency > 0 and owner._stopping.wait(latency):
                return
            # "In flight" ends when the answer starts: the client cannot have seen it
            # yet, so the peak counted here never exceeds the client's real concurrency.
            owner._settle(host)
            settled = True
            self._answer(route, hit)
        finally:
            if not settled:
                owner._settle(host)
            if not self.logged:  # stopped before answering: logged with status 0
                owner._record(host, path, 0, self.headers)

    # -- answers -----------------------------------------------------------------------

    def _simple(self, status: int, body: bytes, headers: Mapping[str, str]) -> int:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        return status

    def _answer(self, route: Route | None, hit: int) -> int:
        if route is None:
            return self._simple(404, b"not found", {"Content-Type": "text/plain"})
        if route.redirect_to is not None:
            status = route.status if 300 <= route.status < 400 else 302
            return self._simple(status, b"", {**route.headers, "Location": route.redirect_to})
        headers = {"Content-Type": route.content_type, **route.headers}
        if route.status != 200:
            body = route.body(hit) if callable(route.body) else route.body
            return self._simple(route.status, body, headers)
        if route.endless or route.size is not None:
            return self._stream(route, headers)
        body = route.body(hit) if callable(route.body) else route.body
        etag = route.etag if isinstance(route.etag, str) else None
        if route.etag is True:
            etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
        if etag:
            headers["ETag"] = etag
        if route.last_modified:
            headers["Last-Modified"] = route.last_modified
        if_none_match = self.headers.get("If-None-Match")
        if_modified_since = self.headers.get("If-Modified-Since")
        if (etag and if_none_match and _matches_etag(if_none_match, etag)) or (
            route.last_modified
            and if_modified_since
            and not if_none_match
            and _not_modified_since(if_modified_since, route.last_modified)
        ):
            self.send_response(304)
            for name in ("ETag", "Last-Modified", "Cache-Control", "Expires"):  # RFC 9110
                if name in headers:
                    self.send_header(name, headers[name])
            self.end_headers()
            return 304
        if route.gzip and "gzip" in self.headers.get("Accept-Encoding", ""):
            body = _gzipped(body)
            headers["Content-Encoding"] = "gzip"
        if route.drip_interval is not None:
            return self._drip(body, headers, route.drip_interval)
        return self._simple(200, body, headers)

    def _drip(self, body: bytes, headers: Mapping[str, str], interval: float) -> int:
        self.send_response(200)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.flush()
        for index in range(len(body)):
            if self.server.owner._stopping.wait(interval):
                break
            self.wfile.write(body[index : index + 1])
            self.wfile.flush()
        return 200

    def _stream(self, route: Route, headers: Mapping[str, str]) -> int:
        """A generated body: `size` bytes (or endless), chunked unless announced."""
        self.send_response(200)
        for name, value in headers.items():
            self.send_header(name, value)
        chunked = route.endless or not route.announce_size
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(route.size))
        self.end_headers()
        block = (_FILLER * (CHUNK // len(_FILLER) + 1))[:CHUNK]
        head = b'<?xml version="1.0"?><rss version="2.0"><channel><title>big</title>\n'
        remaining = None if route.endless else route.size
        first = True
        stopping = self.server.owner._stopping
        while remaining is None or remaining > 0:
            piece = head + block[len(head) :] if first else block
            first = False
            if remaining is not None:
                piece = piece[:remaining]
                remaining -= len(piece)
            if chunked:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            else:
                self.wfile.write(piece)
            if stopping.is_set() or (route.chunk_interval and stopping.wait(route.chunk_interval)):
                break
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        return 200


class _Listener(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the default (5) drops SYNs under a burst of connections

    def __init__(self, address: tuple[str, int], owner: FeedServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        self.owner._connected()
        super().process_request(request, client_address)

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that hang up mid-body (the point of several routes) are normal


class FeedServer:
    """Scripted feed routes over real HTTP on loopback; see the module docstring."""

    def __init__(self, *, latency: float = 0.0, hosts: int = 1) -> None:
        if not 1 <= hosts <= 250:
            raise ValueError("hosts must be between 1 and 250")
        self.latency = latency
        self._host_count = hosts
        self._routes: dict[str, Route] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._listeners: list[_Listener] = []
        self._threads: list[threading.Thread] = []
        self.port = 0
        self.reset_stats()

    # -- life cycle --------------------------------------------------------------------

    def start(self) -> FeedServer:
        for _attempt in range(20):
            try:
                self._bind()
                break
            except OSError:
                self._close_listeners()
        else:
            raise OSError("could not bind the feed server on loopback")
        for listener in self._listeners:
            thread = threading.Thread(
                target=listener.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def _bind(self) -> None:
        first = _Listener(("127.0.0.1", 0), self)
        self._listeners = [first]
        self.port = first.server_address[1]
        for index in range(2, self._host_count + 1):
            self._listeners.append(_Listener((f"127.0.0.{index}", self.port), self))

    def _close_listeners(self) -> None:
        for listener in self._listeners:
            listener.server_close()
        self._listeners = []

    def stop(self) -> None:
        self._stopping.set()
        for listener in self._listeners:
            listener.shutdown()
        self._close_listeners()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []

    def __enter__(self) -> FeedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- routes ------------------------------------------------------------------------

    def add(self, path: str, body: Body = b"", **options: object) -> str:
        """Script `path` (options: the fields of `Route`); returns its URL on host 0."""
        if not path.startswith("/"):
            raise ValueError("path must start with /")
        route = Route(body=body, **options)  # type: ignore[arg-type]
        with self._lock:
            self._routes[path] = route
        return self.url(path)

    def set_body(self, path: str, body: Body) -> None:
        """Change what `path` serves from now on (content that changes)."""
        with self._lock:
            self._routes[path] = dataclasses.replace(self._routes[path], body=body)

    def url(self, path: str, host: int = 0) -> str:
        """The URL of `path` on the `host`-th loopback address (0: 127.0.0.1)."""
        if not 0 <= host < self._host_count:
            raise ValueError(f"this server listens on {self._host_count} host(s)")
        return f"http://127.0.0.{host + 1}:{self.port}{path}"

    @property
    def hosts(self) -> list[str]:
        return [f"127.0.0.{index + 1}" for index in range(self._host_count)]

    def _route(self, path: str) -> Route | None:
        with self._lock:
            return self._routes.get(path) or self._routes.get(path.split("?", 1)[0])

    # -- accounting --------------------------------------------------------------------

    def reset_stats(self) -> None:
        with self._lock:
            self._hits: Counter[str] = Counter()
            self._statuses: Counter[int] = Counter()
            self._in_flight: Counter[str] = Counter()
            self._max_by_host: Counter[str] = Counter()
            self._max_in_flight = 0
            self._connections = 0
            self._log: deque[RequestRecord] = deque(maxlen=20_000)

    def _begin(self, host: str, path: str) -> int:
        with self._lock:
            self._hits[path] += 1
            self._in_flight[host] += 1
            self._max_by_host[host] = max(self._max_by_host[host], self._in_flight[host])
            self._max_in_flight = max(self._max_in_flight, sum(self._in_flight.values()))
            return self._hits[path]

    def _connected(self) -> None:
        with self._lock:
            self._connections += 1

    def _settle(self, host: str) -> None:
        with self._lock:
            self._in_flight[host] -= 1

    def _record(self, host: str, path: str, status: int, headers: Message) -> None:
        lowered = {name.lower(): value for name, value in headers.items()}
        with self._lock:
            self._statuses[status] += 1
            self._log.append(RequestRecord(host, path, status, lowered))

    def hits(self, path: str) -> int:
        with self._lock:
            return self._hits[path]

    def requests(self, path: str | None = None) -> list[RequestRecord]:
        """Logged requests (all, or those for `path`), oldest first."""
        with self._lock:
            return [r for r in self._log if path is None or r.path == path]

    def stats(self) -> ServerStats:
        with self._lock:
            return ServerStats(
                requests=sum(self._hits.values()),
                not_modified=self._statuses[304],
                by_path=dict(self._hits),
                by_status=dict(self._statuses),
                max_in_flight=self._max_in_flight,
                max_in_flight_by_host=dict(self._max_by_host),
                connections=self._connections,
            )
