"""The outbox drained through the real PTB client to the Bot API test server, on SQLite and
PostgreSQL: sent once with the message id, Telegram's errors each handled as documented."""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot import metrics
from bot.delivery.console import ConsoleSender
from bot.delivery.ratelimit import OVERALL, SharedRate, forget_idle_chats
from bot.delivery.worker import Deliverer, Policy
from bot.owners import make_owner, owner_is_dead
from bot.settings import Settings
from bot.storage import outbox, subscribers
from bot.storage.db import create_schema, make_engine
from bot.storage.errors import StorageError
from bot.storage.models import Delivery, SendRate, Subscriber
from bot.storage.subscribers import Chat
from bot.telegram.app import App, build_application, sender_for
from tests.servers.bot_api import BotApiServer, Limits
from tests.servers.bot_fixtures import insert_story, settings_for, subscribe_chats, wait_until
from tests.servers.pg_instance import PgInstance

FAST = Policy(backoff_base=0.05, backoff_max=0.2, idle_poll=0.05, grace=2.0)


def rows(engine: Engine) -> list[Delivery]:
    with Session(engine) as session:
        return list(session.exec(select(Delivery).order_by(col(Delivery.id))).all())


def subscriber(engine: Engine, chat_id: int, thread_id: int = 0) -> Subscriber:
    with Session(engine) as session:
        found = session.exec(
            select(Subscriber).where(
                Subscriber.chat_id == chat_id, Subscriber.thread_id == thread_id
            )
        ).one()
        return found


def settled(engine: Engine) -> bool:
    return all(r.state not in ("pending", "sending") for r in rows(engine))


async def deliver_until_settled(deliverer: Deliverer, engine: Engine, within: float = 20.0) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(deliverer.run(stop))
    try:
        await wait_until(lambda: settled(engine), within=within)
    finally:
        stop.set()
        await task


def deliverer_for(engine: Engine, application: App, policy: Policy = FAST) -> Deliverer:
    return Deliverer(engine, sender_for(application), owner=make_owner(), policy=policy)


async def test_broadcast_is_sent_once_with_message_ids(
    engine: Engine, ptb_app: App, bot_api: BotApiServer, add_story: Callable[..., int]
) -> None:
    chats = [1001, 1002, 1003, 1004, 1005]
    subscribe_chats(engine, chats)
    add_story(title="Mali takes Algeria to the ICJ", link="https://wire.test/icj")
    deliverer = deliverer_for(engine, ptb_app)
    await deliverer.drain()
    await deliverer.drain()  # nothing left: nothing sent again
    for chat in chats:
        [message] = bot_api.sent(chat)
        assert message.parse_mode == "HTML"
        assert message.links[0] == ("Mali takes Algeria to the ICJ", "https://wire.test/icj")
    by_chat = {m.chat_id: m.message_id for m in bot_api.sent()}
    for row in rows(engine):
        assert row.state == "sent" and row.attempts == 1 and row.sent_at is not None
        assert row.lease_owner is None
    sent_ids = sorted(r.message_id for r in rows(engine) if r.message_id is not None)
    assert sent_ids == sorted(by_chat.values())


async def test_blocked_chat_is_deactivated_and_its_rows_skipped(
    engine: Engine, ptb_app: App, bot_api: BotApiServer, add_story: Callable[..., int]
) -> None:
    subscribe_chats(engine, [2001, 2002])
    add_story(title="first")
    add_story(title="second")
    bot_api.block(2002)
    await deliverer_for(engine, ptb_app).drain()
    assert len(bot_api.sent(2001)) == 2 and bot_api.sent(2002) == []
    gone = subscriber(engine, 2002)
    assert not gone.active and gone.deactivated_reason == "Forbidden: bot was blocked by the user"
    states = sorted((r.subscriber_id == gone.id, r.state) for r in rows(engine))
    assert states == [(False, "sent"), (False, "sent"), (True, "skipped"), (True, "skipped")]
    assert subscribers.subscribe(engine, Chat(2002)) is True  # /start again turns it back on


async def test_flood_of_429s_delays_but_loses_nothing(
    engine: Engine, ptb_app: App, bot_api: BotApiServer, add_story: Callable[..., int]
) -> None:
    chats = [3001, 3002, 3003, 3004]
    subscribe_chats(engine, chats)
    add_story()
    bot_api.flood(times=6, retry_after=1)
    deliverer = deliverer_for(engine, ptb_app)
    started = time.monotonic()
    await deliver_until_settled(deliverer, engine)
    assert time.monotonic() - started >= 1.0
    assert [len(bot_api.sent(c)) for c in chats] == [1, 1, 1, 1]
    assert deliverer.tally.rate_limited >= 1
    assert {(r.state, r.attempts) for r in rows(engine)} == {("sent", 1)}  # 429s are not attempts


