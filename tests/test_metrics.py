"""The ops endpoint over real HTTP: /healthz and Prometheus /metrics."""

from __future__ import annotations

import socket
import time
from datetime import timedelta

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot import metrics
from bot.storage.models import Delivery, Digest, Story, Subscriber, utcnow


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def test_metrics_and_healthz_over_http(engine: Engine) -> None:
    with Session(engine) as session:
        session.add(Story(title="t", link="https://x.test/a", feed_name="X"))
        session.add(Subscriber(chat_id=1))
        session.add(Subscriber(chat_id=2, active=False))
        session.commit()
        session.add(Delivery(story_id=1, subscriber_id=1, state="sent"))
        session.add(Delivery(story_id=1, subscriber_id=2, state="skipped"))
        session.commit()
    verdict = {"ok": (True, "healthy: fine")}
    server = metrics.OpsServer("127.0.0.1", 0, engine, lambda: verdict["ok"])
    try:
        before = scrape(server.port)
        metrics.ITEMS.labels(decision="new").inc()
        metrics.FETCH_ERRORS.labels(feed="Le Monde Afrique").inc()
        metrics.SEND_LATENCY.observe(1.5)
        after = scrape(server.port)
        assert after[("sahelwatch_stories", (("alerted", "true"),))] == 1
        assert after[("sahelwatch_deliveries", (("state", "sent"),))] == 1
        assert after[("sahelwatch_deliveries", (("state", "skipped"),))] == 1
        assert after[("sahelwatch_subscribers", ())] == 1
        key = ("sahelwatch_items_total", (("decision", "new"),))
        assert after[key] == before.get(key, 0) + 1
        assert after[("sahelwatch_fetch_errors_total", (("feed", "Le Monde Afrique"),))] >= 1
        assert after[("sahelwatch_send_latency_seconds_count", ())] >= 1

        ok = httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=5)
        assert ok.status_code == 200 and ok.text.startswith("healthy")
        verdict["ok"] = (False, "unhealthy: no poll cycle has finished yet")
        sick = httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=5)
        assert sick.status_code == 503 and "no poll cycle" in sick.text
        assert httpx.get(f"http://127.0.0.1:{server.port}/nope", timeout=5).status_code == 404
    finally:
        server.stop()


def test_idle_and_slow_clients_never_block_the_endpoint(engine: Engine) -> None:
    server = metrics.OpsServer("127.0.0.1", 0, engine, lambda: (True, "healthy: fine"))
    idle = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    slow = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        slow.sendall(b"GET /heal")  # half a request line, never finished
        for path in ("/healthz", "/metrics", "/healthz"):
            started = time.monotonic()
            answer = httpx.get(f"http://127.0.0.1:{server.port}{path}", timeout=3)
            assert answer.status_code == 200, path
            assert time.monotonic() - started < 2.0, path
        assert answer.text == "healthy: fine\n"
        started = time.monotonic()
        server.stop()  # prompt although two clients still hold connections
        assert time.monotonic() - started < 2.0
    finally:
        idle.close()
        slow.close()


def test_a_silent_connection_is_closed_after_the_client_timeout(engine: Engine) -> None:
    server = metrics.OpsServer(
        "127.0.0.1", 0, engine, lambda: (True, "healthy: fine"), client_timeout=0.3
    )
    try:
        idle = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        with idle:
            started = time.monotonic()
            assert idle.recv(1) == b""  # the server hung up on the silent client
            assert 0.2 < time.monotonic() - started < 3.0
    finally:
        server.stop()


def test_metrics_show_digests_their_parts_and_alerts_held(engine: Engine) -> None:
    now = utcnow()
    minute = now.hour * 60 + now.minute
    with Session(engine) as session:
        for n in range(3):
            session.add(Story(title=f"t{n}", link=f"https://x.test/{n}", feed_name="X"))
        session.add(Subscriber(chat_id=1, delivery_mode="digest"))
        session.add(
            Subscriber(chat_id=2, quiet_from=(minute - 60) % 1440, quiet_to=(minute + 120) % 1440)
        )  # in its quiet hours now
        session.add(Subscriber(chat_id=3, quiet_from=(minute + 180) % 1440,
                               quiet_to=(minute + 240) % 1440))  # awake now  # fmt: skip
        session.commit()
        session.add(Delivery(story_id=1, subscriber_id=1, state="held"))
        session.add(Delivery(story_id=2, subscriber_id=1, state="held"))
        session.add(Delivery(story_id=3, subscriber_id=1, state="digested"))
        session.add(Delivery(story_id=1, subscriber_id=2, state="pending"))
        session.add(Delivery(story_id=2, subscriber_id=2, state="sent"))
        session.add(Delivery(story_id=1, subscriber_id=3, state="pending"))
        day = timedelta(days=1)
        for n, (state, parts) in enumerate((("sent", 3), ("pending", 0), ("failed", 1))):
            end = now - n * day
            session.add(Digest(subscriber_id=1, period_start=end - day, period_end=end,
                               state=state, parts_sent=parts))  # fmt: skip
        session.commit()
    server = metrics.OpsServer("127.0.0.1", 0, engine, lambda: (True, "healthy: fine"))
    try:
        shown = scrape(server.port)
    finally:
        server.stop()
    for state, n in (("sent", 1), ("pending", 1), ("failed", 1)):
        assert shown[("sahelwatch_digests", (("state", state),))] == n
    assert shown[("sahelwatch_digest_parts_sent", ())] == 4
    assert shown[("sahelwatch_alerts_held", (("reason", "digest"),))] == 2
    assert shown[("sahelwatch_alerts_held", (("reason", "quiet_hours"),))] == 1
