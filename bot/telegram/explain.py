"""What an alert says about itself, in the chat's language: its topic tag and why it is new
(one line), the buttons under it, and the story's coverage ("All coverage"). Pure: every
feed string is cleaned, bounded and escaped here, as in `render`.

Callback data (at most 64 bytes, Telegram's limit) carries the story id:

    a:cov:<story>            All coverage
    a:mute:<story>           Mute this story
    a:unmute:<story>         Unmute this story (the button once the chat muted it)
    a:fb:<story>             Not news? (asks why)
    a:fb:<story>:irrelevant  … not relevant to me
    a:fb:<story>:known       … I knew it already
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot import topics as reader_topics
from bot.decide.textcut import shorten
from bot.i18n import Voice
from bot.storage.alerts import FEEDBACK, Coverage
from bot.telegram.render import MAX_LENGTH, MAX_OUTLET, anchor, clean, pack, utf16_len

PREFIX = "a:"
MAX_FOLLOWS = 80  # characters of the earlier story's title in the "why new" line
MAX_COVERAGE_TITLE = 200


@dataclass(frozen=True, slots=True)
class Press:
    """A button pressed under an alert, read back from its callback data."""

    action: str  # cov | mute | unmute | fb
    story_id: int
    verdict: str | None = None  # fb only: irrelevant | known, None to ask


def parse(data: str | None) -> Press | None:
    """The press in `data`, or None for data that is not ours or is malformed."""
    if not data or not data.startswith(PREFIX):
        return None
    parts = data[len(PREFIX) :].split(":")
    if len(parts) not in (2, 3) or not parts[1].isdigit() or len(parts[1]) > 18:
        return None
    action, story_id = parts[0], int(parts[1])
    if action in ("cov", "mute", "unmute") and len(parts) == 2:
        return Press(action, story_id)
    if action == "fb":
        verdict = parts[2] if len(parts) == 3 else None
        if verdict is None or verdict in FEEDBACK:
            return Press(action, story_id, verdict)
    return None


def why_line(topics: Sequence[str], follows: str | None, v: Voice) -> str:
    """'🏷 Security, Algeria–AES relations · follows up “Mali files…”', as escaped HTML,
    bounded. `topics`: the story's decision categories, shown as the reader topics they
    belong to (bot/topics.py).

    `follows`: the title of the earlier story this one follows up (the decision core's
    follow-up relation, `Story.follows_id`); None for the first report of a development.
    """
    labels = [
        v.gettext(label) for label in reader_topics.labels(reader_topics.of_categories(topics))
    ]
    if follows is not None:
        earlier = shorten(clean(follows), MAX_FOLLOWS) or v.gettext("an earlier alert")
        why = v.gettext("follows up “%(title)s”") % {"title": earlier}
    else:
        why = v.gettext("first report of this development")
    tag = "🏷 " + ", ".join(labels) + " · " if labels else ""
    return html.escape(tag + why, quote=False)


def keyboard(story_id: int, v: Voice, *, muted: bool = False) -> InlineKeyboardMarkup:
    """The buttons under an alert; once the chat muted the story, its mute button unmutes."""
    mute = (
        InlineKeyboardButton(v.gettext("Unmute this story"), callback_data=f"a:unmute:{story_id}")
        if muted
        else InlineKeyboardButton(v.gettext("Mute this story"), callback_data=f"a:mute:{story_id}")
    )
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(v.gettext("All coverage"), callback_data=f"a:cov:{story_id}"),
                mute,
            ],
            [InlineKeyboardButton(v.gettext("Not news?"), callback_data=f"a:fb:{story_id}")],
        ]
    )


def feedback_question(story_id: int, v: Voice) -> tuple[str, InlineKeyboardMarkup]:
    """The question "Not news?" asks, with its two answers."""
    buttons = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(
                    v.gettext("Not relevant to me"), callback_data=f"a:fb:{story_id}:irrelevant"
                ),
                InlineKeyboardButton(
                    v.gettext("I knew it already"), callback_data=f"a:fb:{story_id}:known"
                ),
            ]
        ]
    )
    text = v.gettext("Why is this alert not news to you? Your answer helps the bot decide better.")
    return html.escape(text, quote=False), buttons


def feedback_thanks(verdict: str, v: Voice) -> str:
    if verdict == "irrelevant":
        return html.escape(v.gettext("Thank you: noted as not relevant."), quote=False)
    return html.escape(v.gettext("Thank you: noted as already known."), quote=False)


def render_coverage(items: Sequence[Coverage], v: Voice, *, limit: int = MAX_LENGTH) -> list[str]:
    """The "All coverage" answer: each item of the story, oldest first, in whichever language it was
    written, with its outlet and time, packed into messages within `limit`."""
    if not items:
        return [html.escape(v.gettext("This story has no stored coverage."), quote=False)]
    header = "<b>" + html.escape(
        v.ngettext(
            "Coverage of this story: %(count)d report",
            "Coverage of this story: %(count)d reports",
            len(items),
        )
        % {"count": len(items)},
        quote=False,
    ) + "</b>"  # fmt: skip
    blocks = []
    for item in items:
        title = shorten(clean(item.title), MAX_COVERAGE_TITLE) or v.gettext("Untitled")
        outlet = shorten(clean(item.outlet), MAX_OUTLET) or v.gettext("unknown outlet")
        language = clean(item.language)[:5].upper()
        block = (
            f"• {anchor(title, item.link)}\n"
            f"  <i>{html.escape(outlet, quote=False)}</i> · {html.escape(v.when(item.when))}"
            f" · {html.escape(language)}"
        )
        if utf16_len(block) > limit // 2:  # a link too long to keep
            block = f"• {html.escape(title, quote=False)}"
        blocks.append(block)
    return pack(blocks, header=header, limit=limit, sep="\n")
