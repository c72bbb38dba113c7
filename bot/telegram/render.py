"""Telegram HTML for alerts: pure functions over `StoryView`.

Every feed string is cleaned (control characters and lone surrogates dropped, whitespace
folded) and escaped with `html.escape`; only http(s) links become `<a href>`. A message is
measured in UTF-16 code units, the way Telegram counts, on the HTML itself, which is never
shorter than the text a client shows: so a rendered message is always within
`MessageLimit.MAX_TEXT_LENGTH`. When it would not fit, the summary is trimmed first, then
the "also reported by" list, then the title; the article link is never cut.
"""

from __future__ import annotations

import dataclasses
import html
import re
import unicodedata
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from html.parser import HTMLParser
from urllib.parse import urlsplit

from telegram.constants import MessageLimit

from bot.decide.textcut import shorten
from bot.i18n import ENGLISH, Voice
from bot.telegram.views import Source, StoryView

MAX_LENGTH: int = MessageLimit.MAX_TEXT_LENGTH
MAX_HREF = 2048  # escaped length; a longer link is shown as text, unlinked
MAX_OUTLET = 80
MAX_ALSO = 10
MIN_LIMIT = 1024  # an unlinked "Untitled" with the outlet line always fits

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, as Telegram counts message text."""
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


def clean(text: str) -> str:
    """One line of safe plain text: no control or bidi characters, whitespace folded."""
    text = unicodedata.normalize("NFC", _SURROGATE.sub("", text))
    return " ".join(_CONTROL.sub(" ", text).split())


def safe_url(url: str) -> str | None:
    """The URL if a Telegram link may point at it (absolute http or https), else None."""
    url = url.strip()
    if not url or _CONTROL.search(url) or _SURROGATE.search(url) or any(c.isspace() for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in {"http", "https"} or not parts.hostname:
        return None
    if len(html.escape(url, quote=True)) > MAX_HREF:
        return None
    return url


def anchor(text: str, url: str) -> str:
    """`text` linked to `url` when the URL is safe, else just the escaped text."""
    href = safe_url(url)
    if href is None:
        return html.escape(text, quote=False)
    return f'<a href="{html.escape(href, quote=True)}">{html.escape(text, quote=False)}</a>'


def when(moment: datetime) -> str:
    """'7 Apr 2025, 14:30 UTC'."""
    moment = moment.astimezone(UTC)
    return f"{moment.day} {moment:%b %Y, %H:%M} UTC"


def _largest(build: Callable[[int], str], upper: int, limit: int) -> str | None:
    """build(k) for the largest k in [0, upper] whose result fits `limit` (monotone in k)."""
    if utf16_len(build(upper)) <= limit:
        return build(upper)
    low, high = 0, upper  # invariant: build(high) does not fit
    if utf16_len(build(0)) > limit:
        return None
    while high - low > 1:
        middle = (low + high) // 2
        if utf16_len(build(middle)) <= limit:
            low = middle
        else:
            high = middle
    return build(low)


def _also_line(also: Sequence[Source], count: int, v: Voice = ENGLISH) -> str:
    if count <= 0 or not also:
        return ""
    link = v.gettext("link")
    shown = ", ".join(
        anchor(shorten(clean(s.name), MAX_OUTLET) or link, s.link) for s in also[:count]
    )
    more = len(also) - count
    if more > 0:
        shown = v.ngettext(
            "%(outlets)s and %(count)d more", "%(outlets)s and %(count)d more", more
        ) % {"outlets": shown, "count": more}
    return v.ngettext(
        "Also reported by %(count)d outlet: %(outlets)s",
        "Also reported by %(count)d outlets: %(outlets)s",
        len(also),
    ) % {"outlets": shown, "count": len(also)}


def stamp(story: StoryView, v: Voice = ENGLISH, now: datetime | None = None) -> str:
    """When the story was published (else first seen), in the chat's language and time zone,
    with the time since beside it when `now` is given."""
    moment = story.published or story.seen
    shown = v.when(moment) if now is None else v.when_ago(moment, now)
    return shown if story.published else v.gettext("seen %(when)s") % {"when": shown}


def _compose(
    story: StoryView,
    title: str,
    summary: str,
    also_count: int,
    v: Voice = ENGLISH,
    now: datetime | None = None,
    explain: str = "",
) -> str:
    outlet = shorten(clean(story.outlet), MAX_OUTLET) or v.gettext("unknown outlet")
    lines = [
        f"<b>{anchor(title or v.gettext('Untitled'), story.link)}</b>",
        f"<i>{html.escape(outlet, quote=False)}</i> · {stamp(story, v, now)}",
    ]
    if explain:
        lines.append(explain)
    if summary:
        lines += ["", html.escape(summary, quote=False)]
    also = _also_line(story.also, also_count, v)
    if also:
        lines += ["", also]
    return "\n".join(lines)


def distinct_sources(story: StoryView) -> tuple[Source, ...]:
    """Other outlets, one link each, in the order given, without the story's own link."""
    seen: set[str] = set()
    out: list[Source] = []
    for source in story.also:
        key = clean(source.name).casefold()
        if not key or key in seen or source.link == story.link:
            continue
        seen.add(key)
        out.append(source)
    return tuple(out)


