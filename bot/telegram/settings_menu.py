"""The /settings keyboard, pure: the callback grammar, what a press changes, and the pages.

Callback data is untrusted (an old keyboard, a forged client): at most 64 characters of one
grammar, each value checked against what the keyboard offers, else `step_for` says None and
nothing changes. Buttons carry the value they set ("set:s:1" turns sound off), so pressing
twice, or pressing an old keyboard, does what the button says.

    set:m | set:x                  the main page | close (the summary, no keyboard)
    set:t | set:t:+KEY | -KEY      topics page | tick or untick a topic (bot/topics.py)
    set:t:all                      every topic
    set:d | set:d:i | set:d:h6     delivery page | each alert as it comes | a digest every 6 h
    set:d:day | set:d:a8           daily digest page | a daily digest at 08:00
    set:q | set:q:22-7 | set:q:off quiet hours page | 22:00–07:00 | none
    set:z | set:z:Africa/Bamako    time zone page | that zone (one of ZONES)
    set:s:1 | set:s:0              silent notifications on | off
    set:p:1 | set:p:0              link previews on | off
    set:l | set:l:fr               language page | that language (one of bot.i18n.LANGUAGES)
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot import topics
from bot.i18n import LANGUAGE_NAMES, LANGUAGES, N_, Voice
from bot.storage.chat_settings import ChatSettings
from bot.storage.models import utcnow

MAX_DATA = 64
_DATA = re.compile(r"set:([mxtdqzspl])(?::([A-Za-z0-9_+/-]{1,48}))?")
ZONES = (
    "Africa/Bamako",
    "Africa/Niamey",
    "Africa/Ouagadougou",
    "Africa/Algiers",
    "Europe/Paris",
    "UTC",
)
DIGEST_HOURS = (3, 6, 12)
DAILY_HOURS = (6, 7, 8, 9, 12, 17, 19, 21)
QUIET = ((22, 7), (23, 6), (0, 7))  # local hours: from, to
MAX_ZONE = 64


@dataclass(frozen=True, slots=True)
class Step:
    """What a press does: the page to show, the settings to store, a short note to show."""

    page: str
    changes: dict[str, Any] = field(default_factory=dict)
    note: str | None = None  # English, marked with N_


# -- the grammar ---------------------------------------------------------------------------


def step_for(data: str, now: ChatSettings) -> Step | None:
    """The step a button's callback data asks for, or None if it is not a button of ours."""
    if len(data) > MAX_DATA or not data.isascii():
        return None
    match = _DATA.fullmatch(data)
    if match is None:
        return None
    kind, arg = match.group(1), match.group(2)
    if arg is None:
        return None if kind in "sp" else Step(kind)
    if kind == "t":
        return _topic_step(arg, now)
    if kind == "d":
        return _delivery_step(arg)
    if kind == "q":
        return _quiet_step(arg)
    if kind == "z":
        return Step("m", {"timezone": arg}, N_("Time zone saved.")) if arg in ZONES else None
    if kind == "l":
        return Step("m", {"language": arg}, N_("Language saved.")) if arg in LANGUAGES else None
    if kind in "sp" and arg in ("0", "1"):
        name = "silent" if kind == "s" else "link_previews"
        return Step("m", {name: arg == "1"}, N_("Saved."))
    return None


def _topic_step(arg: str, now: ChatSettings) -> Step | None:
    if arg == "all":
        return Step("t", {"topics": ""}, N_("Every topic."))
    sign, key = arg[:1], arg[1:]
    if sign not in "+-" or key not in topics.BY_KEY:
        return None
    chosen = topics.choose(now.topics, key, sign == "+")
    if chosen is None:
        return Step("t", note=N_("Keep at least one topic, or choose every topic."))
    return Step("t", {"topics": chosen}, N_("Saved."))


def _delivery_step(arg: str) -> Step | None:
    if arg == "i":
        return Step("d", {"delivery_mode": "instant"}, N_("Each alert as it comes."))
    if arg == "day":
        return Step("a")
    number = arg[1:]
    if not number.isdecimal() or len(number) > 2:
        return None
    hours = int(number)
    if arg[0] == "h" and hours in DIGEST_HOURS:
        return Step("d", {"delivery_mode": "digest", "digest_hours": hours}, N_("Saved."))
    if arg[0] == "a" and hours in DAILY_HOURS:
        return Step("d", {"delivery_mode": "daily", "digest_at": hours * 60}, N_("Saved."))
    return None