async def test_telegram_limits_are_kept_without_a_single_429(
    engine: Engine, ptb_app: App, bot_api: BotApiServer, add_story: Callable[..., int]
) -> None:
    chats = list(range(4000, 4070))
    groups = [-4100, -4101]
    subscribe_chats(engine, chats)
    subscribe_chats(engine, groups, chat_type="group")
    for n in range(3):  # three stories: each group gets 3, each private chat 3, paced
        add_story(title=f"story {n}", link=f"https://wire.test/{n}")
    started = time.monotonic()
    await deliver_until_settled(deliverer_for(engine, ptb_app), engine, within=60)
    elapsed = time.monotonic() - started
    assert bot_api.rate_limited == 0, bot_api.rate_limited_by
    assert len(bot_api.sent()) == 3 * (len(chats) + len(groups))
    assert elapsed >= (3 * 72 - 30) / 30  # 216 messages at most 30/s after the first burst
    one_chat = [m.at for m in bot_api.sent(4000)]
    assert all(b - a >= 0.95 for a, b in itertools.pairwise(one_chat))


async def test_bad_request_is_recorded_and_not_retried(
    engine: Engine, ptb_app: App, bot_api: BotApiServer, add_story: Callable[..., int]
) -> None:
    subscribe_chats(engine, [5001])
    add_story()
    bot_api.fail("sendMessage", status=400, description="Bad Request: something permanent")
    await deliver_until_settled(deliverer_for(engine, ptb_app), engine)
    [row] = rows(engine)
    assert (row.state, row.attempts, row.last_error) == ("failed", 1, "Something permanent")
    assert bot_api.sent(5001) == []
    assert len(bot_api.calls("sendMessage")) == 1


async def test_markup_refused_falls_back_to_plain_text(
    engine: Engine, ptb_app: App, bot_api: BotApiServer, add_story: Callable[..., int]
) -> None:
    subscribe_chats(engine, [5101])
    add_story(title="A & B", link="https://wire.test/ab")
    bot_api.fail(
        "sendMessage", status=400, description="Bad Request: can't parse entities: Unsupported"
    )
    await deliverer_for(engine, ptb_app).drain()
    [message] = bot_api.sent(5101)
    assert message.parse_mode is None
    assert message.text.startswith("A & B <https://wire.test/ab>")
    assert rows(engine)[0].state == "sent"


async def test_migrated_group_is_followed_and_resent(
    engine: Engine, ptb_app: App, bot_api: BotApiServer, add_story: Callable[..., int]
) -> None:
    subscribe_chats(engine, [-5500], chat_type="group")
    add_story()
    bot_api.migrate(-5500, -1005500)
    await deliverer_for(engine, ptb_app).drain()
    assert len(bot_api.sent(-1005500)) == 1 and bot_api.sent(-5500) == []
    moved = subscriber(engine, -1005500)
    assert moved.active and moved.chat_type == "supergroup"
    assert rows(engine)[0].state == "sent"


async def test_network_errors_are_retried_with_backoff(
    engine: Engine, ptb_app: App, bot_api: BotApiServer, add_story: Callable[..., int]
) -> None:
    subscribe_chats(engine, [6001])
    add_story()
    bot_api.fail("sendMessage", status=None, times=2)  # connection dropped, nothing delivered
    await deliver_until_settled(deliverer_for(engine, ptb_app), engine)
    [row] = rows(engine)
    assert (row.state, row.attempts) == ("sent", 3)
    assert len(bot_api.sent(6001)) == 1


async def test_gives_up_after_max_attempts(
    engine: Engine, ptb_app: App, bot_api: BotApiServer, add_story: Callable[..., int]
) -> None:
    subscribe_chats(engine, [6101])
    add_story()
    bot_api.fail("sendMessage", status=502, description="Bad Gateway", times=10)
    policy = Policy(max_attempts=3, backoff_base=0.02, backoff_max=0.05, idle_poll=0.05)
    await deliver_until_settled(deliverer_for(engine, ptb_app, policy), engine)
    [row] = rows(engine)
    assert row.state == "failed" and row.attempts == 3
    assert row.last_error is not None and row.last_error.startswith("gave up after 3 attempts")
    assert len(bot_api.calls("sendMessage")) == 3


