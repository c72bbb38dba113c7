"""The bot's answers to commands, in Telegram HTML: pure functions over plain views.

Feed and seed strings are escaped here; everything else is our own text.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from bot.decide.textcut import shorten
from bot.feeds.catalog import Probe
from bot.records import FeedSpec
from bot.telegram.render import clean, pack, when
from bot.telegram.views import FeedHealth, StatsView, StatusView

LATEST_DEFAULT = 5
LATEST_MAX = 20

COMMANDS: tuple[tuple[str, str], ...] = (
    ("start", "Subscribe this chat and see what the bot watches"),
    ("latest", "The most recent developments: /latest [1-20]"),
    ("status", "This chat's subscription and the bot's health"),
    ("sources", "The news feeds watched"),
    ("subscribe", "Receive alerts in this chat (or forum topic)"),
    ("unsubscribe", "Stop alerts in this chat (also /stop)"),
    ("help", "How to use the bot"),
)


def _e(text: str) -> str:
    return html.escape(text, quote=False)


def _ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 90:
        span = f"{seconds} s"
    elif seconds < 90 * 60:
        span = f"{seconds // 60} min"
    elif seconds < 48 * 3600:
        span = f"{seconds // 3600} h"
    else:
        span = f"{seconds // 86400} days"
    return f"{when(moment)} ({span} ago)"


def welcome(seeds: Sequence[str], *, newly: bool, feeds: int) -> str:
    """/start: what the bot watches, how to use it, and the subscription it just made."""
    watched = (
        "\n".join(f"• <i>{_e(shorten(clean(s), 300))}</i>" for s in seeds)
        or "• (no seed story loaded)"
    )
    state = "✅ This chat is now subscribed." if newly else "✅ This chat was already subscribed."
    return (
        "<b>Sahel Watch</b> sends a short alert when the news moves on from the story you already "
        f"know:\n{watched}\n\n"
        f"It reads {feeds} news feed{'s' if feeds != 1 else ''} in English and French and stays "
        "quiet about reprints of that story and about unrelated news.\n\n"
        f"{state}\n/latest shows recent developments, /unsubscribe stops the alerts, "
        "/help lists every command."
    )


def help_text(*, admin: bool) -> str:
    lines = ["<b>Sahel Watch commands</b>"]
    lines += [f"/{name} — {_e(about)}" for name, about in COMMANDS]
    if admin:
        lines += [
            "/stats — subscribers, stories, deliveries and feed health (admins)",
            "/feeds — every feed polled, where it comes from, and its health (admins)",
            "/addfeed URL [name] [en|fr] — fetch a feed once and poll it from now on (admins)",
            "/removefeed URL-or-name — stop polling a feed added here (admins)",
        ]
    lines.append(
        "\nIn a group, commands also work as /command@botname; a subscription made in a "
        "forum topic delivers to that topic."
    )
    return "\n".join(lines)


def subscribed(*, newly: bool) -> str:
    if newly:
        return "✅ Subscribed: new developments will be sent here. /unsubscribe to stop."
    return "✅ Already subscribed here; nothing changed. /unsubscribe to stop."


def unsubscribed(*, was: bool) -> str:
    if was:
        return "🔕 Unsubscribed: no more alerts here. /subscribe to start again."
    return "🔕 This chat was not subscribed; nothing changed. /subscribe to start."


def latest_usage(arg: str) -> str:
    shown = _e(shorten(clean(arg), 40))
    return (
        f"“{shown}” is not a number from 1 to {LATEST_MAX}. Try /latest for the "
        f"{LATEST_DEFAULT} newest developments, or /latest 10."
    )


def no_stories() -> str:
    return "No new developments yet. You will get an alert here as soon as there is one."


def unknown_command(command: str) -> str:
    return f"I don't know {_e(shorten(clean(command), 40))}. /help lists what I can do."


def not_admin(command: str) -> str:
    return f"Sorry, {command} is for the bot's administrators."


def failure() -> str:
    return "Sorry, something went wrong on my side. Please try again in a minute."


def status(view: StatusView, *, now: datetime) -> str:
    sub = "✅ subscribed" if view.subscribed else "🔕 not subscribed (/subscribe)"
    return "\n".join(
        [
            "<b>Status</b>",
            f"This chat: {sub}",
            f"Last poll: {_ago(view.last_poll, now)}",
            f"Feeds: {view.feeds_ok} healthy, {view.feeds_failing} failing"
            + (f", {view.feeds_waiting} not polled yet" if view.feeds_waiting else ""),
            f"Last 24 h: {view.stories_24h} new development{'s' if view.stories_24h != 1 else ''}, "
            f"{view.alerts_24h} alert{'s' if view.alerts_24h != 1 else ''} delivered here",
        ]
    )


def _health(feed: FeedHealth) -> str:
    if feed.status == "never":
        return "⏳"
    return "⚠️" if feed.failing else "✅"


def feed_address(url: str, *, full: bool) -> str:
    """Where a feed lives, without its secrets: the host; `full`: the URL, query values dropped.

    Feed URLs may carry API keys (``?apikey=…``) or credentials (``user:pass@``): nobody
    sees those; only admins see the path and the names of the query parameters.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(invalid address)"
    if not full or not host:
        return host or "(invalid address)"
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    keys = [key for key, _value in parse_qsl(parts.query, keep_blank_values=True)]
    query = "&".join(f"{key}=…" for key in keys)
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def sources(feeds: Sequence[FeedHealth], *, admin: bool = False) -> list[str]:
    """/sources: each feed's health, name, language and address (see `feed_address`)."""
    lines = [
        f"{_health(f)} {_e(shorten(clean(f.name), 80))} ({_e(clean(f.language))}) — "
        f"{_e(shorten(clean(feed_address(f.url, full=admin)), 200))}"
        for f in feeds
    ]
    header = f"<b>Feeds watched ({len(feeds)})</b>"
    return pack(lines, header=header, sep="\n") if lines else [header + "\nnone configured"]


