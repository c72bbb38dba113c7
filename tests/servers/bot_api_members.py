"""Members of the Bot API test server's chats: who administers which chat (getChatMember,
getChatAdministrators), and the bot's own membership, changed by my_chat_member updates
(`add_bot`, `remove_bot`); sends are refused once the bot is removed, and in a channel
unless it is an administrator.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from tests.servers.bot_api_http import Answer, error, int_param, ok
from tests.servers.bot_api_updates import UpdateQueue

ANONYMOUS_ADMIN = 1087968824  # GroupAnonymousBot: the `from` of an anonymous admin's message
_ADMIN_RIGHTS = dict.fromkeys(
    (
        "can_be_edited",
        "can_manage_chat",
        "can_delete_messages",
        "can_manage_video_chats",
        "can_restrict_members",
        "can_promote_members",
        "can_change_info",
        "can_invite_users",
        "can_post_stories",
        "can_edit_stories",
        "can_delete_stories",
        "can_post_messages",
        "can_edit_messages",
        "can_pin_messages",
    ),
    True,
)
_ADMIN_RIGHTS.update(can_be_edited=False, can_promote_members=False)
STATUSES = ("creator", "administrator", "member", "left", "kicked")


def user_json(
    user_id: int, first_name: str = "Tester", language_code: str | None = None
) -> dict[str, Any]:
    user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
    if language_code:
        user["language_code"] = language_code
    return user


def member_json(status: str, user: dict[str, Any]) -> dict[str, Any]:
    """A ChatMember object as Telegram sends it (every field PTB requires)."""
    if status == "creator":
        return {"status": status, "user": user, "is_anonymous": False}
    if status == "administrator":
        return {"status": status, "user": user, "is_anonymous": False, **_ADMIN_RIGHTS}
    if status == "kicked":
        return {"status": status, "user": user, "until_date": 0}
    if status in ("member", "left"):
        return {"status": status, "user": user}
    raise ValueError(f"unknown member status {status!r}")


class MembersMixin:
    """Chat members and the bot's membership; mixed into BotApiServer (its lock guards all)."""

    # provided by BotApiServer
    bot_id: int
    _cond: threading.Condition
    _chats: dict[int, dict[str, Any]]
    updates: UpdateQueue

    def _init_members(self) -> None:
        self._members: dict[int, dict[int, str]] = {}  # chat -> user -> status

    def _chat(self, chat_id: int, chat_type: str | None = None) -> dict[str, Any]:
        raise NotImplementedError

    def _me(self) -> dict[str, Any]:
        raise NotImplementedError

    def set_admins(
        self, chat_id: int, admins: list[int] | tuple[int, ...] = (), *, creator: int | None = None
    ) -> None:
        """These users administer the chat, and `creator` owns it (the owner stays unless
        another is named); the other administrators become members."""
        with self._cond:
            self._chat(chat_id)
            members = self._members.setdefault(chat_id, {})
            demoted = ("administrator",) if creator is None else ("creator", "administrator")
            for user_id, status in list(members.items()):
                if user_id != self.bot_id and status in demoted:
                    members[user_id] = "member"
            for user_id in admins:
                members[user_id] = "administrator"
            if creator is not None:
                members[creator] = "creator"

    def set_member(self, chat_id: int, user_id: int, status: str) -> None:
        if status not in STATUSES:
            raise ValueError(status)
        with self._cond:
            self._chat(chat_id)
            self._members.setdefault(chat_id, {})[user_id] = status

    def member_status(self, chat_id: int, user_id: int) -> str:
        with self._cond:
            return self._status_locked(chat_id, user_id)

    def add_bot(
        self,
        chat_id: int,
        *,
        by: int,
        status: str = "member",
        chat_type: str | None = None,
        title: str | None = None,
        language_code: str | None = None,
    ) -> int:
        """The user `by` adds the bot to a group or channel (or changes its rights): the
        my_chat_member update Telegram sends. Returns the update id."""
        return self._bot_membership(chat_id, by, status, chat_type, title, language_code)

    def remove_bot(self, chat_id: int, *, by: int, status: str = "left") -> int:
        """The bot is removed (`left`) or banned (`kicked`) by `by`: sends are refused after."""
        return self._bot_membership(chat_id, by, status, None, None, None)

    def _bot_membership(
        self,
        chat_id: int,
        by: int,
        status: str,
        chat_type: str | None,
        title: str | None,
        language_code: str | None,
    ) -> int:
        if status not in STATUSES:
            raise ValueError(status)
        with self._cond:
            chat = self._chat(chat_id, chat_type)
            if title:
                chat["title"] = title
            old = self._status_locked(chat_id, self.bot_id, default="left")
            self._members.setdefault(chat_id, {})[self.bot_id] = status
            me = self._me()
            update = {
                "my_chat_member": {
                    "chat": dict(chat),
                    "from": user_json(by, language_code=language_code),
                    "date": int(time.time()),
                    "old_chat_member": member_json(old, me),
                    "new_chat_member": member_json(status, me),
                }
            }
        return int(self.updates.push(update))

    def _status_locked(self, chat_id: int, user_id: int, default: str | None = None) -> str:
        known = self._members.get(chat_id, {}).get(user_id)
        if known is not None:
            return known
        if default is not None:
            return default
        chat = self._chats.get(chat_id, {})
        if user_id == self.bot_id and chat.get("type") == "channel":
            return "administrator"  # a channel the tests post to: the bot may post
        return "member"

    def _send_refusal_locked(self, chat_id: int) -> tuple[int, str] | None:
        """Why the bot may not post in this chat now, if it may not."""
        chat = self._chats.get(chat_id)
        if chat is None or chat.get("type") == "private":
            return None
        status = self._status_locked(chat_id, self.bot_id)
        if chat.get("type") == "channel":
            if status in ("left", "kicked"):
                return 403, "Forbidden: bot is not a member of the channel chat"
            if status == "member":
                return 400, "Bad Request: need administrator rights in the channel chat"
            return None
        if status == "kicked":
            return 403, "Forbidden: bot was kicked from the group chat"
        if status == "left":
            return 403, "Forbidden: bot is not a member of the group chat"
        return None

    # -- methods ----------------------------------------------------------------------
    def _get_chat_member(self, params: dict[str, Any]) -> Answer:
        chat_id, user_id = int_param(params, "chat_id"), int_param(params, "user_id")
        if chat_id is None or user_id is None:
            return error(400, "Bad Request: chat_id and user_id are required")
        with self._cond:
            if chat_id not in self._chats:
                return error(400, "Bad Request: chat not found")
            status = self._status_locked(chat_id, user_id)
        user = self._me() if user_id == self.bot_id else user_json(user_id)
        return ok(member_json(status, user))

    def _get_chat_administrators(self, params: dict[str, Any]) -> Answer:
        chat_id = int_param(params, "chat_id")
        with self._cond:
            if chat_id is None or chat_id not in self._chats:
                return error(400, "Bad Request: chat not found")
            admins = [
                (user_id, status)
                for user_id, status in self._members.get(chat_id, {}).items()
                if status in ("creator", "administrator")
            ]
        return ok(
            [member_json(s, self._me() if u == self.bot_id else user_json(u)) for u, s in admins]
        )
