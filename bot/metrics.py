"""Prometheus metrics and the small operations HTTP endpoint (`/healthz`, `/metrics`).

Counters are updated by the pipeline and the sender in this process; the database-wide
figures (stories, deliveries by state) are read at scrape time, so every replica reports
the same totals for those.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, Counter, Histogram, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from bot.storage import stats
from bot.storage.errors import StorageError

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)

POLLS = Counter("sahelwatch_poll_cycles_total", "Poll cycles run", ["result"], registry=REGISTRY)
FETCH_ERRORS = Counter(
    "sahelwatch_fetch_errors_total",
    "Failed fetches or parses, per feed",
    ["feed"],
    registry=REGISTRY,
)
ITEMS = Counter(
    "sahelwatch_items_total", "Entries decided, by decision", ["decision"], registry=REGISTRY
)
SENDS = Counter(
    "sahelwatch_sends_total", "Telegram send attempts, by result", ["result"], registry=REGISTRY
)
UNCONFIRMED_SENDS = Counter(
    "sahelwatch_unconfirmed_sends_total",
    "Sends Telegram did not answer in time (they may have been delivered), by what followed",
    ["then"],
    registry=REGISTRY,
)
HELD_RESULTS = Counter(
    "sahelwatch_send_results_held_total",
    "Send results kept in memory because the database could not record them",
    registry=REGISTRY,
)
SEND_LATENCY = Histogram(
    "sahelwatch_send_latency_seconds",
    "Time from a story's creation to its delivery being sent",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600),
    registry=REGISTRY,
)


class DatabaseCollector(Collector):
    """Stories, subscribers, deliveries and digests by state, digest parts sent and alerts held
    (for a digest, for quiet hours), counted in the database at scrape time."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        stories = GaugeMetricFamily("sahelwatch_stories", "Stories stored", labels=["alerted"])
        deliveries = GaugeMetricFamily(
            "sahelwatch_deliveries", "Delivery rows by state", labels=["state"]
        )
        subscribers = GaugeMetricFamily("sahelwatch_subscribers", "Active subscribers")
        digests = GaugeMetricFamily("sahelwatch_digests", "Digest rows by state", labels=["state"])
        parts = GaugeMetricFamily(
            "sahelwatch_digest_parts_sent", "Digest messages sent, all digests stored"
        )
        held = GaugeMetricFamily(
            "sahelwatch_alerts_held",
            "Alerts waiting for their chat's next digest or for its quiet hours to end",
            labels=["reason"],
        )
        try:
            counted = stats.counts(self._engine)
            digested = stats.digest_counts(self._engine)
        except StorageError:
            log.warning("metrics: database did not answer", exc_info=False)
            return
        stories.add_metric(["true"], counted.stories_alerted)
        stories.add_metric(["false"], counted.stories_not_alerted)
        for state, n in counted.deliveries:
            deliveries.add_metric([state], n)
        subscribers.add_metric([], counted.subscribers_active)
        for state, n in digested.digests:
            digests.add_metric([state], n)
        parts.add_metric([], digested.parts_sent)
        held.add_metric(["digest"], digested.held_for_digest)
        held.add_metric(["quiet_hours"], digested.held_for_quiet_hours)
        yield from (stories, deliveries, subscribers, digests, parts, held)


OPS_CLIENT_TIMEOUT = 10.0  # seconds a client may stay silent before its connection is closed
OPS_MAX_CONNECTIONS = 64  # connections served at once; more are closed at once


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("ops http: " + format, *args)


class _OpsHTTPServer(ThreadingWSGIServer):
    """A thread per connection (daemon threads), at most `OPS_MAX_CONNECTIONS` at once.

    An idle or slow client holds only its own thread, until its socket times out
    (`client_timeout` seconds without a byte).
    """

    client_timeout = OPS_CLIENT_TIMEOUT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slots = threading.BoundedSemaphore(OPS_MAX_CONNECTIONS)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        connection.settimeout(self.client_timeout)
        return connection, address

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            log.warning("ops endpoint: more than %d connections, one refused", OPS_MAX_CONNECTIONS)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that timed out or hung up: not worth a traceback on stderr
        log.debug("ops endpoint: connection ended with an error", exc_info=True)


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def ops_app(health: Callable[[], tuple[bool, str]], metrics_app: WsgiApp) -> WsgiApp:
    """`/healthz` answers from `health()`; `/metrics` is Prometheus' exposition."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            ok, message = health()
            start_response(
                "200 OK" if ok else "503 Service Unavailable",
                [("Content-Type", "text/plain; charset=utf-8")],
            )
            return [message.encode() + b"\n"]
        if path == "/metrics":
            return metrics_app(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]

    return app


class OpsServer:
    """The ops endpoint served from a daemon thread; `stop()` ends it.

    Each connection gets its own daemon thread and a socket timeout, so one idle or slow
    client never holds up `/healthz` or `/metrics` for others, and `stop()` does not wait
    for connections still open.
    """

    def __init__(
        self,
        host: str,
        port: int,
        engine: Engine,
        health: Callable[[], tuple[bool, str]],
        *,
        client_timeout: float = OPS_CLIENT_TIMEOUT,
    ) -> None:
        self._collector = DatabaseCollector(engine)
        REGISTRY.register(self._collector)
        app = ops_app(health, make_wsgi_app(REGISTRY))
        self._server = make_server(
            host, port, app, server_class=_OpsHTTPServer, handler_class=_QuietHandler
        )
        self._server.client_timeout = client_timeout
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="ops-http",
            daemon=True,
        )
        self._thread.start()
        log.info("ops endpoint on http://%s:%d (/healthz, /metrics)", host, self.port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        REGISTRY.unregister(self._collector)