def _quiet_step(arg: str) -> Step | None:
    if arg == "off":
        return Step("q", {"quiet_from": None, "quiet_to": None}, N_("No quiet hours."))
    start, dash, end = arg.partition("-")
    if not dash or not (start.isdecimal() and end.isdecimal()) or len(start + end) > 4:
        return None
    begin, finish = int(start), int(end)
    if (begin, finish) not in QUIET:
        return None
    return Step("q", {"quiet_from": begin * 60, "quiet_to": finish * 60}, N_("Saved."))


@lru_cache(maxsize=1)
def _zones() -> dict[str, str]:
    """Every IANA zone this system knows, by its case-folded name."""
    known = {name.casefold(): name for name in available_timezones()}
    known.setdefault("utc", "UTC")
    return known


def canonical_zone(text: str) -> str | None:
    """'africa/bamako' -> 'Africa/Bamako'; None for a name zoneinfo does not know."""
    name = text.strip()
    if not name or len(name) > MAX_ZONE:
        return None
    found = _zones().get(name.casefold())
    if found is None:
        return None
    try:
        ZoneInfo(found)
    except (ValueError, KeyError, OSError):
        return None
    return found


# -- what the chat reads -------------------------------------------------------------------


def hhmm(minutes: int) -> str:
    return f"{minutes // 60 % 24:02d}:{minutes % 60:02d}"


def delivery_text(view: ChatSettings, v: Voice) -> str:
    if view.delivery_mode == "digest":
        return v.ngettext(
            "a digest every hour", "a digest every %(hours)d hours", view.digest_hours
        ) % {"hours": view.digest_hours}
    if view.delivery_mode == "daily":
        return v.gettext("a daily digest at %(time)s") % {"time": hhmm(view.digest_at)}
    return v.gettext("each alert as it comes")


def quiet_text(view: ChatSettings, v: Voice) -> str:
    if view.quiet_from is None or view.quiet_to is None:
        return v.gettext("none")
    return f"{hhmm(view.quiet_from)}–{hhmm(view.quiet_to)}"


def topics_text(view: ChatSettings, v: Voice) -> str:
    chosen = topics.parse(view.topics)
    if not chosen:
        return v.gettext("all")
    return ", ".join(v.gettext(label) for label in topics.labels(chosen))


def local_time(zone: str, now: datetime) -> str:
    try:
        return now.astimezone(ZoneInfo(zone)).strftime("%H:%M")
    except (ValueError, KeyError, OSError):
        return now.strftime("%H:%M")


def summary(view: ChatSettings, v: Voice, *, now: datetime | None = None) -> str:
    """The chat's settings, one per line (HTML)."""
    when = now or utcnow()
    state = v.gettext("on") if view.subscribed else v.gettext("off (send /subscribe)")
    title = v.gettext("Settings for this chat")
    lines = [
        f"<b>{title}</b>",
        v.gettext("Alerts: %(state)s") % {"state": state},
        v.gettext("Topics: %(topics)s") % {"topics": topics_text(view, v)},
        v.gettext("Delivery: %(how)s") % {"how": delivery_text(view, v)},
        v.gettext("Quiet hours: %(hours)s") % {"hours": quiet_text(view, v)},
        v.gettext("Time zone: %(zone)s (now %(time)s)")
        % {"zone": html.escape(view.timezone), "time": local_time(view.timezone, when)},
        v.gettext("Notifications: %(how)s")
        % {"how": v.gettext("silent") if view.silent else v.gettext("with sound")},
        v.gettext("Link previews: %(state)s")
        % {"state": v.gettext("on") if view.link_previews else v.gettext("off")},
        v.gettext("Language: %(language)s")
        % {"language": LANGUAGE_NAMES.get(view.language, view.language)},
    ]
    return "\n".join(lines)


