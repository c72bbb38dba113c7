"""Fan-out benchmark (issues 3 and 10): one alert to N subscribers (default 2,000) through the
Bot API test server enforcing Telegram's limits (30 messages/s overall, 1/s per chat, 20/min
per group), with the real python-telegram-bot client, its AIORateLimiter and the real outbox.

Table 1: one replica against two, each replica a process of its own (`--worker`) on one
PostgreSQL database (a throwaway schema per run), sending through one test server:
    before   each replica paces itself alone (PTB's AIORateLimiter, 29/s)
    lease    one replica at a time sends, under a database lease with takeover (bot/role.py)
    shared   every replica takes its slots from the rate shared in the database
             (bot/delivery/ratelimit.py), what `python -m bot run` does
Messages/s sustained (first to last message at the server), 429s received, the sends of
each replica, wall time from the alert to the last row recorded. Goal: two replicas ≥ 28
messages/s together, no 429.

`--mixed` prints table 3 instead (issue 9): one busy cycle of `--stories` (20) new stories
to subscribers of mixed settings (half read a digest every 6 h, due just after the cycle; a
third have quiet hours that cover the run, in four Sahel time zones; two languages), one
replica in-process: messages sent per second, 429s, the time until every instant subscriber
(awake) has every alert, digest messages, coverage edits (`--joins` stories gain a second
outlet 20 s in: their alerts already sent are edited, after the editor's settling time), the
alerts held for quiet hours, and the wall time until all of it is done.

`--kill N` adds table 2, the crash window: N times, `python -m bot run` broadcasts to
`--kill-subscribers` chats through a server whose sendMessage takes 50 ms, is killed with
SIGKILL at a random point, and is restarted; it counts the sends Telegram had accepted but
the database had not recorded at the kill, and the duplicates after the restart (the
at-least-once window of bot/delivery/worker.py).

    python bench/fanout.py [--subscribers 2000] [--modes before,lease,shared] [--kill 5]
    python bench/fanout.py --mixed [--subscribers 2000] [--stories 20] [--joins 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402
from sqlalchemy import update  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402
from sqlmodel import Session, col, select  # noqa: E402

from bot.delivery.digest import Digests  # noqa: E402
from bot.delivery.sender import FloodGate, Sender, TelegramSender  # noqa: E402
from bot.delivery.worker import Deliverer, Policy  # noqa: E402
from bot.owners import make_owner  # noqa: E402
from bot.records import Entry  # noqa: E402
from bot.role import LeasedRole  # noqa: E402
from bot.run import quiet_libraries  # noqa: E402
from bot.storage import items, stats  # noqa: E402
from bot.storage.db import create_schema, make_engine  # noqa: E402
from bot.storage.models import Delivery, Digest, Feed, Item, Subscriber  # noqa: E402
from bot.telegram.app import GATE, build_application, sender_for  # noqa: E402
from tests.servers.bot_api import BotApiServer, Limits  # noqa: E402
from tests.servers.bot_fixtures import insert_story, settings_for, subscribe_chats  # noqa: E402
from tests.servers.bot_process import BotProcess, write_config  # noqa: E402

PG = os.environ.get("SAHEL_WATCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
MODES = ("before", "lease", "shared")
LEASE = "bench-sender"
LEASE_TTL = 4.0


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"]
    lines.append("| " + " | ".join("-" * w for w in widths) + " |")
    lines += [
        "| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows
    ]
    return "\n".join(lines)


def max_in_window(times: list[float], window: float = 1.0) -> int:
    best, start = 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


@contextlib.contextmanager
def pg_schema() -> Iterator[str]:
    """A throwaway schema in the test database, as a DATABASE_URL."""
    schema = f"fanout_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        sep = "&" if "?" in PG else "?"
        yield f"{PG}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


# -- one replica: `python bench/fanout.py --worker MODE` -------------------------------


def settled(engine: Engine) -> bool:
    counts = dict(stats.counts(engine).deliveries)
    return sum(counts.values()) > 0 and not counts.get("pending") and not counts.get("sending")


async def replica(mode: str, database_url: str, api_url: str, token: str) -> None:
    """Deliver until every row is settled: alone-paced, under the lease, or shared."""
    quiet_libraries()  # the rate limiter's traceback for every 429 of `before`
    engine = make_engine(database_url)
    settings = settings_for(database_url, telegram_bot_token=token, telegram_api_url=api_url)
    application = build_application(settings, engine, seeds=())
    await application.initialize()
    owner = make_owner()
    sender: Sender = sender_for(application)
    if mode != "shared":
        gate = application.bot_data[GATE]
        assert isinstance(gate, FloodGate)
        sender = TelegramSender(application.bot, gate=gate)
    deliverer = Deliverer(engine, sender, owner=owner, policy=Policy(idle_poll=0.05))
    print("ready", flush=True)
    done, stop_sending = asyncio.Event(), asyncio.Event()
    sending: list[asyncio.Task[None]] = []

    async def start() -> None:
        stop_sending.clear()
        sending.append(asyncio.create_task(deliverer.run(stop_sending)))

    async def stop() -> None:
        stop_sending.set()
        await asyncio.gather(*sending)
        sending.clear()

    role = LeasedRole(engine, LEASE, owner, ttl=LEASE_TTL, start=start, stop=stop)
    holding = asyncio.create_task(role.run(done)) if mode == "lease" else None
    if holding is None:
        await start()
    try:
        while not await asyncio.to_thread(settled, engine):
            await asyncio.sleep(0.1)
    finally:
        done.set()
        if holding is not None:
            await holding
        else:
            await stop()
        await application.shutdown()
        engine.dispose()
    print(f"sent {deliverer.tally.sent} 429s {deliverer.tally.rate_limited}", flush=True)


def fanout(subscribers: int, mode: str, replicas: int) -> list[str]:
    """One broadcast by `replicas` worker processes on a fresh schema; a table row."""
    with pg_schema() as url, BotApiServer(limits=Limits()) as server:
        engine = make_engine(url)
        create_schema(engine)
        chats = list(range(1_000_000, 1_000_000 + subscribers))
        subscribe_chats(engine, chats)
        workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--worker",
                    mode,
                    "--database-url",
                    url,
                    "--api-url",
                    server.url_via(f"r{n}"),
                    "--token",
                    server.token,
                ],
                stdout=subprocess.PIPE,
                text=True,
                cwd=REPO,
            )
            for n in range(replicas)
        ]
        for worker in workers:  # each has its Application up before the alert is stored
            assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
        insert_story(engine, title="Fan-out benchmark story", link="https://wire.test/fanout")
        started = time.monotonic()
        for worker in workers:
            worker.wait(timeout=3600)
        wall = time.monotonic() - started
        sent = sorted(m.at for m in server.sent())
        calls = server.calls("sendMessage")
        refused = len([c for c in calls if c.status == 429])
        shares = [len([c for c in calls if c.via == f"r{n}" and c.status == 200])
                  for n in range(replicas)]  # fmt: skip
        with Session(engine) as session:
            states = [d.state for d in session.exec(select(Delivery)).all()]
        engine.dispose()
    assert states.count("sent") == subscribers, "not every delivery was sent"
    assert len(sent) == subscribers, "a chat got the alert twice"
    sustained = (len(sent) - 1) / (sent[-1] - sent[0]) if len(sent) > 1 else 0.0
    return [
        mode, str(replicas), f"{len(sent):,}", f"{sustained:.1f}", str(max_in_window(sent)),
        str(refused), " + ".join(map(str, shares)), f"{wall:.1f} s",
    ]  # fmt: skip


def crash_trial(folder: Path, subscribers: int, database_url: str, rng: random.Random) -> list[str]:
    engine = make_engine(database_url)
    create_schema(engine)
    chats = list(range(2_000_000, 2_000_000 + subscribers))
    subscribe_chats(engine, chats)
    insert_story(engine, title="Crash benchmark story", link="https://wire.test/crash")
    delay = 0.05
    with BotApiServer(limits=Limits()) as server:
        server.set_delay("sendMessage", delay)
        config = write_config(folder, feeds=[("http://127.0.0.1:9/none.xml", "None", "en")])
        bot = BotProcess(folder, config, database_url, api=server)
        kill_after = rng.randint(10, subscribers - 10)
        with bot:
            while len(server.sent()) < kill_after:
                time.sleep(0.002)
            bot.kill()
        with Session(engine) as session:
            recorded = sum(d.state == "sent" for d in session.exec(select(Delivery)).all())
        accepted = len(server.sent())
        with bot.start():
            while True:
                with Session(engine) as session:
                    states = [d.state for d in session.exec(select(Delivery)).all()]
                if all(s == "sent" for s in states):
                    break
                time.sleep(0.1)
            bot.stop()
        counts = [len(server.sent(c)) for c in chats]
    engine.dispose()
    duplicates = sum(n - 1 for n in counts)
    return [str(accepted), str(accepted - recorded), str(duplicates), str(counts.count(0))]


# -- table 3: mixed settings, one busy cycle (issue 9) ------------------------------------

ZONES = ("Africa/Bamako", "Africa/Niamey", "Africa/Algiers", "Africa/Ouagadougou")
TOPICS = ("security", "politics", "diplomacy", "economy", "humanitarian")
DIGEST_LEAD = 3.0  # seconds after the cycle: the digest chats' period ends


def mixed_choices(engine: Engine, chats: list[int], now: datetime) -> dict[str, set[int]]:
    """Half the chats read a digest every 6 h (due just after the cycle), a third have quiet
    hours that cover `now` in their own zone, every other pair reads French."""
    digest = set(chats[0::2])
    quiet = set(chats[0::3])
    french = {c for i, c in enumerate(chats) if (i // 2) % 2}
    with Session(engine) as session:
        chosen = col(Subscriber.chat_id)
        session.execute(update(Subscriber).where(chosen.in_(digest)).values(
            delivery_mode="digest", digest_hours=6,
            next_digest_at=now + timedelta(seconds=DIGEST_LEAD)))  # fmt: skip
        session.execute(update(Subscriber).where(chosen.in_(french)).values(language="fr"))
        for n, zone in enumerate(ZONES):
            local = now.astimezone(ZoneInfo(zone))
            minute = local.hour * 60 + local.minute
            members = [c for i, c in enumerate(sorted(quiet)) if i % len(ZONES) == n]
            quiet_hours = {"quiet_from": (minute - 60) % 1440, "quiet_to": (minute + 480) % 1440}
            session.execute(
                update(Subscriber).where(chosen.in_(members)).values(timezone=zone, **quiet_hours)
            )
        session.commit()
    return {
        "instant": set(chats) - digest - quiet,  # awake: they get every alert at once
        "digest": digest - quiet,  # their digest goes out in the run
        "held": quiet,  # alerts (or digest) held until their quiet hours end
    }


def busy_cycle(engine: Engine, stories: int, now: datetime) -> list[int]:
    """`stories` new stories stored in one transaction, as the pipeline's cycle does."""
    ids = []
    with Session(engine) as session:
        for n in range(stories):
            entry = Entry(
                feed_url="https://wire.test/feed", feed_name="Wire", guid=f"g{n}",
                title=f"Busy cycle story {n:02d}: the border, the court, the convoy",
                text="", link=f"https://wire.test/busy/{n}",
                published=now - timedelta(minutes=stories - n), language="en",
            )  # fmt: skip
            story_id, _ = items.add_story(
                session, entry, summary="What happened, in two sentences. " * 3,
                alerted=True, now=now, topics=[TOPICS[n % len(TOPICS)]],
            )  # fmt: skip
            ids.append(story_id)
        session.commit()
    return ids