async def test_lost_answer_is_sent_again_at_least_once(
    engine: Engine, ptb_app: App, bot_api: BotApiServer, add_story: Callable[..., int]
) -> None:
    """Telegram delivered, the answer was lost: the documented duplicate window (one)."""
    subscribe_chats(engine, [6201])
    add_story()
    bot_api.fail("sendMessage", lose_response=True)
    await deliver_until_settled(deliverer_for(engine, ptb_app), engine)
    assert len(bot_api.sent(6201)) == 2
    assert rows(engine)[0].state == "sent"


async def test_forum_topic_subscription_delivers_to_the_topic(
    engine: Engine, ptb_app: App, bot_api: BotApiServer, add_story: Callable[..., int]
) -> None:
    bot_api.add_chat(-1007000, "supergroup", is_forum=True)
    subscribe_chats(engine, [-1007000], chat_type="supergroup", thread_id=42)
    subscribe_chats(engine, [-1007000], chat_type="supergroup", thread_id=0)
    add_story()
    await deliverer_for(engine, ptb_app).drain()
    assert sorted(m.thread_id or 0 for m in bot_api.sent(-1007000)) == [0, 42]


async def test_deleted_topic_turns_that_subscription_off(
    engine: Engine, ptb_app: App, bot_api: BotApiServer, add_story: Callable[..., int]
) -> None:
    subscribe_chats(engine, [-1007100], chat_type="supergroup", thread_id=9)  # not a forum
    add_story()
    await deliverer_for(engine, ptb_app).drain()
    assert not subscriber(engine, -1007100, 9).active
    assert rows(engine)[0].state == "skipped"


async def test_two_deliverers_never_send_a_row_twice(
    engine: Engine, ptb_app: App, bot_api: BotApiServer, add_story: Callable[..., int]
) -> None:
    bot_api.set_limits(Limits(enforce=False))
    chats = list(range(7000, 7120))
    subscribe_chats(engine, chats)
    add_story()
    first = deliverer_for(engine, ptb_app, Policy(window=16))
    second = deliverer_for(engine, ptb_app, Policy(window=16))
    await asyncio.gather(first.drain(), second.drain())
    assert sorted(m.chat_id for m in bot_api.sent()) == chats
    assert first.tally.sent > 0 and second.tally.sent > 0
    assert first.tally.sent + second.tally.sent == len(chats)


def test_concurrent_claims_are_disjoint(engine: Engine, add_story: Callable[..., int]) -> None:
    subscribe_chats(engine, list(range(8000, 8200)))
    add_story()
    claimed: list[list[int]] = []
    lock = threading.Lock()

    def worker() -> None:
        owner = make_owner()
        while batch := outbox.claim(engine, owner=owner, limit=7, lease_seconds=30):
            with lock:
                claimed.append([c.delivery_id for c in batch])

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [i for batch in claimed for i in batch]
    assert len(ids) == len(set(ids)) == 200
    assert {r.state for r in rows(engine)} == {"sending"}


def test_recovery_of_dead_and_expired_owners(engine: Engine, add_story: Callable[..., int]) -> None:
    subscribe_chats(engine, [9001, 9002, 9003])
    add_story()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    host, namespace, _, nonce = make_owner().split("|")
    dead_owner_id = f"{host}|{namespace}|{dead.stdout.strip()}|{nonce}"
    live_owner = f"{host}|{namespace}|{alive.pid}|{nonce}"
    try:
        assert owner_is_dead(dead_owner_id, me="me") and not owner_is_dead(live_owner, me="me")
        assert not owner_is_dead(f"otherhost|{namespace}|{dead.stdout.strip()}|x", me="me")
        _recover(engine, dead_owner_id, live_owner)
    finally:
        alive.kill()
        alive.wait()


def _recover(engine: Engine, dead_owner_id: str, live_owner: str) -> None:
    now = datetime.now(UTC)
    [a] = outbox.claim(engine, owner=dead_owner_id, limit=1, lease_seconds=300, now=now)
    [b] = outbox.claim(engine, owner="elsewhere|x|1|y", limit=1, lease_seconds=5, now=now)
    [c] = outbox.claim(engine, owner=live_owner, limit=1, lease_seconds=300, now=now)
    me = make_owner()
    assert outbox.recover(engine, me=me, max_attempts=8, now=now) == 1  # the dead local one
    later = now + timedelta(seconds=10)
    assert outbox.recover(engine, me=me, max_attempts=8, now=later) == 1  # the expired lease
    by_id = {r.id: r for r in rows(engine)}
    assert (by_id[a.delivery_id].state, by_id[a.delivery_id].attempts) == ("pending", 1)
    assert by_id[b.delivery_id].state == "pending"
    assert by_id[c.delivery_id].state == "sending"  # a live owner keeps its row


