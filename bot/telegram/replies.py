"""The bot's answers to commands, in Telegram HTML: pure functions over plain views, each
spoken in the chat's language and time zone (`Voice`, bot/i18n).

Feed and seed strings are escaped here; everything else is our own text (the catalogs'
translations included).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from bot.decide.textcut import shorten
from bot.i18n import ENGLISH, N_, Voice
from bot.telegram.render import clean, pack
from bot.telegram.views import FeedHealth, StatusView

LATEST_DEFAULT = 5
LATEST_MAX = 20


@dataclass(frozen=True, slots=True)
class Command:
    """A command of the menu: its English name, its French alias ("" none), what it does."""

    name: str
    french: str
    about: str  # marked with N_, translated where shown
    aliases: tuple[str, ...] = ()  # more names that do the same (not in the menu)

    def shown(self, language: str) -> str:
        """The name a chat in `language` sees in the menu and in /help."""
        return self.french if language == "fr" and self.french else self.name

    @property
    def names(self) -> tuple[str, ...]:
        """Every name the bot answers to."""
        return tuple(dict.fromkeys(n for n in (self.name, self.french, *self.aliases) if n))


# the menu (`set_my_commands`, per language) and /help, in this order
COMMANDS: tuple[Command, ...] = (
    Command("start", "", N_("Subscribe this chat and see what the bot watches")),
    Command("latest", "dernieres", N_("The most recent developments: /latest [1-20]")),
    Command("status", "statut", N_("This chat's subscription and the bot's health")),
    Command("sources", "", N_("The news feeds watched")),
    Command("subscribe", "abonner", N_("Receive alerts in this chat (or forum topic)")),
    Command(
        "unsubscribe",
        "desabonner",
        N_("Stop alerts in this chat (also /stop)"),
        aliases=("stop", "arreter"),
    ),
    Command("settings", "parametres", N_("Topics, delivery, quiet hours, sound, previews")),
    Command("timezone", "fuseau", N_("This chat's time zone: /timezone Africa/Bamako")),
    Command("language", "langue", N_("Choose the bot's language: English or French")),
    Command("id", "", N_("This chat's id (for the bot's operator)")),
    Command("help", "aide", N_("How to use the bot")),
)
ADMIN_COMMANDS: tuple[tuple[str, str], ...] = (
    ("/stats", N_("subscribers, stories, deliveries and feed health (admins)")),
    ("/feeds", N_("every feed polled, where it comes from, and its health (admins)")),
    ("/addfeed URL [name] [en|fr]", N_("fetch a feed once and poll it from now on (admins)")),
    ("/removefeed URL-or-name", N_("stop polling a feed added here (admins)")),
)


def command(name: str) -> Command:
    """The menu entry answering to `name` (any of its names)."""
    for entry in COMMANDS:
        if name in entry.names:
            return entry
    raise KeyError(name)


def slash(name: str, v: Voice) -> str:
    """'/latest' for an English chat, '/dernieres' for a French one."""
    try:
        return "/" + command(name).shown(v.language)
    except KeyError:
        return "/" + name


def menu(language: str) -> list[tuple[str, str]]:
    """(command, description) pairs for `set_my_commands` in `language`."""
    v = Voice(language)
    return [(c.shown(v.language), v.gettext(c.about)) for c in COMMANDS]


def _e(text: str) -> str:
    return html.escape(text, quote=False)


def ago_or_never(moment: datetime | None, now: datetime, v: Voice) -> str:
    if moment is None:
        return v.gettext("never")
    return v.when_ago(moment, now)


def welcome(seeds: Sequence[str], *, newly: bool, feeds: int, v: Voice = ENGLISH) -> str:
    """/start: what the bot watches, how to use it, and the subscription it just made."""
    watched = "\n".join(f"• <i>{_e(shorten(clean(s), 300))}</i>" for s in seeds) or (
        "• " + v.gettext("(no seed story loaded)")
    )
    state = (
        v.gettext("✅ This chat is now subscribed.")
        if newly
        else v.gettext("✅ This chat was already subscribed.")
    )
    reads = v.ngettext(
        "It reads %(count)d news feed in English and French and stays quiet about reprints "
        "of that story and about unrelated news.",
        "It reads %(count)d news feeds in English and French and stays quiet about reprints "
        "of that story and about unrelated news.",
        feeds,
    ) % {"count": feeds}
    use = v.gettext(
        "%(latest)s shows recent developments, %(unsubscribe)s stops the alerts, "
        "%(language)s changes the language, %(help)s lists every command."
    ) % {
        "latest": slash("latest", v),
        "unsubscribe": slash("unsubscribe", v),
        "language": slash("language", v),
        "help": slash("help", v),
    }
    intro = v.gettext(
        "<b>Sahel Watch</b> sends a short alert when the news moves on from the story you "
        "already know:"
    )
    return f"{intro}\n{watched}\n\n{reads}\n\n{state}\n{use}"


def help_text(*, admin: bool, v: Voice = ENGLISH) -> str:
    lines = ["<b>" + v.gettext("Sahel Watch commands") + "</b>"]
    lines += [f"/{c.shown(v.language)} — {_e(v.gettext(c.about))}" for c in COMMANDS]
    if admin:
        lines += [f"{_e(usage)} — {_e(v.gettext(about))}" for usage, about in ADMIN_COMMANDS]
    lines.append("")
    lines.append(
        v.gettext(
            "In a group, commands also work as /command@botname; a subscription made in a "
            "forum topic delivers to that topic."
        )
    )
    if v.language == "fr":
        lines.append(v.gettext("The English command names work too (/help, /latest, …)."))
    else:
        lines.append(
            v.gettext("French names work too: %(names)s.")
            % {"names": ", ".join("/" + c.french for c in COMMANDS if c.french)}
        )
    return "\n".join(lines)


def about_bot(v: Voice = ENGLISH) -> str:
    """Plain text in a private chat: what the bot is, and where to start."""
    return v.gettext(
        "I am <b>Sahel Watch</b>, a news alert bot: I watch news feeds in English and French "
        "about the Alliance of Sahel States (Mali, Burkina Faso, Niger) and Algeria, and "
        "send a short alert when there is a new development. I do not read messages: "
        "%(help)s lists what I can do, %(start)s subscribes this chat."
    ) % {"help": slash("help", v), "start": "/start"}


def group_intro(v: Voice = ENGLISH) -> str:
    """The bot was added to a group or a channel: say hello and how to start."""
    return v.gettext(
        "Hello! I am <b>Sahel Watch</b>: I send a short alert when there is news about the "
        "Alliance of Sahel States (Mali, Burkina Faso, Niger) and Algeria. An administrator "
        "sends %(subscribe)s to receive the alerts here; %(help)s lists every command, "
        "%(language)s switches between English and French."
    ) % {
        "subscribe": slash("subscribe", v),
        "help": slash("help", v),
        "language": slash("language", v),
    }


def chat_id(chat: int, thread: int, v: Voice = ENGLISH) -> str:
    """/id: the chat's id, to put in `admin_chat_ids`."""
    text = v.gettext("This chat's id: <code>%(id)d</code>") % {"id": chat}
    if thread:
        text += "\n" + v.gettext("Forum topic: <code>%(id)d</code>") % {"id": thread}
    return text


