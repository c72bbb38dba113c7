"""Messages of the Bot API test server's chats: users' and the bot's, so that replies find
the message they answer, edits change the message, and a user can press a button of an
inline keyboard (callback_query).

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
from tests.servers.bot_api_members import ANONYMOUS_ADMIN, user_json
from tests.servers.bot_api_updates import UpdateQueue
from tests.servers.tg_html import utf16_len

MAX_CALLBACK_DATA = 64  # bytes
MAX_ANSWER_TEXT = 200
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)


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
    """Messages, edits and callback queries; mixed into BotApiServer.

    Every method takes the server's lock; `_*_locked` helpers expect it held.
    """

    # provided by BotApiServer
    bot_id: int
    _cond: threading.Condition
    _chats: dict[int, dict[str, Any]]
    updates: UpdateQueue

    def _init_chats(self) -> None:
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

    # -- users writing to the bot ------------------------------------------------------
    def send_text(
        self,
        chat_id: int,
        text: str,
        *,
        chat_type: str | None = None,
        user_id: int | None = None,
        thread_id: int | None = None,
        first_name: str = "Tester",
        language_code: str | None = None,
        anonymous: bool = False,
        reply_to: int | None = None,
    ) -> int:
        """A message from a user into the update queue; a leading /command gets its entity.

        In a channel it is a channel_post (no `from`, `sender_chat` the channel); with
        `anonymous` it is a group's anonymous administrator (GroupAnonymousBot). Returns the
        update id; the message is kept, so the bot can reply to it.
        """
        with self._cond:
            chat = dict(self._chat(chat_id, chat_type))
            message_id = self._take_message_id()
            message: dict[str, Any] = {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": chat,
                "text": text,
            }
            sender = user_id if user_id is not None else (chat_id if chat_id > 0 else 4242)
            if chat["type"] == "channel":
                message["sender_chat"] = chat
            elif anonymous:
                message["from"] = {
                    "id": ANONYMOUS_ADMIN, "is_bot": True, "first_name": "Group",
                    "username": "GroupAnonymousBot",
                }  # fmt: skip
                message["sender_chat"] = chat
            else:
                message["from"] = user_json(sender, first_name, language_code)
            if text.startswith("/"):
                length = utf16_len(text.split()[0])
                message["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
            if thread_id is not None:
                message.update(message_thread_id=thread_id, is_topic_message=True)
            if reply_to is not None:
                message["reply_to_message"] = public(self._messages[(chat_id, reply_to)])
            self._record_message_locked(message, from_bot=False)
        kind = "channel_post" if chat["type"] == "channel" else "message"
        return self.updates.push({kind: message})

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