_PROMPTS = {
    "m": N_("Choose what to change:"),
    "t": N_("Topics: tick the ones this chat should receive."),
    "d": N_("Delivery: each alert as it comes, or a digest of the new stories."),
    "a": N_("A daily digest: at what time (in this chat's time zone)?"),
    "q": N_(
        "Quiet hours (in this chat's time zone): alerts wait until they end, "
        "then arrive; none is lost."
    ),
    "z": N_("Time zone: for quiet hours, digests and dates. Any other: /timezone Area/City"),
    "l": N_("Language of this chat: replies, alerts, digests and the command menu."),
}


def _button(text: str, data: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(text, callback_data=data)


def _mark(chosen: bool, text: str) -> str:
    return ("✅ " if chosen else "▫️ ") + text


def keyboard(view: ChatSettings, page: str, v: Voice) -> InlineKeyboardMarkup:
    back = [_button("« " + v.gettext("Back"), "set:m")]
    rows: list[list[InlineKeyboardButton]]
    if page == "t":
        chosen = topics.parse(view.topics) or set(topics.KEYS)
        rows = [
            [_button(_mark(t.key in chosen, v.gettext(t.label)),
                     f"set:t:{'-' if t.key in chosen else '+'}{t.key}")]
            for t in topics.TOPICS
        ]  # fmt: skip
        rows.append([_button(_mark(not view.topics, v.gettext("Every topic")), "set:t:all")])
    elif page == "d":
        mode = view.delivery_mode
        rows = [[_button(_mark(mode == "instant", v.gettext("Each alert as it comes")), "set:d:i")]]
        rows.append(
            [
                _button(_mark(mode == "digest" and view.digest_hours == h,
                              v.gettext("Every %(hours)d h") % {"hours": h}), f"set:d:h{h}")
                for h in DIGEST_HOURS
            ]
        )  # fmt: skip
        daily = v.gettext("Daily digest…")
        if mode == "daily":
            daily = v.gettext("Daily digest at %(time)s…") % {"time": hhmm(view.digest_at)}
        rows.append([_button(_mark(mode == "daily", daily), "set:d:day")])
    elif page == "a":
        at = view.digest_at if view.delivery_mode == "daily" else -1
        hours = [_button(_mark(at == h * 60, f"{h:02d}:00"), f"set:d:a{h}") for h in DAILY_HOURS]
        rows = [hours[:4], hours[4:]]
        back = [_button("« " + v.gettext("Back"), "set:d")]
    elif page == "q":
        now = (view.quiet_from, view.quiet_to)
        rows = [
            [_button(_mark(now == (a * 60, b * 60), f"{a:02d}:00–{b:02d}:00"), f"set:q:{a}-{b}")]
            for a, b in QUIET
        ]
        rows.append([_button(_mark(view.quiet_from is None, v.gettext("None")), "set:q:off")])
    elif page == "z":
        zones = [_button(_mark(view.timezone == z, z), f"set:z:{z}") for z in ZONES]
        rows = [zones[i : i + 2] for i in range(0, len(zones), 2)]
    elif page == "l":
        rows = [[_button(_mark(view.language == code, LANGUAGE_NAMES[code]), f"set:l:{code}")
                 for code in LANGUAGES]]  # fmt: skip
    else:
        sound = v.gettext("Silent: on") if view.silent else v.gettext("Silent: off")
        previews = v.gettext("Previews: on") if view.link_previews else v.gettext("Previews: off")
        return InlineKeyboardMarkup(
            [
                [_button("🗂 " + v.gettext("Topics"), "set:t"),
                 _button("📬 " + v.gettext("Delivery"), "set:d")],
                [_button("🌙 " + v.gettext("Quiet hours"), "set:q"),
                 _button("🕓 " + v.gettext("Time zone"), "set:z")],
                [_button(("🔕 " if view.silent else "🔔 ") + sound,
                         f"set:s:{0 if view.silent else 1}"),
                 _button("🔗 " + previews, f"set:p:{0 if view.link_previews else 1}")],
                [_button("🌐 " + v.gettext("Language"), "set:l")],
                [_button("✔️ " + v.gettext("Done"), "set:x")],
            ]
        )  # fmt: skip
    return InlineKeyboardMarkup([*rows, back])


def page_text(view: ChatSettings, page: str, v: Voice, *, now: datetime | None = None) -> str:
    prompt = _PROMPTS.get(page)
    text = summary(view, v, now=now)
    return text if prompt is None else f"{text}\n\n{v.gettext(prompt)}"