async def test_shutdown_finishes_or_releases_nothing_half_done(
    engine: Engine, ptb_app: App, bot_api: BotApiServer, add_story: Callable[..., int]
) -> None:
    bot_api.set_limits(Limits(enforce=False))
    bot_api.set_delay("sendMessage", 0.2)
    subscribe_chats(engine, list(range(9100, 9160)))
    add_story()
    deliverer = deliverer_for(engine, ptb_app, Policy(window=20, grace=0.3))
    stop = asyncio.Event()
    task = asyncio.create_task(deliverer.run(stop))
    await wait_until(lambda: len(bot_api.sent()) >= 5)
    stop.set()
    await task
    states = [r.state for r in rows(engine)]
    assert "sending" not in states
    assert states.count("sent") == deliverer.tally.sent
    sent_chats = {m.chat_id for m in bot_api.sent()}
    recorded = {r.subscriber_id for r in rows(engine) if r.state == "sent"}
    assert len(recorded) <= len(sent_chats) <= len(recorded) + 20  # cancelled mid-request: window
    assert states.count("pending") > 0


def test_unsubscribe_skips_pending_rows(engine: Engine, add_story: Callable[..., int]) -> None:
    subscribe_chats(engine, [9600])
    add_story()
    assert subscribers.unsubscribe(engine, 9600) is True
    assert subscribers.unsubscribe(engine, 9600) is False
    assert rows(engine)[0].state == "skipped"


async def test_a_database_that_is_gone_is_logged_and_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gone = make_engine("postgresql://postgres@127.0.0.1:1/nothing?connect_timeout=1")
    deliverer = Deliverer(gone, ConsoleSender(io.StringIO()), owner=make_owner(), policy=FAST)
    stop = asyncio.Event()
    task = asyncio.create_task(deliverer.run(stop))
    await wait_until(lambda: "could not claim deliveries" in caplog.text, within=10)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert "OperationalError" in caplog.text and "retrying in" in caplog.text
    gone.dispose()


async def test_a_slow_bot_api_gets_each_alert_once(
    engine: Engine, ptb_app: App, bot_api: BotApiServer, add_story: Callable[..., int]
) -> None:
    """7 s per sendMessage, above PTB's 5 s default read timeout, below our send timeout."""
    chats = [10_001, 10_002, 10_003]
    subscribe_chats(engine, chats)
    add_story()
    bot_api.set_delay("sendMessage", 7.0)
    deliverer = deliverer_for(engine, ptb_app)
    await deliver_until_settled(deliverer, engine, within=40)
    assert [len(bot_api.sent(c)) for c in chats] == [1, 1, 1]
    assert len(bot_api.calls("sendMessage")) == 3
    assert {(r.state, r.attempts, r.timeouts) for r in rows(engine)} == {("sent", 1, 0)}
    assert deliverer.tally.unconfirmed == 0


async def test_an_unanswered_send_is_sent_again_only_once(
    engine: Engine, make_settings: Callable[..., Settings], bot_api: BotApiServer,
    add_story: Callable[..., int],
) -> None:  # fmt: skip
    """Telegram delivers but never answers in time: one retry, then failed (maybe delivered)."""
    settings = make_settings(bot_api, telegram={"send_timeout": 0.5})
    application = build_application(settings, engine, seeds=())
    await application.initialize()
    subscribe_chats(engine, [10_101])
    add_story()
    bot_api.set_delay("sendMessage", 2.0)
    before = metric("sahelwatch_unconfirmed_sends_total", then="failed")
    try:
        deliverer = deliverer_for(engine, application)
        await deliver_until_settled(deliverer, engine, within=30)
    finally:
        await application.shutdown()
    assert len(bot_api.sent(10_101)) == 2  # the first send and its one retry, both delivered
    [row] = rows(engine)
    assert (row.state, row.attempts, row.timeouts) == ("failed", 2, 1)
    assert row.last_error is not None and row.last_error.startswith(
        "2 sends without an answer, maybe delivered"
    )
    assert deliverer.tally.unconfirmed == 2
    assert metric("sahelwatch_unconfirmed_sends_total", then="failed") == before + 1


