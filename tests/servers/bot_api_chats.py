"""Chats, members and messages of the Bot API test server.

What the server keeps about each chat beyond its type: who administers it (getChatMember),
the bot's own membership (my_chat_member updates; sends refused once it is removed), and the
messages in it, users' and the bot's, so that replies find the message they answer, edits
change the message, and a user can press a button of an inline keyboard (callback_query).

Telegram's rules kept here: callback_data is 1–64 bytes; a message the bot did not send, or
that does not exist, cannot be edited; an edit that changes nothing is a 400 "message is not
modified"; editMessageText without reply_markup removes the keyboard; a callback query is
answered once (a second answer, or an unknown id, is a 400); answerCallbackQuery text is at
most 200 characters. Edits are recorded and counted, not flood-limited (Telegram publishes no
edit limits).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tests.servers.bot_api_http import Answer, error, int_param, json_param, ok
from tests.servers.bot_api_updates import UpdateQueue

ANONYMOUS_ADMIN = 1087968824  # GroupAnonymousBot: the `from` of an anonymous admin's message
MAX_CALLBACK_DATA = 64  # bytes
MAX_ANSWER_TEXT = 200
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
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


@dataclass(frozen=True)
class Edit:
    """One accepted editMessageText / editMessageReplyMarkup."""

    method: str  # lower case
    chat_id: int
    message_id: int
    text: str  # the message's text after the edit, as sent (HTML kept)
    plain: str
    reply_markup: dict[str, Any] | None
    at: float  # time.monotonic()
    params: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class CallbackAnswer:
    query_id: str
    text: str | None
    show_alert: bool
    at: float


def bool_param(params: dict[str, Any], name: str) -> bool:
    value = params.get(name)
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1"}
    return bool(value)


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


def keyboard_param(params: dict[str, Any]) -> dict[str, Any] | None:
    """The reply_markup of a request, checked as Telegram checks inline keyboards.

    Raises ValueError with Telegram's description when it would refuse it.
    """
    markup = json_param(params, "reply_markup")
    if markup is None or markup == "":
        return None
    if not isinstance(markup, dict):
        raise ValueError("Bad Request: can't parse reply keyboard markup JSON object")
    rows = markup.get("inline_keyboard")
    if rows is None:
        return markup  # another kind of keyboard: recorded as sent
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise ValueError("Bad Request: can't parse inline keyboard button: field must be an array")
    for button in itertools.chain.from_iterable(rows):
        if not isinstance(button, dict) or not str(button.get("text") or "").strip():
            raise ValueError("Bad Request: BUTTON_TEXT_INVALID")
        data = button.get("callback_data")
        if data is not None and not 1 <= len(str(data).encode("utf-8")) <= MAX_CALLBACK_DATA:
            raise ValueError("Bad Request: BUTTON_DATA_INVALID")
        if data is None and not any(k in button for k in ("url", "switch_inline_query")):
            raise ValueError("Bad Request: can't parse inline keyboard button: no action")
    return markup


def buttons_of(markup: dict[str, Any] | None) -> list[list[tuple[str, str]]]:
    """Rows of (text, callback_data or url) of an inline keyboard."""
    if not markup:
        return []
    return [
        [(b["text"], str(b.get("callback_data") or b.get("url") or "")) for b in row]
        for row in markup.get("inline_keyboard") or []
    ]


class ChatsMixin:
    """Members, messages, edits and callback queries; mixed into BotApiServer.

    Every method takes the server's lock; `_*_locked` helpers expect it held.
    """

    # provided by BotApiServer
    bot_id: int
    _cond: threading.Condition
    _chats: dict[int, dict[str, Any]]
    updates: UpdateQueue

    def _init_chats(self) -> None:
        self._members: dict[int, dict[int, str]] = {}  # chat -> user -> status
        self._messages: dict[tuple[int, int], dict[str, Any]] = {}  # current Message objects
        self._from_bot: set[tuple[int, int]] = set()
        self._edits: list[Edit] = []
        self._queries: dict[str, CallbackAnswer | None] = {}
        self._query_ids = itertools.count(1)

    def _chat(self, chat_id: int, chat_type: str | None = None) -> dict[str, Any]:
        raise NotImplementedError

    def _take_message_id(self) -> int:
        raise NotImplementedError

    def _me(self) -> dict[str, Any]:
        raise NotImplementedError

    # -- test controls: members ----------------------------------------------------------
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

    # -- test controls: messages and buttons ---------------------------------------------
    def message(self, chat_id: int, message_id: int) -> dict[str, Any]:
        """The message as it is now (after edits), as Telegram would send it."""
        with self._cond:
            found: dict[str, Any] = json.loads(
                json.dumps(public(self._messages[(chat_id, message_id)]))
            )
            return found

    def buttons(self, chat_id: int, message_id: int) -> list[list[tuple[str, str]]]:
        """The message's inline keyboard now: rows of (text, callback_data)."""
        return buttons_of(self.message(chat_id, message_id).get("reply_markup"))

    def edits(self, chat_id: int | None = None, message_id: int | None = None) -> list[Edit]:
        with self._cond:
            return [
                e
                for e in self._edits
                if chat_id in (None, e.chat_id) and message_id in (None, e.message_id)
            ]

    def wait_edits(
        self, chat_id: int, message_id: int | None = None, count: int = 1, timeout: float = 10.0
    ) -> list[Edit]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [
                    e
                    for e in self._edits
                    if e.chat_id == chat_id and message_id in (None, e.message_id)
                ]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{len(found)} of {count} edits in {chat_id} after {timeout}s"
                    )
                self._cond.wait(left)

    def press(
        self,
        chat_id: int,
        message_id: int,
        *,
        text: str | None = None,
        data: str | None = None,
        user_id: int | None = None,
        language_code: str | None = None,
        first_name: str = "Tester",
        check: bool = True,
    ) -> str:
        """A user presses a button (found by its text or its callback_data) under a message:
        a callback_query update. Returns the query id. `check=False` sends `data` whatever
        the keyboard holds (an old keyboard, a forged client)."""
        with self._cond:
            message = self._messages.get((chat_id, message_id))
            if message is None:
                raise LookupError(f"no message {message_id} in chat {chat_id}")
            if check:
                rows = buttons_of(message.get("reply_markup"))
                found = [
                    d for t, d in itertools.chain.from_iterable(rows) if text in (None, t)
                    and data in (None, d)
                ]  # fmt: skip
                if not found or (text is None and data is None):
                    raise LookupError(f"no button {text or data!r} under {message_id}: {rows}")
                data = found[0]
            sender = user_id if user_id is not None else (chat_id if chat_id > 0 else 4242)
            query_id = str(next(self._query_ids))
            self._queries[query_id] = None
            query: dict[str, Any] = {
                "id": query_id,
                "from": user_json(sender, first_name, language_code),
                "message": json.loads(json.dumps(public(message))),
                "chat_instance": str(chat_id),
            }
            if data is not None:
                query["data"] = data
        self.updates.push({"callback_query": query})
        return query_id

    def answer(self, query_id: str) -> CallbackAnswer | None:
        """How the bot answered a callback query (None: not yet)."""
        with self._cond:
            return self._queries[query_id]

    def wait_answer(self, query_id: str, timeout: float = 10.0) -> CallbackAnswer:
        deadline = time.monotonic() + timeout
        with self._cond:
            while (found := self._queries[query_id]) is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"callback query {query_id} unanswered after {timeout}s")
                self._cond.wait(left)
            return found

    # -- recording (lock held) -----------------------------------------------------------
    def _record_message_locked(self, message: dict[str, Any], *, from_bot: bool) -> None:
        key = (int(message["chat"]["id"]), int(message["message_id"]))
        self._messages[key] = json.loads(json.dumps(message))
        if from_bot:
            self._from_bot.add(key)

    def _reply_target_locked(self, chat_id: int, params: dict[str, Any]) -> dict[str, Any] | None:
        """The message a sendMessage replies to; ValueError as Telegram words it."""
        reply = json_param(params, "reply_parameters")
        allow = bool_param(params, "allow_sending_without_reply")
        if isinstance(reply, dict):
            target = int(reply["message_id"])
            allow = allow or bool(reply.get("allow_sending_without_reply"))
            chat_id = int(reply.get("chat_id") or chat_id)
        else:
            target_or_none = int_param(params, "reply_to_message_id")
            if target_or_none is None:
                return None
            target = target_or_none
        found = self._messages.get((chat_id, target))
        if found is None and not allow:
            raise ValueError("Bad Request: message to be replied not found")
        return found

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

    def _answer_callback_query(self, params: dict[str, Any]) -> Answer:
        query_id = str(params.get("callback_query_id") or "")
        text = params.get("text") or None
        if text is not None and len(str(text)) > MAX_ANSWER_TEXT:
            return error(400, "Bad Request: MESSAGE_TOO_LONG")
        with self._cond:
            if query_id not in self._queries or self._queries[query_id] is not None:
                return error(
                    400,
                    "Bad Request: query is too old and response timeout expired "
                    "or query ID is invalid",
                )
            self._queries[query_id] = CallbackAnswer(
                query_id,
                None if text is None else str(text),
                bool_param(params, "show_alert"),
                time.monotonic(),
            )
            self._cond.notify_all()
        return ok(True)

    def _edit_locked(
        self, method: str, params: dict[str, Any], text: str | None, plain: str | None
    ) -> Answer:
        """Apply an edit whose text (if any) was already checked; the lock is held."""
        if params.get("inline_message_id"):
            return error(400, "Bad Request: inline messages are not served by the test server")
        chat_id, message_id = int_param(params, "chat_id"), int_param(params, "message_id")
        if chat_id is None or message_id is None:
            return error(400, "Bad Request: chat_id and message_id are required")
        key = (chat_id, message_id)
        message = self._messages.get(key)
        if message is None:
            return error(400, "Bad Request: message to edit not found")
        if key not in self._from_bot:
            return error(400, "Bad Request: message can't be edited")
        try:
            markup = keyboard_param(params)
        except ValueError as exc:
            return error(400, str(exc))
        new_plain = message.get("text", "") if plain is None else plain
        if (
            new_plain == message.get("text", "")
            and markup == message.get("reply_markup")
            and (text is None or text == message.get("_sent_text"))
        ):
            return error(400, NOT_MODIFIED)
        message["text"] = new_plain
        if text is not None:
            message["_sent_text"] = text
            message["edit_date"] = int(time.time())
        if markup is None:
            message.pop("reply_markup", None)
        else:
            message["reply_markup"] = markup
        self._edits.append(
            Edit(
                method, chat_id, message_id, str(message.get("_sent_text", new_plain)),
                new_plain, markup, time.monotonic(), params,
            )
        )  # fmt: skip
        self._cond.notify_all()
        return ok(public(message))


def public(message: dict[str, Any]) -> dict[str, Any]:
    """A stored message without the server's own bookkeeping keys."""
    return {k: v for k, v in message.items() if not k.startswith("_")}