def join_outlets(engine: Engine, story_ids: list[int]) -> None:
    """A second outlet reports each of these stories: their sent alerts are edited."""
    with Session(engine) as session:
        feed = Feed(url="https://other.test/feed", name="Other Wire")
        session.add(feed)
        session.flush()
        assert feed.id is not None
        for story_id in story_ids:
            key = f"join-{story_id}"
            session.add(Item(feed_id=feed.id, guid=key, link=f"https://other.test/{key}",
                             title_key=key, title="Same story", text="", decision="duplicate",
                             story_id=story_id, outlet="Other Wire"))  # fmt: skip
        session.commit()


def edits_due(engine: Engine, story_ids: list[int]) -> int:
    """Sent alerts of these stories still showing fewer outlets than the story has."""
    with Session(engine) as session:
        return len(session.exec(select(Delivery.id).where(
            col(Delivery.story_id).in_(story_ids), col(Delivery.state) == "sent",
            col(Delivery.outlets_shown) < 1, col(Delivery.edits) < 3)).all())  # fmt: skip


async def mixed(subscribers: int, stories: int, joins: int) -> list[str]:
    """One busy cycle to chats of mixed settings, one replica; a table row."""
    with pg_schema() as url, BotApiServer(limits=Limits()) as server:
        engine = make_engine(url)
        create_schema(engine)
        chats = list(range(3_000_000, 3_000_000 + subscribers))
        subscribe_chats(engine, chats)
        groups = mixed_choices(engine, chats, datetime.now(UTC))
        settings = settings_for(url, telegram_bot_token=server.token,
                                telegram_api_url=server.base_url)  # fmt: skip
        application = build_application(settings, engine, seeds=())
        await application.initialize()
        sender = sender_for(application)
        deliverer = Deliverer(engine, sender, owner=make_owner(), policy=Policy(idle_poll=0.05))
        digests = Digests(engine, sender, owner=make_owner())
        stop = asyncio.Event()
        ids = busy_cycle(engine, stories, datetime.now(UTC))
        started = time.monotonic()
        sending = asyncio.create_task(deliverer.run(stop))

        async def digest_job() -> None:
            while not stop.is_set():
                await digests.run_once()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=1.0)

        folding = asyncio.create_task(digest_job())
        joined = ids[:joins]
        await asyncio.sleep(20)  # the first alerts are out: two more outlets report
        join_outlets(engine, joined)
        instant = groups["instant"]
        expected = len(instant) * stories

        def alerts_in() -> int:
            return sum(1 for m in server.sent() if m.chat_id in instant)

        def done() -> bool:
            with Session(engine) as session:
                unsent = session.exec(select(Digest.id).where(
                    col(Digest.state) != "sent", col(Digest.next_attempt_at) <= datetime.now(UTC)
                )).all()  # fmt: skip
            return alerts_in() >= expected and not unsent and edits_due(engine, joined) == 0

        while not await asyncio.to_thread(done):
            await asyncio.sleep(0.5)
        wall = time.monotonic() - started
        stop.set()
        await asyncio.gather(sending, folding)
        await application.shutdown()
        sent = server.sent()
        times = sorted(m.at for m in sent)
        alert_times = [m.at for m in sent if m.chat_id in instant]
        per_chat = {c: [m for m in sent if m.chat_id == c] for c in instant}
        digest_msgs = sum(1 for m in sent if m.chat_id in groups["digest"])
        calls = server.calls("sendMessage") + server.calls("editMessageText")
        edits = sum(1 for c in server.calls("editMessageText") if c.status == 200)
        refused = sum(1 for c in calls if c.status == 429)
        with Session(engine) as session:
            states = [d.state for d in session.exec(select(Delivery)).all()]
        engine.dispose()
    assert all(len(ms) == stories for ms in per_chat.values()), "an instant chat missed an alert"
    numbers = {c: [re.findall(r"Busy cycle story (\d+)", m.plain)[0] for m in ms]
               for c, ms in per_chat.items()}  # fmt: skip
    assert all(n == sorted(n) for n in numbers.values()), "alerts out of publication order"
    assert not any(m.chat_id in groups["held"] for m in sent), "quiet hours not kept"
    sustained = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    return [
        f"{subscribers:,}", str(stories), f"{len(times):,}", f"{sustained:.1f}",
        str(max_in_window(times)), str(refused),
        f"{max(alert_times) - started:.0f} s" if alert_times else "-",
        f"{digest_msgs:,} ({len(groups['digest'])} chats)", f"{edits:,}",
        f"{states.count('held') + states.count('pending'):,}", f"{wall:.0f} s",
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--modes", default=",".join(MODES), help="before, lease, shared")
    parser.add_argument("--mixed", action="store_true", help="table 3: mixed settings")
    parser.add_argument("--stories", type=int, default=20, help="table 3: the cycle's stories")
    parser.add_argument("--joins", type=int, default=2, help="table 3: stories gaining an outlet")
    parser.add_argument("--kill", type=int, default=0, help="crash trials to run (table 2)")
    parser.add_argument("--kill-subscribers", type=int, default=200)
    parser.add_argument("--database-url", default="", help="table 2: default a SQLite file")
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--api-url", default="", help=argparse.SUPPRESS)
    parser.add_argument("--token", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(replica(args.worker, args.database_url, args.api_url, args.token))
        return
    if args.mixed:
        quiet_libraries()
        row = asyncio.run(mixed(args.subscribers, args.stories, args.joins))
        print(f"One busy cycle to {args.subscribers:,} subscribers of mixed settings, one "
              "replica, Telegram limits enforced by the test server, PostgreSQL:\n")  # fmt: skip
        print(table(["subscribers", "stories", "messages", "msg/s sustained", "max in any 1 s",
                     "429s", "every instant chat has every alert", "digest messages",
                     "edits", "alerts waiting for quiet hours", "wall time"], [row]))  # fmt: skip
        return
    rows = []
    for mode in args.modes.split(","):
        for replicas in (1, 2):
            if mode == "lease" and replicas == 1:
                continue  # one replica under a lease is one replica alone
            rows.append(fanout(args.subscribers, mode, replicas))
            print(" ".join(rows[-1]), file=sys.stderr, flush=True)
    print(f"One alert to {args.subscribers:,} subscribers, Telegram limits enforced by the "
          "test server, each replica a process, one PostgreSQL database:\n")  # fmt: skip
    print(table(["mode", "replicas", "messages", "msg/s sustained", "max in any 1 s", "429s",
                 "sent by each", "wall time"], rows))  # fmt: skip
    if args.kill:
        with tempfile.TemporaryDirectory() as tmp:
            rng = random.Random(3)
            crashes = []
            for trial in range(args.kill):
                folder = Path(tmp) / f"crash{trial}"
                folder.mkdir()
                crash_url = args.database_url or f"sqlite:///{folder}/crash.db"
                crashes.append(
                    [str(trial + 1), *crash_trial(folder, args.kill_subscribers, crash_url, rng)]
                )
            print(f"\nSIGKILL mid-broadcast to {args.kill_subscribers} chats, then restart "
                  "(sendMessage takes 50 ms):\n")  # fmt: skip
            headers = ["trial", "sent before kill", "accepted, unrecorded", "duplicates", "missing"]
            print(table(headers, crashes))


if __name__ == "__main__":
    main()
