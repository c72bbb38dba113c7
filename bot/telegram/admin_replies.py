"""The answers to the administrators' commands (/stats, /feeds, /addfeed, /removefeed), in
Telegram HTML and in the chat's language: pure functions over plain views, like `replies`.
Feed strings are escaped here."""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime

from bot.decide.textcut import shorten
from bot.feeds.catalog import Probe
from bot.i18n import ENGLISH, N_, Voice
from bot.records import FeedSpec
from bot.telegram.render import clean, pack
from bot.telegram.replies import ago_or_never, feed_address, health_mark
from bot.telegram.views import FeedHealth, StatsView


def _e(text: str) -> str:
    return html.escape(text, quote=False)


FEED_STATES = {  # a feed's last status, as /stats and /feeds show it
    "never": N_("never"),
    "ok": N_("ok"),
    "not_modified": N_("not_modified"),
    "error": N_("error"),
}


def _state(status_name: str, v: Voice) -> str:
    label = FEED_STATES.get(status_name)
    return v.gettext(label) if label else status_name


def stats(view: StatsView, *, now: datetime, v: Voice = ENGLISH) -> list[str]:
    states = ", ".join(f"{state} {count}" for state, count in view.deliveries) or v.gettext("none")
    head = "\n".join(
        [
            "<b>" + v.gettext("Stats") + "</b>",
            v.gettext("Subscribers: %(active)d active, %(inactive)d inactive")
            % {"active": view.subscribers_active, "inactive": view.subscribers_inactive},
            v.gettext("Stories: %(total)d (%(day)d in the last 24 h)")
            % {"total": view.stories_total, "day": view.stories_24h},
            v.gettext("Deliveries: %(states)s") % {"states": states},
            v.gettext("Last poll: %(when)s") % {"when": ago_or_never(view.last_poll, now, v)},
            "<b>" + v.gettext("Feeds") + "</b>",
        ]
    )
    lines = []
    for feed in view.feeds:
        error = (
            f" — {_e(shorten(clean(feed.last_error), 120))}"
            if feed.failing and feed.last_error
            else ""
        )
        health = v.ngettext(
            "%(state)s, %(count)d failure, last ok %(when)s",
            "%(state)s, %(count)d failures, last ok %(when)s",
            feed.consecutive_failures,
        ) % {
            "state": _state(feed.status, v),
            "count": feed.consecutive_failures,
            "when": ago_or_never(feed.last_success, now, v),
        }
        lines.append(f"{health_mark(feed)} {_e(shorten(clean(feed.name), 80))}: {health}{error}")
    return pack(lines, header=head, sep="\n")


def addfeed_usage(v: Voice = ENGLISH) -> str:
    return v.gettext(
        "Usage: /addfeed URL [name] [en|fr] — for example "
        "/addfeed https://example.org/rss.xml Example News fr"
    )


def removefeed_usage(v: Voice = ENGLISH) -> str:
    return v.gettext("Usage: /removefeed URL-or-name (/feeds lists them)")


def _address(url: str) -> str:
    return _e(shorten(clean(feed_address(url, full=True)), 200))


def feed_refused(url: str, why: str, v: Voice = ENGLISH) -> str:
    """/addfeed could not accept the feed: why, in the fetcher's or the parser's words."""
    return (
        v.gettext("❌ Not added: %(address)s") % {"address": _address(url)}
        + "\n"
        + _e(shorten(clean(why), 300))
    )


def feed_added(spec: FeedSpec, probe: Probe, *, already: bool, v: Voice = ENGLISH) -> str:
    """/addfeed read the feed: what it found, and whether it is polled from now on."""
    found = v.ngettext(
        "“%(title)s”: %(count)d entry, language %(language)s",
        "“%(title)s”: %(count)d entries, language %(language)s",
        probe.entries,
    ) % {
        "title": _e(shorten(clean(probe.title), 120)) or v.gettext("(no title)"),
        "count": probe.entries,
        "language": _e(probe.language),
    }
    if already:
        return v.gettext("ℹ️ Already polled: %(address)s\nFound %(found)s.") % {
            "address": _address(spec.url),
            "found": found,
        }
    return v.gettext(
        "✅ Added %(name)s — %(address)s\nFound %(found)s. Polled from the next cycle."
    ) % {"name": _e(shorten(clean(spec.name), 120)), "address": _address(spec.url), "found": found}


def feed_removed(done: str, key: str, names: Sequence[str], v: Voice = ENGLISH) -> str:
    shown = _e(shorten(clean(key), 120))
    if done == "removed":
        return v.gettext("🗑 Removed %(name)s: it is no longer polled.") % {
            "name": _e(shorten(clean(names[0]), 120))
        }
    if done == "config":
        return v.gettext("%(name)s comes from the config file: the operator removes it there.") % {
            "name": _e(shorten(clean(names[0]), 120))
        }
    if done == "ambiguous":
        return v.gettext(
            "Several added feeds are called “%(key)s”: give the URL. /feeds lists them."
        ) % {"key": shown}
    return v.gettext("No added feed is called “%(key)s”. /feeds lists them.") % {"key": shown}


def feeds(
    rows: Sequence[tuple[FeedHealth, str]], *, now: datetime, v: Voice = ENGLISH
) -> list[str]:
    """/feeds: each feed's source, status, last poll, failures and last error."""
    lines = []
    for feed, source in rows:
        error = f" — {_e(shorten(clean(feed.last_error), 120))}" if feed.last_error else ""
        health = v.ngettext(
            "%(state)s, last poll %(when)s, %(count)d failure",
            "%(state)s, last poll %(when)s, %(count)d failures",
            feed.consecutive_failures,
        ) % {
            "state": _state(feed.status, v),
            "when": ago_or_never(feed.last_polled, now, v),
            "count": feed.consecutive_failures,
        }
        lines.append(
            f"{health_mark(feed)} {_e(shorten(clean(feed.name), 80))} [{source}] "
            f"{_address(feed.url)}\n    {health}{error}"
        )
    header = "<b>" + v.gettext("Feeds polled (%(count)d)") % {"count": len(rows)} + "</b>"
    return pack(lines, header=header, sep="\n") if lines else [header + "\n" + v.gettext("none")]
