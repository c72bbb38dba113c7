"""The command line: `python -m bot <command>` and the `sahel-watch` script are this."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from sqlalchemy.engine import Engine

from bot import backup, feedback, feedlist
from bot.decide.embed import ModelUnavailable
from bot.delivery.console import CURSOR
from bot.errors import ConfigError
from bot.feeds.schedule import duration
from bot.logs import quiet_migrations, setup_logging
from bot.pipeline import CycleReport, Pipeline
from bot.settings import Settings, load_settings
from bot.storage import cursors, stats
from bot.storage.db import NoDatabase, create_schema, make_engine, open_existing
from bot.storage.errors import StorageError
from bot.storage.models import Feed


def _fit(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def print_report(report: CycleReport, *, as_json: bool) -> None:
    if as_json:
        for v in report.verdicts:
            row = {
                "feed": v.entry.feed_name,
                "title": v.entry.title,
                "link": v.entry.link,
                "guid": v.entry.guid,
                "published": v.entry.published.isoformat() if v.entry.published else None,
                "decision": v.decision,
                "story_id": v.story_id if v.decision in ("new", "duplicate", "stale") else None,
                "reasons": list(v.reasons),
            }
            print(json.dumps(row, ensure_ascii=False))
        return
    rows = [
        [
            _fit(v.entry.feed_name, 20),
            _fit(v.entry.title, 64),
            v.decision,
            str(v.story_id or ""),
            _fit("; ".join(v.reasons), 90),
        ]
        for v in report.verdicts
    ]
    print(render_table(["feed", "title", "decision", "story", "why"], rows))
    counts: dict[str, int] = {}
    for v in report.verdicts:
        counts[v.decision] = counts.get(v.decision, 0) + 1
    summary = ", ".join(f"{k} {n}" for k, n in sorted(counts.items())) or "no new entries"
    print(f"\n{report.feeds_polled} feeds polled, {report.feeds_failed} failed; {summary}")
    for name, error in sorted(report.feed_errors.items()):
        print(f"  failed: {name}: {error}")


async def _poll_once(settings: Settings) -> CycleReport:
    """The cycle `run` runs (every feed, backoff aside), its alerts queued for `run` to send."""
    engine = make_engine(settings.database_url)
    try:
        create_schema(engine)
        # the same audience as `run`: the console's cursor in console mode (the next `run`
        # prints what this cycle alerts), else the subscribers' outbox rows
        if settings.telegram_bot_token is None:
            cursors.start(engine, CURSOR)
        else:
            cursors.drop(engine, CURSOR)
        pipeline = Pipeline.create(settings, engine)
        try:
            return await pipeline.run_cycle(force=True)
        finally:
            await pipeline.aclose()
    finally:
        engine.dispose()


@contextlib.contextmanager
def _stored_or_empty(settings: Settings) -> Iterator[Engine]:
    """The bot's database when it exists, else an empty temporary one: never creates one."""
    try:
        engine = open_existing(settings.database_url)
    except NoDatabase as exc:
        print(f"sahel-watch: {exc}; deciding against an empty database", file=sys.stderr)
        with tempfile.TemporaryDirectory(prefix="sahel-watch-dry-") as folder:
            engine = make_engine(f"sqlite:///{folder}/dry-run.db")
            try:
                create_schema(engine)
                yield engine
            finally:
                engine.dispose()
        return
    try:
        yield engine
    finally:
        engine.dispose()


async def _dry_run(settings: Settings) -> CycleReport:
    """The same cycle inside one transaction that is rolled back: it sees what is stored
    (stories, items, feeds' validators) and stores nothing."""
    with _stored_or_empty(settings) as engine, engine.connect() as connection:
        outer = connection.begin()
        connection.begin_nested()  # the pipeline's sessions join as savepoints of `outer`
        try:
            pipeline = Pipeline.create(settings, connection)
            try:
                return await pipeline.run_cycle(force=True)
            finally:
                await pipeline.aclose()
        finally:
            outer.rollback()


def cmd_poll_once(settings: Settings, args: argparse.Namespace) -> int:
    report = asyncio.run(_dry_run(settings) if args.dry_run else _poll_once(settings))
    if report.error:
        print(f"error: {report.error}", file=sys.stderr)
        return 1
    print_report(report, as_json=args.json)
    if args.dry_run and not args.json:
        print("dry run: nothing was stored or queued")
    return 0


def _interval(feed: Feed) -> str:
    """The feed's poll interval and why (bot/feeds/schedule.py): "2 h (ttl 120 min)"."""
    if feed.poll_seconds is None:
        return "-"
    return f"{duration(feed.poll_seconds)} ({_fit(feed.poll_reason or '', 50)})"