def render_story(
    story: StoryView,
    *,
    summary_chars: int | None = None,
    limit: int = MAX_LENGTH,
    v: Voice = ENGLISH,
    now: datetime | None = None,
    explain: str = "",
) -> str:
    """The alert for `story`, within `limit` UTF-16 units; summary_chars caps the summary.
    Labels and dates in the chat's language and time zone (`v`); `now`: with "2 hr. ago".
    `explain`: one line of our own HTML under the outlet (bounded: the topic tag and why the
    alert is new, bot/telegram/explain.py)."""
    if limit < MIN_LIMIT:
        raise ValueError(f"limit must be at least {MIN_LIMIT}")
    story_also = distinct_sources(story)
    story = dataclasses.replace(story, also=story_also)
    title = clean(story.title)
    summary = clean(story.summary)
    if summary_chars is not None:
        summary = shorten(summary, summary_chars)
    also_max = min(len(story_also), MAX_ALSO)

    def with_summary(k: int) -> str:
        return _compose(story, title, shorten(summary, k), also_max, v, now, explain)

    def with_also(k: int) -> str:
        return _compose(story, title, "", k, v, now, explain)

    def with_title(k: int) -> str:
        return _compose(story, shorten(title, k), "", 0, v, now, explain)

    unlinked = dataclasses.replace(story, title=title, link="", summary="", also=())

    def without_link(k: int) -> str:
        return _compose(unlinked, shorten(title, k), "", 0, v, now, explain)

    steps: list[tuple[Callable[[int], str], int]] = [
        (with_summary, len(summary)),
        (with_also, also_max),
        (with_title, len(title)),
        (without_link, len(title)),
    ]
    for build, upper in steps:
        text = _largest(build, upper, limit)
        if text is not None:
            return text
    raise AssertionError("unreachable: the outlet line always fits within MIN_LIMIT")


def render_alert(
    story: StoryView,
    *,
    limit: int = MAX_LENGTH,
    v: Voice = ENGLISH,
    now: datetime | None = None,
    explain: str = "",
) -> str:
    """The alert message for a new development, in the chat's language and time zone;
    `explain`: its topic tag and why it is new (bot/telegram/explain.py)."""
    return render_story(story, limit=limit, v=v, now=now, explain=explain)


def outlets_of(story: StoryView, also_count: int | None = None) -> int:
    """How many other outlets an alert rendered from the first `also_count` of the story's
    duplicates (all of them when None) names: whether a coverage edit would change it."""
    also = story.also if also_count is None else story.also[:also_count]
    return len(distinct_sources(dataclasses.replace(story, also=also)))


def pack(
    blocks: Sequence[str],
    *,
    header: str = "",
    limit: int = MAX_LENGTH,
    sep: str = "\n\n",
    openers: Sequence[str] | None = None,
) -> list[str]:
    """Join blocks (each within `limit`) with `sep` into as few messages as fit, in order.
    `openers[i]`: block i as written when it opens a message (a heading said again, say)."""
    messages: list[str] = []
    current = header
    for index, block in enumerate(blocks):
        candidate = f"{current}{sep}{block}" if current else block
        if utf16_len(candidate) <= limit:
            current = candidate
            continue
        if current:
            messages.append(current)
        current = block if openers is None else openers[index]
    if current:
        messages.append(current)
    return messages


def render_latest(
    stories: Sequence[StoryView],
    *,
    limit: int = MAX_LENGTH,
    v: Voice = ENGLISH,
    now: datetime | None = None,
    note: str = "",
) -> list[str]:
    """/latest: newest first, each with its summary and link, packed into messages; `note`
    (our own HTML) under the heading."""
    per_story = max(160, 2400 // max(1, len(stories)))
    blocks = [render_story(s, summary_chars=per_story, limit=limit, v=v, now=now) for s in stories]
    count = len(stories)
    header = (
        "<b>"
        + v.ngettext("Latest %(count)d development", "Latest %(count)d developments", count)
        % {"count": count}
        + "</b>"
    )
    if note:
        header += "\n" + note
    return pack(blocks, header=header, limit=limit)


class _TextOf(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hrefs: list[tuple[str | None, int]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._hrefs.append((dict(attrs).get("href"), len(self.parts)))

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._hrefs:
            href, start = self._hrefs.pop()
            if href and "".join(self.parts[start:]) != href:
                self.parts.append(f" <{href}>")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_to_text(message: str) -> str:
    """The text a reader sees, with each link's address after it (for the console)."""
    parser = _TextOf()
    parser.feed(message)
    parser.close()
    return "".join(parser.parts)
