"""The ops endpoint over real HTTP: /healthz and Prometheus /metrics."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot import metrics
from bot.models import Delivery, Story, Subscriber


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