async def test_a_group_migrating_into_a_subscribed_supergroup_gets_each_story_once(
    engine: Engine, ptb_app: App, bot_api: BotApiServer, add_story: Callable[..., int]
) -> None:
    subscribe_chats(engine, [-5700], chat_type="group")
    only_old = add_story(title="only the group had this one", link="https://wire.test/a")
    subscribe_chats(engine, [-1005700], chat_type="supergroup")
    add_story(title="both had this one", link="https://wire.test/b")
    bot_api.migrate(-5700, -1005700)
    deliverer = deliverer_for(engine, ptb_app)
    await deliver_until_settled(deliverer, engine)
    titles = sorted(m.plain.split("\n")[0] for m in bot_api.sent(-1005700))
    assert titles == ["both had this one", "only the group had this one"]
    assert bot_api.sent(-5700) == []
    old, new = subscriber(engine, -5700), subscriber(engine, -1005700)
    assert not old.active and new.active
    by_row = sorted((r.subscriber_id == new.id, r.story_id == only_old, r.state)
                    for r in rows(engine))  # fmt: skip
    assert by_row == [(False, False, "skipped"), (True, False, "sent"), (True, True, "sent")]


async def test_a_database_outage_mid_broadcast_repeats_and_loses_nothing(
    bot_api: BotApiServer,
) -> None:
    """Our own PostgreSQL, stopped for a few seconds while 200 alerts go out, then started."""
    with PgInstance() as pg:
        engine = make_engine(pg.url)
        try:
            await _outage_broadcast(pg, engine, bot_api)
        finally:
            engine.dispose()


async def _outage_broadcast(pg: PgInstance, engine: Engine, bot_api: BotApiServer) -> None:
    create_schema(engine)
    chats = list(range(11_000, 11_200))
    subscribe_chats(engine, chats)
    insert_story(engine, title="Outage story", link="https://wire.test/outage")
    bot_api.set_delay("sendMessage", 0.05)
    application = build_application(settings_for(pg.url, server=bot_api), engine, seeds=())
    await application.initialize()
    policy = Policy(lease_seconds=2.0, backoff_base=0.05, backoff_max=0.2, idle_poll=0.05,
                    record_retry_max=0.5)  # fmt: skip
    deliverer = deliverer_for(engine, application, policy)
    stop = asyncio.Event()
    task = asyncio.create_task(deliverer.run(stop))
    keeper = asyncio.create_task(housekeeping(deliverer, stop))  # as `run` does, more often
    try:
        await wait_until(lambda: len(bot_api.sent()) >= 60, within=30)
        await asyncio.to_thread(pg.stop)
        in_flight = deliverer.in_flight
        await asyncio.sleep(4.0)  # the outage: longer than the 2 s delivery leases
        await asyncio.to_thread(pg.start)
        await wait_until(lambda: settled_quietly(engine), within=60, step=0.2)
    finally:
        stop.set()
        await asyncio.gather(task, keeper)
        await application.shutdown()
    per_chat = [len(bot_api.sent(c)) for c in chats]
    duplicates = sum(n - 1 for n in per_chat if n > 1)
    print(f"\noutage with {in_flight} sends in flight: {duplicates} duplicate(s), "
          f"{deliverer.tally.held} outcomes held in memory")  # fmt: skip
    assert min(per_chat) == 1  # nothing lost
    assert duplicates == 0  # outcomes held in memory are recorded, not sent again
    assert {r.state for r in rows(engine)} == {"sent"}


async def housekeeping(deliverer: Deliverer, stop: asyncio.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(Exception):  # the database may be down
            await deliverer.renew()
            await deliverer.recover()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=0.5)


def settled_quietly(engine: Engine) -> bool:
    try:
        return settled(engine)
    except StorageError:
        return False


def metric(name: str, **labels: str) -> float:
    value = metrics.REGISTRY.get_sample_value(name, labels)
    return value or 0.0


@contextlib.asynccontextmanager
async def replicas(
    engine: Engine, settings: Settings, count: int, policy: Policy = FAST
) -> AsyncIterator[list[Deliverer]]:
    """`count` replicas in one process: each its own PTB Application (its own rate limiter
    and flood gate), deliverer and owner, all on one database and one Bot API server."""
    applications = [build_application(settings, engine, seeds=()) for _ in range(count)]
    for application in applications:
        await application.initialize()
    try:
        yield [deliverer_for(engine, application, policy) for application in applications]
    finally:
        for application in applications:
            await application.shutdown()