def stats(view: StatsView, *, now: datetime) -> list[str]:
    states = ", ".join(f"{state} {count}" for state, count in view.deliveries) or "none"
    head = "\n".join(
        [
            "<b>Stats</b>",
            f"Subscribers: {view.subscribers_active} active, {view.subscribers_inactive} inactive",
            f"Stories: {view.stories_total} ({view.stories_24h} in the last 24 h)",
            f"Deliveries: {states}",
            f"Last poll: {_ago(view.last_poll, now)}",
            "<b>Feeds</b>",
        ]
    )
    lines = []
    for feed in view.feeds:
        error = (
            f" — {_e(shorten(clean(feed.last_error), 120))}"
            if feed.failing and feed.last_error
            else ""
        )
        lines.append(
            f"{_health(feed)} {_e(shorten(clean(feed.name), 80))}: {feed.status}, "
            f"{feed.consecutive_failures} failures, last ok {_ago(feed.last_success, now)}{error}"
        )
    return pack(lines, header=head, sep="\n")


def addfeed_usage() -> str:
    return (
        "Usage: /addfeed URL [name] [en|fr] — for example "
        "/addfeed https://example.org/rss.xml Example News fr"
    )


def removefeed_usage() -> str:
    return "Usage: /removefeed URL-or-name (/feeds lists them)"


def _address(url: str) -> str:
    return _e(shorten(clean(feed_address(url, full=True)), 200))


def feed_refused(url: str, why: str) -> str:
    """/addfeed could not accept the feed: why, in the fetcher's or the parser's words."""
    return f"❌ Not added: {_address(url)}\n{_e(shorten(clean(why), 300))}"


def feed_added(spec: FeedSpec, probe: Probe, *, already: bool) -> str:
    """/addfeed read the feed: what it found, and whether it is polled from now on."""
    found = (
        f"“{_e(shorten(clean(probe.title), 120) or '(no title)')}”: {probe.entries} "
        f"entr{'y' if probe.entries == 1 else 'ies'}, language {_e(probe.language)}"
    )
    name = _e(shorten(clean(spec.name), 120))
    if already:
        return f"ℹ️ Already polled: {_address(spec.url)}\nFound {found}."
    return f"✅ Added {name} — {_address(spec.url)}\nFound {found}. Polled from the next cycle."


def feed_removed(done: str, key: str, names: Sequence[str]) -> str:
    shown = _e(shorten(clean(key), 120))
    if done == "removed":
        return f"🗑 Removed {_e(shorten(clean(names[0]), 120))}: it is no longer polled."
    if done == "config":
        return (
            f"{_e(shorten(clean(names[0]), 120))} comes from the config file: "
            "the operator removes it there."
        )
    if done == "ambiguous":
        return f"Several added feeds are called “{shown}”: give the URL. /feeds lists them."
    return f"No added feed is called “{shown}”. /feeds lists them."


def feeds(rows: Sequence[tuple[FeedHealth, str]], *, now: datetime) -> list[str]:
    """/feeds: each feed's source, status, last poll, failures and last error."""
    lines = []
    for feed, source in rows:
        error = f" — {_e(shorten(clean(feed.last_error), 120))}" if feed.last_error else ""
        lines.append(
            f"{_health(feed)} {_e(shorten(clean(feed.name), 80))} [{source}] "
            f"{_address(feed.url)}\n    {feed.status}, last poll {_ago(feed.last_polled, now)}, "
            f"{feed.consecutive_failures} failures{error}"
        )
    header = f"<b>Feeds polled ({len(rows)})</b>"
    return pack(lines, header=header, sep="\n") if lines else [header + "\nnone"]