def language_menu(v: Voice = ENGLISH) -> str:
    return v.gettext("Choose the language of this chat (now: English).")


def language_set(v: Voice) -> str:
    """The language was changed: said in the new language."""
    return v.gettext("✅ From now on this chat is in English.")


def language_usage(arg: str, v: Voice = ENGLISH) -> str:
    shown = _e(shorten(clean(arg), 40))
    return v.gettext(
        "“%(arg)s” is not a language I speak. Try %(language)s en or %(language)s fr."
    ) % {
        "arg": shown,
        "language": slash("language", v),
    }


def subscribed(*, newly: bool, v: Voice = ENGLISH) -> str:
    stop = slash("unsubscribe", v)
    if newly:
        return v.gettext(
            "✅ Subscribed: new developments will be sent here. %(unsubscribe)s to stop."
        ) % {"unsubscribe": stop}
    return v.gettext("✅ Already subscribed here; nothing changed. %(unsubscribe)s to stop.") % {
        "unsubscribe": stop
    }


def unsubscribed(*, was: bool, v: Voice = ENGLISH) -> str:
    start = slash("subscribe", v)
    if was:
        return v.gettext("🔕 Unsubscribed: no more alerts here. %(subscribe)s to start again.") % {
            "subscribe": start
        }
    return v.gettext(
        "🔕 This chat was not subscribed; nothing changed. %(subscribe)s to start."
    ) % {"subscribe": start}


