"""The command line: `python -m bot <command>` and the `sahel-watch` script are this."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col

from bot.db import create_schema, make_engine
from bot.errors import ConfigError
from bot.logs import setup_logging
from bot.models import Feed
from bot.pipeline import CycleReport, Pipeline
from bot.settings import Settings, load_settings


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
    engine = make_engine(settings.database_url)
    create_schema(engine)
    pipeline = Pipeline.create(settings, engine)
    try:
        return await pipeline.run_cycle(force=True)
    finally:
        await pipeline.aclose()
        engine.dispose()


def cmd_poll_once(settings: Settings, args: argparse.Namespace) -> int:
    report = asyncio.run(_poll_once(settings))
    if report.error:
        print(f"error: {report.error}", file=sys.stderr)
        return 1
    print_report(report, as_json=args.json)
    return 0


def cmd_feeds(settings: Settings, args: argparse.Namespace) -> int:
    engine = make_engine(settings.database_url)
    create_schema(engine)
    urls = [f.url for f in settings.feeds]
    with Session(engine) as session:
        rows = {
            f.url: f for f in session.execute(select(Feed).where(col(Feed.url).in_(urls))).scalars()
        }
    engine.dispose()
    table = []
    for spec in settings.feed_specs():
        feed = rows.get(spec.url)
        if feed is None:
            table.append([_fit(spec.name, 28), "never", "-", "-", "0", "next cycle", ""])
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
                _fit(feed.last_error or "", 60),
            ]
        )
    headers = ["feed", "last status", "last poll", "last success", "failures", "next poll", "error"]
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sahel-watch",
        description="Sahel Watch: news alerts on the Alliance of Sahel States and Algeria.",
        epilog="Settings come from SAHEL_WATCH_CONFIG (default config/sahel-watch.toml) and the "
        "environment (DATABASE_URL, TELEGRAM_BOT_TOKEN, TELEGRAM_API_URL, LOG_FORMAT, LOG_LEVEL).",
    )
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
    once.set_defaults(func=cmd_poll_once)
    feeds = sub.add_parser("feeds", help="show each feed's health")
    feeds.set_defaults(func=cmd_feeds)
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
    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    upgrade = db_sub.add_parser("upgrade", help="bring the schema to the current version")
    upgrade.set_defaults(func=cmd_db_upgrade)
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
    try:
        code: int = args.func(settings, args)
    except ConfigError as exc:
        print(f"sahel-watch: configuration error: {exc}", file=sys.stderr)
        return 2
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        first_line = (str(cause).strip().splitlines() or [""])[0][:300]
        print(f"sahel-watch: database error: {type(cause).__name__}: {first_line}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code
