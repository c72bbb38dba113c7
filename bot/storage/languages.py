"""A chat's language and time zone, as replies need them (issue 9). Sync, one transaction each.

While a chat has not chosen its language (`Subscriber.language_chosen` false), it speaks the
language of its users' Telegram apps (`language_code`): a private chat follows its user's
code; a group takes the code of whoever subscribed it. `/language` (`/langue`) chooses, and
from then on the choice stays. A chat with no subscriber row yet is answered in the code's
language and nothing is stored, except by a choice, which is kept on an inactive row (so it
holds when the chat subscribes later).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.i18n import chat_language
from bot.storage.chat_settings import find, keep
from bot.storage.models import utcnow
from bot.storage.subscribers import Chat

NOT_SUBSCRIBED = "language chosen before subscribing"


@dataclass(frozen=True, slots=True)
class Speech:
    """How a chat is spoken to."""

    language: str
    timezone: str = "UTC"
    chosen: bool = False


def speech(engine: Engine, chat: Chat, code: str | None, *, adopt: bool = False) -> Speech:
    """The chat's language and time zone, for a command from a user whose app says `code`.

    A private chat that has not chosen follows `code`; with `adopt` (the chat was just
    subscribed) a group does too. A stored choice always wins.
    """
    with Session(engine) as session:
        row = find(session, chat)
        if row is None:
            return Speech(chat_language(code))
        follows = not row.language_chosen and (adopt or row.chat_type == "private")
        wanted = chat_language(code)
        if follows and code and row.language != wanted:
            row.language, row.updated_at = wanted, utcnow()
            session.add(row)
            session.commit()
        return Speech(chat_language(row.language), row.timezone or "UTC", row.language_chosen)


def choose(engine: Engine, chat: Chat, language: str, *, now: datetime | None = None) -> None:
    """`/language`: the chat's language from now on, whatever its users' apps say."""
    keep(
        engine, chat, reason=NOT_SUBSCRIBED, now=now,
        language=chat_language(language), language_chosen=True,
    )  # fmt: skip
