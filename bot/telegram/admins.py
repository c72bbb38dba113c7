"""Who may change a chat: in a private chat its user; in groups and channels only the
chat's administrators (and its owner), as Telegram's getChatMember says.

A post in a channel, and a message a group's anonymous administrator sends (`sender_chat`
is the group itself), come from an administrator by construction: only they can post so.
Answers are cached briefly per (chat, user) (`TTL` seconds, at most `SIZE` entries), so a
person pressing through the settings keyboard costs one getChatMember, while a demotion
takes effect within a minute. A getChatMember that fails (the chat is gone, the bot was
removed) counts as "no" and is not cached.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from telegram import ChatMember, Update
from telegram.error import TelegramError
from telegram.ext import CallbackContext

from bot.i18n import Voice

log = logging.getLogger(__name__)

TTL = 60.0
SIZE = 4096
CACHE = "chat_admins"
MANAGERS = (ChatMember.OWNER, ChatMember.ADMINISTRATOR)
SHARED = ("group", "supergroup", "channel")


class AdminCache:
    """(chat, user) -> is an administrator, for `ttl` seconds; the oldest entries go first."""

    def __init__(
        self, ttl: float = TTL, size: int = SIZE, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl, self.size, self.clock = ttl, size, clock
        self._entries: OrderedDict[tuple[int, int], tuple[bool, float]] = OrderedDict()

    def get(self, chat_id: int, user_id: int) -> bool | None:
        found = self._entries.get((chat_id, user_id))
        if found is None:
            return None
        if found[1] <= self.clock():
            del self._entries[(chat_id, user_id)]
            return None
        return found[0]

    def put(self, chat_id: int, user_id: int, is_admin: bool) -> None:
        self._entries[(chat_id, user_id)] = (is_admin, self.clock() + self.ttl)
        self._entries.move_to_end((chat_id, user_id))
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)


def cache_of(context: CallbackContext[Any, Any, Any, Any]) -> AdminCache:
    found = context.bot_data.get(CACHE)
    if not isinstance(found, AdminCache):
        found = context.bot_data[CACHE] = AdminCache()
    return found


async def can_manage(update: Update, context: CallbackContext[Any, Any, Any, Any]) -> bool:
    """May the sender of this update change the chat's subscription and settings?"""
    chat = update.effective_chat
    if chat is None:
        return False
    if chat.type not in SHARED:
        return True
    message = update.effective_message
    if update.callback_query is None and message is not None:
        sender_chat = message.sender_chat
        if sender_chat is not None and sender_chat.id == chat.id:
            return True  # a channel post, or a group's anonymous administrator
    user = update.effective_user
    if user is None or user.is_bot:
        return False
    cache = cache_of(context)
    known = cache.get(chat.id, user.id)
    if known is not None:
        return known
    try:
        member = await context.bot.get_chat_member(chat.id, user.id)
    except TelegramError as exc:
        log.info("getChatMember(%s, %s) failed: %s", chat.id, user.id, exc)
        return False
    allowed = member.status in MANAGERS
    cache.put(chat.id, user.id, allowed)
    return allowed


def refusal(v: Voice) -> str:
    """The short answer to a member who is not an administrator."""
    return v.gettext(
        "Only this chat's administrators can change its alerts and settings. "
        "Ask one of them, or use the bot in a private chat."
    )