def cmd_feeds(settings: Settings, args: argparse.Namespace) -> int:
    engine = open_existing(settings.database_url)
    rows = stats.feed_rows(engine, [f.url for f in settings.feeds])
    engine.dispose()
    table = []
    for spec in settings.feed_specs():
        feed = rows.get(spec.url)
        if feed is None:
            table.append([_fit(spec.name, 28), "never", "-", "-", "0", "next cycle", "-", ""])
            continue
        next_poll = feed.next_poll_at or (
            feed.last_polled_at + timedelta(seconds=settings.poll_interval)
            if feed.last_polled_at
            else None
        )
        status = feed.last_status + (f" ({feed.last_http_status})" if feed.last_http_status else "")
        table.append(
            [
                _fit(feed.name, 28),
                status,
                _when(feed.last_polled_at),
                _when(feed.last_success_at),
                str(feed.consecutive_failures),
                _when(next_poll) if next_poll else "next cycle",
                _interval(feed),
                _fit(feed.last_error or "", 60),
            ]
        )
    headers = ["feed", "last status", "last poll", "last success", "failures", "next poll"]
    headers += ["interval (why)", "error"]
    print(render_table(headers, table))
    return 0


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    from bot.run import main_run  # the Telegram stack loads only for `run`

    return main_run(settings)


def cmd_health(settings: Settings, args: argparse.Namespace) -> int:
    from bot.health import check_health

    ok, message = check_health(settings)
    print(message)
    return 0 if ok else 1


def cmd_db_upgrade(settings: Settings, args: argparse.Namespace) -> int:
    engine = make_engine(settings.database_url)
    create_schema(engine)
    engine.dispose()
    print("database schema is up to date")
    return 0


def cmd_evaluate(settings: Settings, args: argparse.Namespace) -> int:
    from bot.evaluate import evaluate, render

    result = evaluate(Path(args.file), settings)
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=1))
    else:
        print(render(Path(args.file).name, result))
    return 0


def package_version() -> str:
    try:
        return version("sahel-watch")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sahel-watch",
        description="Sahel Watch: news alerts on the Alliance of Sahel States and Algeria.",
        epilog="Settings come from SAHEL_WATCH_CONFIG (default config/sahel-watch.toml) and the "
        "environment (DATABASE_URL, TELEGRAM_BOT_TOKEN, TELEGRAM_API_URL, LOG_FORMAT, LOG_LEVEL).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser(
        "run", help="poll on a schedule and serve the Telegram bot (console output without a token)"
    )
    run.set_defaults(func=cmd_run)
    once = sub.add_parser(
        "poll-once", help="run one poll cycle over every configured feed and print the decisions"
    )
    once.add_argument(
        "--json", action="store_true", help="one JSON object per entry instead of a table"
    )
    once.add_argument(
        "--dry-run",
        action="store_true",
        help="decide against what is stored, print, and store nothing (no alert is queued)",
    )
    once.set_defaults(func=cmd_poll_once)
    feeds = sub.add_parser("feeds", help="show each feed's health")
    feeds.set_defaults(func=cmd_feeds)
    feedlist.register(feeds)  # feeds add|remove|list|import|export
    health = sub.add_parser(
        "health", help="exit 0 when the database answers and polling is on time"
    )
    health.set_defaults(func=cmd_health)
    evaluate = sub.add_parser(
        "evaluate",
        help="decide a labelled JSON file through the real decision path on a temporary "
        "database and score it (precision, recall, alert precision, misjudged items)",
    )
    evaluate.add_argument("file", help="labelled items, in the schema of labelled_items.json")
    evaluate.add_argument("--json", action="store_true", help="the scores as one JSON object")
    evaluate.set_defaults(func=cmd_evaluate)
    feedback.register(sub)  # feedback export FILE
    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    upgrade = db_sub.add_parser("upgrade", help="bring the schema to the current version")
    upgrade.set_defaults(func=cmd_db_upgrade)
    backup.register(db_sub)  # db backup PATH
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"sahel-watch: configuration error: {exc}", file=sys.stderr)
        return 2
    token = settings.telegram_bot_token.get_secret_value() if settings.telegram_bot_token else ""
    setup_logging(settings.log_format, settings.log_level, secrets=(token,))
    if args.func not in (cmd_run, cmd_db_upgrade):  # the commands that migrate for the operator
        quiet_migrations()  # evaluate, poll-once, feeds add …: a temporary or side migration
    try:
        code: int = args.func(settings, args)
    except ConfigError as exc:
        print(f"sahel-watch: configuration error: {exc}", file=sys.stderr)
        return 2
    except (NoDatabase, ModelUnavailable) as exc:
        print(f"sahel-watch: {exc}", file=sys.stderr)
        return 1
    except StorageError as exc:
        cause = getattr(exc, "orig", None) or exc
        first_line = (str(cause).strip().splitlines() or [""])[0][:300]
        print(f"sahel-watch: database error: {type(cause).__name__}: {first_line}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code
