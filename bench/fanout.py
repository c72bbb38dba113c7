"""Fan-out benchmark (issues 3 and 10): one alert to N subscribers (default 2,000) through the
Bot API test server enforcing Telegram's limits (30 messages/s overall, 1/s per chat, 20/min
per group), with the real python-telegram-bot client, its AIORateLimiter and the real outbox.

Table 1: one replica against two, each replica a process of its own (`--worker`) on one
PostgreSQL database (a throwaway schema per run), sending through one test server:
    before   each replica paces itself alone (PTB's AIORateLimiter, 29/s)
    lease    one replica at a time sends, under a database lease with takeover (bot/role.py)
    shared   every replica takes its slots from the rate shared in the database
             (bot/telegram/ratelimit.py), what `python -m bot run` does
Messages/s sustained (first to last message at the server), 429s received, the sends of
each replica, wall time from the alert to the last row recorded. Goal: two replicas ≥ 28
messages/s together, no 429.

`--kill N` adds table 2, the crash window: N times, `python -m bot run` broadcasts to
`--kill-subscribers` chats through a server whose sendMessage takes 50 ms, is killed with
SIGKILL at a random point, and is restarted; it counts the sends Telegram had accepted but
the database had not recorded at the kill, and the duplicates after the restart (the
at-least-once window of bot/telegram/deliver.py).

    python bench/fanout.py [--subscribers 2000] [--modes before,lease,shared] [--kill 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402
from sqlmodel import Session, select  # noqa: E402

from bot.owners import make_owner  # noqa: E402
from bot.role import LeasedRole  # noqa: E402
from bot.run import quiet_libraries  # noqa: E402
from bot.storage import stats  # noqa: E402
from bot.storage.db import create_schema, make_engine  # noqa: E402
from bot.storage.models import Delivery  # noqa: E402
from bot.telegram.app import GATE, build_application, sender_for  # noqa: E402
from bot.telegram.deliver import Deliverer, Policy  # noqa: E402
from bot.telegram.sender import FloodGate, Sender, TelegramSender  # noqa: E402
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--modes", default=",".join(MODES), help="before, lease, shared")
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
