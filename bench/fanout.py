"""Fan-out benchmark (issue 3): one alert to N subscribers (default 2,000) through the Bot API
test server enforcing Telegram's limits (30 messages/s overall, 1/s per chat, 20/min per
group), with the real python-telegram-bot client, its AIORateLimiter and the real outbox.

Table 1: messages/s sustained, 429s received, wall time. Target: ≥ 28 messages/s, no 429.

`--kill N` adds table 2, the crash window: N times, `python -m bot run` broadcasts to
`--kill-subscribers` chats through a server whose sendMessage takes 50 ms, is killed with
SIGKILL at a random point, and is restarted; it counts the sends Telegram had accepted but
the database had not recorded at the kill, and the duplicates after the restart (the
at-least-once window of bot/telegram/deliver.py).

    python bench/fanout.py [--subscribers 2000] [--database-url URL] [--kill 5]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sqlmodel import Session, select  # noqa: E402

from bot.db import create_schema, make_engine  # noqa: E402
from bot.models import Delivery  # noqa: E402
from bot.owners import make_owner  # noqa: E402
from bot.telegram.app import build_application, sender_for  # noqa: E402
from bot.telegram.deliver import Deliverer, Policy  # noqa: E402
from tests.servers.bot_api import BotApiServer, Limits  # noqa: E402
from tests.servers.bot_fixtures import insert_story, settings_for, subscribe_chats  # noqa: E402
from tests.servers.bot_process import BotProcess, write_config  # noqa: E402


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


async def fanout(subscribers: int, database_url: str) -> list[str]:
    engine = make_engine(database_url)
    create_schema(engine)
    chats = list(range(1_000_000, 1_000_000 + subscribers))
    subscribe_chats(engine, chats)
    insert_story(engine, title="Fan-out benchmark story", link="https://wire.test/fanout")
    with BotApiServer(limits=Limits()) as server:
        application = build_application(settings_for(database_url, server=server), engine, seeds=())
        await application.initialize()
        try:
            deliverer = Deliverer(engine, sender_for(application), owner=make_owner(),
                                  policy=Policy(idle_poll=0.05))  # fmt: skip
            started = time.monotonic()
            await deliverer.drain(within=3600)
            wall = time.monotonic() - started
        finally:
            await application.shutdown()
        sent = sorted(m.at for m in server.sent())
        refused = len([c for c in server.calls("sendMessage") if c.status == 429])
    with Session(engine) as session:
        states = [d.state for d in session.exec(select(Delivery)).all()]
    engine.dispose()
    sustained = (len(sent) - 1) / (sent[-1] - sent[0]) if len(sent) > 1 else 0.0
    assert states.count("sent") == subscribers, "not every delivery was sent"
    return [
        f"{subscribers:,}", f"{len(sent):,}", f"{sustained:.1f}", f"{len(sent) / wall:.1f}",
        str(max_in_window(sent)), str(refused), f"{wall:.1f} s",
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
    parser.add_argument("--database-url", default="", help="default: a SQLite file in a temp dir")
    parser.add_argument("--kill", type=int, default=0, help="crash trials to run (table 2)")
    parser.add_argument("--kill-subscribers", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/fanout.db"
        row = asyncio.run(fanout(args.subscribers, url))
        print("One alert to every subscriber, Telegram limits enforced by the test server:\n")
        print(table(["subscribers", "messages", "msg/s sustained", "msg/s overall",
                     "max in any 1 s", "429s", "wall time"], [row]))  # fmt: skip
        if args.kill:
            rng = random.Random(3)
            rows = []
            for trial in range(args.kill):
                folder = Path(tmp) / f"crash{trial}"
                folder.mkdir()
                crash_url = args.database_url or f"sqlite:///{folder}/crash.db"
                rows.append(
                    [str(trial + 1), *crash_trial(folder, args.kill_subscribers, crash_url, rng)]
                )
            print(f"\nSIGKILL mid-broadcast to {args.kill_subscribers} chats, then restart "
                  "(sendMessage takes 50 ms):\n")  # fmt: skip
            headers = ["trial", "sent before kill", "accepted, unrecorded", "duplicates", "missing"]
            print(table(headers, rows))


if __name__ == "__main__":
    main()
