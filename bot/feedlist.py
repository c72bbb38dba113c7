"""`python -m bot feeds add|remove|list|import|export`: the feed list from the command line.

Feeds added here are the operator's (`source` ``cli``): like the config's, they follow
`limits.allow_private_addresses`. Each is fetched and parsed once before it is accepted.
OPML moves a reader's whole subscription list in (`import`) and out (`export`) at once.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.feeds import catalog, opml
from bot.feeds.fetch import Fetcher, make_client
from bot.records import FeedSpec
from bot.settings import Settings
from bot.storage.db import NoDatabase, create_schema, make_engine, open_existing
from bot.storage.models import utcnow

ADDED_BY = "command line"


def register(feeds: argparse.ArgumentParser) -> None:
    """Add the subcommands to the `feeds` parser (without one, `feeds` shows health)."""
    sub = feeds.add_subparsers(dest="feeds_command", metavar="FEEDS_COMMAND")
    add = sub.add_parser("add", help="fetch a feed once and, if it reads, poll it from now on")
    add.add_argument("url")
    add.add_argument("--name", default="", help="default: the feed's own title")
    add.add_argument("--language", default="", choices=["", *catalog.LANGUAGES])
    add.set_defaults(func=cmd_add)
    remove = sub.add_parser("remove", help="stop polling a feed added here or from a chat")
    remove.add_argument("feed", help="its URL or its name")
    remove.set_defaults(func=cmd_remove)
    listing = sub.add_parser("list", help="the feeds polled: the config's, then the added ones")
    listing.set_defaults(func=cmd_list)
    imp = sub.add_parser("import", help="add every feed of an OPML file (each fetched once)")
    imp.add_argument("file", type=Path)
    imp.set_defaults(func=cmd_import)
    exp = sub.add_parser("export", help="every feed polled as OPML 2.0 (to FILE or stdout)")
    exp.add_argument("file", nargs="?", type=Path)
    exp.set_defaults(func=cmd_export)


async def _add_all(settings: Settings, wanted: Sequence[opml.OpmlFeed]) -> list[tuple[str, str]]:
    """Probe every feed (concurrently, within the fetch limits) and add those that read.

    Answers (url, what happened) in the order given.
    """
    config = settings.feed_specs()
    config_urls = {s.url for s in config}
    checked: list[tuple[opml.OpmlFeed, str | None]] = [
        (w, catalog.check_request(w.url, w.name, w.language)) for w in wanted
    ]
    async with make_client(settings.limits) as client:
        fetcher = Fetcher(client, settings.limits)
        probes = await asyncio.gather(
            *(
                catalog.probe(
                    fetcher, settings.limits, w.url, source="cli", name=w.name, language=w.language
                )
                for w, problem in checked
                if problem is None and w.url not in config_urls
            )
        )
    by_url = {p.url: p for p in probes}
    engine = make_engine(settings.database_url)
    create_schema(engine)
    results: list[tuple[str, str]] = []
    try:
        for w, problem in checked:
            found = by_url.get(w.url)
            if problem is not None:
                results.append((w.url, f"refused: {problem}"))
            elif w.url in config_urls:
                results.append((w.url, "already in the config file"))
            elif found is None or found.error is not None:
                results.append((w.url, f"refused: {found.error if found else '?'}"))
            else:
                name = catalog.clean_name(w.name) or found.title or w.url
                spec = FeedSpec(w.url, name, found.language)
                done = catalog.save_feed(
                    engine, spec, source="cli", added_by=ADDED_BY, config_urls=config_urls
                )
                results.append((w.url, _said(done, spec, found)))
    finally:
        engine.dispose()
    return results


def _said(done: str, spec: FeedSpec, found: catalog.Probe) -> str:
    if done == "exists":
        return "already polled"
    return f"added: {spec.name} ({found.entries} entries, language {found.language})"


def cmd_add(settings: Settings, args: argparse.Namespace) -> int:
    wanted = opml.OpmlFeed(args.url.strip(), args.name, args.language)
    [(_url, said)] = asyncio.run(_add_all(settings, [wanted]))
    print(said)
    return 1 if said.startswith("refused") else 0


def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    try:
        wanted = opml.read_opml(args.file.read_bytes()[: opml.MAX_OPML_BYTES + 1])
    except (OSError, opml.OpmlError) as exc:
        print(f"sahel-watch: {args.file}: {exc}", file=sys.stderr)
        return 1
    results = asyncio.run(_add_all(settings, wanted))
    for url, said in results:
        print(f"{url}  {said}")
    refused = sum(said.startswith("refused") for _url, said in results)
    added = sum(said.startswith("added") for _url, said in results)
    print(f"\n{len(results)} feeds in the file: {added} added, {refused} refused")
    return 1 if refused else 0


def cmd_remove(settings: Settings, args: argparse.Namespace) -> int:
    engine = make_engine(settings.database_url)
    create_schema(engine)
    try:
        done, names = catalog.drop_feed(engine, args.feed, config=settings.feed_specs())
    finally:
        engine.dispose()
    if done == "removed":
        print(f"removed: {names[0]} is no longer polled")
        return 0
    if done == "config":
        print(f"{names[0]} is a config feed: remove it from {settings.config_path}")
    elif done == "ambiguous":
        print("several added feeds have that name; give the URL: " + ", ".join(names))
    else:
        print("no added feed has that URL or name (`feeds list` shows them)")
    return 1


def _listing(settings: Settings) -> list[catalog.CatalogFeed]:
    """The feeds polled; only the config's when there is no database yet (none is created)."""
    try:
        engine = open_existing(settings.database_url)
    except NoDatabase as exc:
        print(f"sahel-watch: {exc}; no feed added yet", file=sys.stderr)
        return [catalog.CatalogFeed(spec, "config") for spec in settings.feed_specs()]
    try:
        return catalog.list_feeds(engine, settings.feed_specs())
    finally:
        engine.dispose()


def cmd_list(settings: Settings, args: argparse.Namespace) -> int:
    feeds = _listing(settings)
    config = [f for f in feeds if f.source == "config"]
    added = [f for f in feeds if f.source != "config"]
    print(f"from {settings.config_path} ({len(config)}):")
    for f in config:
        print(f"  {f.spec.name}  [{f.spec.language}]  {f.spec.url}")
    print(f"\nadded ({len(added)}):")
    for f in added:
        when = f.added_at.strftime("%Y-%m-%d %H:%MZ") if f.added_at else "-"
        print(f"  {f.spec.name}  [{f.spec.language}]  {f.spec.url}  by {f.added_by} {when}")
    return 0


def cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    feeds = [
        opml.OpmlFeed(f.spec.url, f.spec.name if f.spec.name != f.spec.url else "", f.spec.language)
        for f in _listing(settings)
    ]
    data = opml.write_opml(feeds, title="Sahel Watch feeds", created=utcnow())
    if args.file is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        args.file.write_bytes(data)
        print(f"{len(feeds)} feeds written to {args.file}")
    return 0