async def run_together(deliverers: list[Deliverer], engine: Engine, within: float) -> None:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(d.run(stop)) for d in deliverers]
    try:
        await wait_until(lambda: settled(engine), within=within, step=0.2)
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def test_two_replicas_share_telegrams_limit_without_a_429(
    engine: Engine, make_settings: Callable[..., Settings], bot_api: BotApiServer,
    add_story: Callable[..., int],
) -> None:  # fmt: skip
    chats = list(range(12_000, 12_180))
    subscribe_chats(engine, chats)
    add_story(title="Both replicas broadcast this", link="https://wire.test/both")
    async with replicas(engine, make_settings(bot_api), 2) as (first, second):
        await run_together([first, second], engine, within=60)
    assert bot_api.rate_limited == 0, bot_api.rate_limited_by
    assert sorted(m.chat_id for m in bot_api.sent()) == chats  # each chat once
    assert {r.state for r in rows(engine)} == {"sent"}
    assert first.tally.sent > 30 and second.tally.sent > 30  # both really sent
    assert first.tally.sent + second.tally.sent == len(chats)


async def test_a_429_to_one_replica_pauses_the_other(
    engine: Engine, make_settings: Callable[..., Settings], bot_api: BotApiServer,
    add_story: Callable[..., int],
) -> None:  # fmt: skip
    chats = list(range(13_000, 13_200))
    subscribe_chats(engine, chats)
    add_story(title="A flood wait for everyone", link="https://wire.test/flood")
    bot_api.flood(times=1, retry_after=2, chat_id=chats[50])
    async with replicas(engine, make_settings(bot_api), 2) as pair:
        await run_together(pair, engine, within=60)
    refused = [c.at for c in bot_api.calls("sendMessage") if c.status == 429]
    assert len(refused) == 1
    during = [m for m in bot_api.sent() if refused[0] < m.at < refused[0] + 1.9]
    # only sends whose slots were handed out before the 429 was reported (at most `ahead`,
    # 4, per replica) may still go; without a shared pause the other replica sends ~30
    assert len(during) <= 8, len(during)
    assert sorted(m.chat_id for m in bot_api.sent()) == chats


async def test_two_replicas_keep_each_chats_limit_together(
    engine: Engine, make_settings: Callable[..., Settings], bot_api: BotApiServer,
    add_story: Callable[..., int],
) -> None:  # fmt: skip
    """Five stories to the same chats, each replica claiming a different story's rows at
    once: a chat still gets one message a second (a group 19 a minute), from either."""
    chats, group = [14_001, 14_002, 14_003, 14_004], -14_100
    subscribe_chats(engine, chats)
    subscribe_chats(engine, [group], chat_type="group")
    for n in range(5):
        add_story(title=f"chat story {n}", link=f"https://wire.test/chat/{n}")
    async with replicas(engine, make_settings(bot_api), 2, replace(FAST, window=5)) as pair:
        await run_together(pair, engine, within=60)
    assert bot_api.rate_limited == 0, bot_api.rate_limited_by
    assert pair[0].tally.sent > 0 and pair[1].tally.sent > 0
    for chat, every in [*((c, 1.0) for c in chats), (group, 3.0)]:
        times = [m.at for m in bot_api.sent(chat)]
        assert sorted(m.plain.split("\n")[0] for m in bot_api.sent(chat)) == [
            f"chat story {n}" for n in range(5)
        ]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        # slots are `every` apart; a send may reach the server a little after its slot (the
        # event loop, a loaded machine), so one gap may shrink by that lag, never the span
        assert min(gaps) >= 0.7 * every and sum(gaps) >= 4 * every - 0.2, (chat, gaps)


def test_shared_rate_rows_of_quiet_chats_are_forgotten(engine: Engine) -> None:
    rate = SharedRate(engine, per_second=29, burst=4)
    first = rate.reserve("chat:16001", 1.0)
    again = rate.reserve("chat:16001", 1.0)
    assert first.wait == 0.0 and 0.9 < again.wait <= 1.0  # the chat's second message waits
    rate.reserve("chat:16002", 1.0)
    rate.reserve(OVERALL, rate.interval)
    assert forget_idle_chats(engine, idle_seconds=60) == 0  # both chats wrote just now
    assert forget_idle_chats(engine, idle_seconds=-5) == 2  # slots past: both forgotten
    with Session(engine) as session:
        assert session.exec(select(SendRate.name)).all() == [OVERALL]  # the overall row stays
    assert rate.reserve("chat:16001", 1.0).wait == 0.0
