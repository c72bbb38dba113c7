"""What fault isolation costs: deciding entries with and without a savepoint each (issue 7).

The pipeline decides every entry of a cycle in its own savepoint (`Pipeline._decide_isolated`)
so that a row the database refuses is rolled back alone. This prints the time per entry
with and without the savepoints, on SQLite and on PostgreSQL, for the same synthetic
entries (the poll bench's vocabulary) decided into an empty store, in one transaction,
and what a SAVEPOINT and its RELEASE cost alone (the difference of the first two columns
is mostly the noise of deciding).

    python bench/savepoints.py [--entries 500] [--postgres postgresql://postgres@127.0.0.1/test]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.poll import _synthetic, _vocabulary  # noqa: E402


def _run(database_url: str, entries: int, isolated: bool) -> float:
    from sqlmodel import Session

    from bot.pipeline import Pipeline
    from bot.records import Entry
    from bot.settings import load_settings
    from bot.storage.db import create_schema, make_engine
    from bot.storage.models import utcnow

    tmp = Path(tempfile.mkdtemp(prefix="sw-sp-"))
    config = tmp / "c.toml"
    config.write_text(
        f'seeds_dir = "{REPO / "seeds"}"\nmax_age_hours = 0\n'
        '[[feeds]]\nurl = "http://127.0.0.1:9/x"\nname = "bench"\n'
    )
    settings = load_settings({"SAHEL_WATCH_CONFIG": str(config), "DATABASE_URL": database_url})
    engine = make_engine(database_url)
    create_schema(engine)
    pipeline = Pipeline(settings, engine, client=None)
    rng, words, now = random.Random(7), _vocabulary(), utcnow()
    batch = []
    for j in range(entries):
        title, text = _synthetic(j, rng, words)
        batch.append(
            Entry(
                "http://127.0.0.1:9/x",
                "bench",
                f"g{j}",
                title,
                text,
                f"https://n.example/{j}",
                now,
                "en",
            )
        )
    feed = pipeline._claim(now, True, 0.0)[0]
    with Session(engine) as session:
        session.connection()  # the transaction is open before the clock starts
        from bot.storage import runs as run_store

        run_store.start_run(session, now)
        t0 = time.perf_counter()
        for entry in batch:
            if isolated:
                pipeline._decide_isolated(session, feed, entry, now, {})
            else:
                pipeline._decide(session, feed.id, entry, now)
        session.commit()
        elapsed = time.perf_counter() - t0
    engine.dispose()
    return elapsed / entries * 1000


def _bare(database_url: str, n: int = 5000) -> float:
    """ms for one SAVEPOINT and its RELEASE, nothing inside."""
    from sqlmodel import Session

    from bot.storage.db import make_engine

    engine = make_engine(database_url)
    with Session(engine) as session:
        session.connection()
        t0 = time.perf_counter()
        for _ in range(n):
            session.begin_nested().commit()
        elapsed = time.perf_counter() - t0
        session.rollback()
    engine.dispose()
    return elapsed / n * 1000


def _pg_schema(admin: str) -> str:
    import psycopg

    schema = f"sw_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in admin else "?"
    return f"{admin}{sep}options=-csearch_path%3D{schema}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=500)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    print("| database | ms/entry, one transaction | ms/entry, + savepoint each | savepoint alone |")
    print("| --- | ---: | ---: | ---: |")
    for name in ("sqlite", "postgresql"):
        times = {}
        for isolated in (False, True) * 3:  # interleaved, best of three
            if name == "sqlite":
                url = f"sqlite:///{tempfile.mkdtemp(prefix='sw-sp-')}/b.db"
            else:
                url = _pg_schema(args.postgres)
            ms = _run(url, args.entries, isolated)
            times[isolated] = min(ms, times.get(isolated, ms))
        plain, saved = times[False], times[True]
        bare = _bare(url)
        print(f"| {name} | {plain:.2f} | {saved:.2f} | {bare:.3f} ms |")


if __name__ == "__main__":
    main()