def latest_usage(arg: str, v: Voice = ENGLISH) -> str:
    shown = _e(shorten(clean(arg), 40))
    latest = slash("latest", v)
    return v.gettext(
        "“%(arg)s” is not a number from 1 to %(max)d. Try %(latest)s for the %(default)d "
        "newest developments, or %(latest)s 10."
    ) % {"arg": shown, "max": LATEST_MAX, "latest": latest, "default": LATEST_DEFAULT}


def latest_capped(asked: str, v: Voice = ENGLISH) -> str:
    """/latest 50: the 20 newest are shown, and this says why not 50."""
    return v.gettext("You asked for %(asked)s; %(max)d is the most I show at once.") % {
        "asked": _e(shorten(clean(asked), 12)),
        "max": LATEST_MAX,
    }


def no_stories(v: Voice = ENGLISH) -> str:
    return v.gettext("No new developments yet. You will get an alert here as soon as there is one.")


def unknown_command(command_name: str, v: Voice = ENGLISH) -> str:
    return v.gettext("I don't know %(command)s. %(help)s lists what I can do.") % {
        "command": _e(shorten(clean(command_name), 40)),
        "help": slash("help", v),
    }


def not_admin(command_name: str, v: Voice = ENGLISH) -> str:
    return v.gettext("Sorry, %(command)s is for the bot's administrators.") % {
        "command": command_name
    }


def failure(v: Voice = ENGLISH) -> str:
    return v.gettext("Sorry, something went wrong on my side. Please try again in a minute.")


def status(view: StatusView, *, now: datetime, v: Voice = ENGLISH) -> str:
    sub = (
        v.gettext("✅ subscribed")
        if view.subscribed
        else v.gettext("🔕 not subscribed (%(subscribe)s)") % {"subscribe": slash("subscribe", v)}
    )
    feeds = v.gettext("Feeds: %(ok)d healthy, %(failing)d failing") % {
        "ok": view.feeds_ok,
        "failing": view.feeds_failing,
    }
    if view.feeds_waiting:
        feeds += v.gettext(", %(waiting)d not polled yet") % {"waiting": view.feeds_waiting}
    stories = v.ngettext(
        "%(count)d new development", "%(count)d new developments", view.stories_24h
    ) % {"count": view.stories_24h}
    alerts = v.ngettext(
        "%(count)d alert delivered here", "%(count)d alerts delivered here", view.alerts_24h
    ) % {"count": view.alerts_24h}
    return "\n".join(
        [
            "<b>" + v.gettext("Status") + "</b>",
            v.gettext("This chat: %(state)s") % {"state": sub},
            v.gettext("Last poll: %(when)s") % {"when": ago_or_never(view.last_poll, now, v)},
            feeds,
            v.gettext("Last 24 h: %(stories)s, %(alerts)s")
            % {"stories": stories, "alerts": alerts},
        ]
    )


def health_mark(feed: FeedHealth) -> str:
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


def sources(feeds: Sequence[FeedHealth], *, admin: bool = False, v: Voice = ENGLISH) -> list[str]:
    """/sources: each feed's health, name, language and address (see `feed_address`)."""
    lines = [
        f"{health_mark(f)} {_e(shorten(clean(f.name), 80))} ({_e(clean(f.language))}) — "
        f"{_e(shorten(clean(feed_address(f.url, full=admin)), 200))}"
        for f in feeds
    ]
    header = "<b>" + v.gettext("Feeds watched (%(count)d)") % {"count": len(feeds)} + "</b>"
    if not lines:
        return [header + "\n" + v.gettext("none configured")]
    return pack(lines, header=header, sep="\n")
