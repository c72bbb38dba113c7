"""bot/storage/stats.py: the one place the shown counts come from; `/stats` and `/metrics`
agree because both read `counts`."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot import metrics
from bot.records import FeedSpec
from bot.storage import stats
from bot.storage.models import Delivery, Feed, Story, Subscriber, utcnow


def test_counts_are_what_stats_and_metrics_show(engine: Engine) -> None:
    now = utcnow()
    with Session(engine) as session:
        session.add(Story(title="new", link="https://x.test/a", feed_name="X", alerted=True))
        session.add(Story(title="held", link="https://x.test/b", feed_name="X", alerted=False))
        old = Story(title="old", link="https://x.test/c", feed_name="X", alerted=True)
        old.created_at = now - timedelta(days=2)
        session.add(old)
        session.add(Subscriber(chat_id=1))
        session.add(Subscriber(chat_id=2, active=False))
        session.add(Feed(url="https://x.test/feed", name="X", last_status="ok"))
        session.commit()
        for story_id, subscriber_id, state in (
            (1, 1, "sent"),
            (1, 2, "skipped"),
            (2, 1, "pending"),
        ):
            session.add(Delivery(story_id=story_id, subscriber_id=subscriber_id, state=state))
        session.commit()

    counted = stats.counts(engine, now=now)
    assert (counted.subscribers_active, counted.subscribers_inactive) == (1, 1)
    assert (counted.stories_alerted, counted.stories_not_alerted) == (2, 1)
    assert counted.stories_total == 3 and counted.stories_24h == 2
    assert counted.deliveries == (("pending", 1), ("sent", 1), ("skipped", 1))

    spec = FeedSpec(url="https://x.test/feed", name="X", language="fr")
    never = FeedSpec(url="https://y.test/feed", name="Y", language="en")
    view = stats.stats_view(engine, [spec, never], now=now)
    assert (view.subscribers_active, view.subscribers_inactive) == (1, 1)
    assert (view.stories_total, view.stories_24h) == (3, 2)
    assert view.deliveries == counted.deliveries
    assert [(f.name, f.status) for f in view.feeds] == [("X", "ok"), ("Y", "never")]
    assert set(stats.feed_rows(engine, [spec.url, never.url])) == {spec.url}

    gauges = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in metrics.DatabaseCollector(engine).collect()
        for sample in family.samples
    }
    assert gauges[("sahelwatch_subscribers", ())] == counted.subscribers_active
    assert gauges[("sahelwatch_stories", (("alerted", "true"),))] == counted.stories_alerted
    assert gauges[("sahelwatch_stories", (("alerted", "false"),))] == counted.stories_not_alerted
    for state, n in counted.deliveries:
        assert gauges[("sahelwatch_deliveries", (("state", state),))] == n
