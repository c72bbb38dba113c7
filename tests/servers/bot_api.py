"""A Telegram Bot API test server: real HTTP on 127.0.0.1, Telegram's rules where they matter.

    server = BotApiServer(token="123:TEST").start()
    # the bot: TELEGRAM_API_URL=server.base_url, TELEGRAM_BOT_TOKEN=server.token
    server.send_text(1001, "/start")            # a user writes to the bot (getUpdates)
    server.wait_sent(1001, count=1)             # what the bot sent to that chat

Served methods: getMe, getUpdates (long poll, offset, limit, timeout, allowed_updates),
sendMessage, editMessageText, editMessageReplyMarkup, answerCallbackQuery, getChatMember,
getChatAdministrators, setMyCommands, getMyCommands, deleteMyCommands (each per scope and
language_code), setWebhook, deleteWebhook, getWebhookInfo, close, logOut, sendChatAction.
Requests go to `/bot<token>/<method>` (a wrong token is a 401) with the body PTB sends
(`bot_api_http`).

Users and chats (`bot_api_chats`, `bot_api_members`): `send_text` writes as a user (with a
`language_code`; in a channel it is a channel_post; `anonymous=True` is a group's anonymous
admin), `press` presses a button under a message (callback_query), `set_admins` says who
administers a chat (getChatMember), `add_bot`/`remove_bot` are the my_chat_member updates
of the bot added to or removed from a group or channel. A sendMessage records its reply
target (reply_parameters or reply_to_message_id; a missing one is a 400),
disable_notification, link_preview_options and the inline keyboard; `message()` is a
message as it is now, `edits()` what was edited.

Like Telegram: text over 4096 UTF-16 code units after entity parsing is a 400 "message is
too long"; parse_mode=HTML text is checked with Telegram's HTML rules (`tg_html`); too many
messages is a 429 with `parameters.retry_after` (`bot_api_limits`: overall 30/s, per chat
1/s with a burst of 3, per group 20/min); a blocked chat is a 403; a migrated group is a
400 with `migrate_to_chat_id`; a topic in a chat that is not a forum is a 400. `fail()`
scripts errors, dropped connections and lost answers; `set_delay()` makes a method slow. A
message is recorded before the delay, so a client killed during a slow send leaves a
delivered message behind: the worst case for duplicate counting.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tests.servers.bot_api_chats import (
    CallbackAnswer,
    ChatsMixin,
    Edit,
    bool_param,
    keyboard_param,
    public,
)
from tests.servers.bot_api_commands import CommandLists
from tests.servers.bot_api_http import Answer, Drop, HttpFront, error, int_param, json_param, ok
from tests.servers.bot_api_limits import FloodControl, Limits
from tests.servers.bot_api_members import MembersMixin
from tests.servers.bot_api_updates import UpdateQueue
from tests.servers.tg_html import HTMLParseError, Link, parse, utf16_len

__all__ = ["BotApiServer", "Call", "CallbackAnswer", "Edit", "Limits", "SentMessage"]

MAX_TEXT = 4096


@dataclass(frozen=True)
class SentMessage:
    message_id: int
    chat_id: int
    thread_id: int | None
    text: str  # as sent
    plain: str  # as a client shows it
    parse_mode: str | None
    links: tuple[tuple[str, str], ...]  # (text, href)
    at: float  # time.monotonic() when it was accepted
    params: dict[str, Any] = field(repr=False)
    reply_to: int | None = None  # the message it replies to (reply_parameters)
    silent: bool = False  # disable_notification
    link_preview: dict[str, Any] | None = None  # link_preview_options as sent
    reply_markup: dict[str, Any] | None = None

    @property
    def preview_disabled(self) -> bool:
        return bool(self.link_preview and self.link_preview.get("is_disabled"))


@dataclass(frozen=True)
class Call:
    method: str  # lower case
    params: dict[str, Any]
    status: int
    at: float  # time.monotonic() when it was answered
    began: float = 0.0  # time.monotonic() when it arrived (a long poll waits in between)
    via: str = ""  # the extra first path segment, if the client's API root had one


@dataclass
class _Script:
    method: str
    times: int
    status: int | None  # None: drop the connection
    description: str
    parameters: dict[str, Any] | None
    chat_id: int | None
    lose_response: bool  # process the call, then drop the connection


class BotApiServer(ChatsMixin, MembersMixin):
    """The fake Telegram. Thread-safe; every public method may be called from tests."""

    def __init__(
        self,
        token: str = "123456:TEST-token-abc",
        *,
        username: str = "sahel_test_bot",
        limits: Limits | None = None,
        bot_id: int = 123456,
    ) -> None:
        self.token, self.username, self.bot_id = token, username, bot_id
        self.updates = UpdateQueue()
        self._flood = FloodControl(limits or Limits())
        self._cond = threading.Condition()
        self._next_message = 1
        self._sent: list[SentMessage] = []
        self._calls: list[Call] = []
        self._chats: dict[int, dict[str, Any]] = {}
        self._blocked: dict[int, str] = {}
        self._migrated: dict[int, int] = {}
        self._scripts: list[_Script] = []
        self._delays: dict[str, float] = {}
        self.command_lists = CommandLists()
        self._init_chats()
        self._init_members()
        self.rate_limited = 0  # 429s answered because of Limits
        self._front: HttpFront | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self, port: int = 0) -> BotApiServer:
        self._front = HttpFront(self.handle, port)
        return self

    def stop(self) -> None:
        self.updates.close()
        if self._front is not None:
            self._front.close()

    def __enter__(self) -> BotApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._front is not None, "start() first"
        return self._front.port

    @property
    def base_url(self) -> str:
        """The Bot API root, for TELEGRAM_API_URL."""
        return f"http://127.0.0.1:{self.port}"

    def url_via(self, via: str) -> str:
        """Another root for the same API; calls through it are recorded with `via`."""
        return f"{self.base_url}/{via}"

    # -- test controls -----------------------------------------------------------------
    def set_limits(self, limits: Limits) -> None:
        with self._cond:
            self._flood.reset(limits)

    @property
    def rate_limited_by(self) -> dict[str, int]:
        with self._cond:
            return dict(self._flood.refused)

    def add_chat(
        self,
        chat_id: int,
        chat_type: str | None = None,
        *,
        title: str | None = None,
        is_forum: bool = False,
    ) -> dict[str, Any]:
        with self._cond:
            chat = self._chat(chat_id, chat_type)
            if title:
                chat["title"] = title
            if is_forum:
                chat["is_forum"] = True
            return dict(chat)

    def block(
        self, chat_id: int, description: str = "Forbidden: bot was blocked by the user"
    ) -> None:
        with self._cond:
            self._blocked[chat_id] = description

    def unblock(self, chat_id: int) -> None:
        with self._cond:
            self._blocked.pop(chat_id, None)

    def migrate(self, chat_id: int, new_chat_id: int) -> None:
        """The group became a supergroup: sends to the old id get migrate_to_chat_id."""
        with self._cond:
            self._migrated[chat_id] = new_chat_id
            self._chat(new_chat_id, "supergroup")

    def set_delay(self, method: str, seconds: float) -> None:
        with self._cond:
            self._delays[method.lower()] = seconds

    def fail(
        self,
        method: str,
        *,
        times: int = 1,
        status: int | None = 500,
        description: str = "Internal Server Error",
        parameters: dict[str, Any] | None = None,
        chat_id: int | None = None,
        lose_response: bool = False,
    ) -> None:
        """Script the next `times` calls of `method` (for `chat_id`, if given) to fail.

        status None drops the connection before the call is processed; lose_response=True
        processes it (the message is delivered) and then drops the connection.
        """
        script = _Script(
            method.lower(), times, status, description, parameters, chat_id, lose_response
        )
        with self._cond:
            self._scripts.append(script)

    def flood(self, *, times: int, retry_after: int = 1, chat_id: int | None = None) -> None:
        """The next `times` sendMessage calls answer 429 with retry_after."""
        self.fail(
            "sendMessage",
            times=times,
            status=429,
            chat_id=chat_id,
            description=f"Too Many Requests: retry after {retry_after}",
            parameters={"retry_after": retry_after},
        )

    # -- users writing to the bot (send_text and press: bot_api_chats) ---------------------
    def inject_update(self, update: dict[str, Any]) -> int:
        """Any update payload (without update_id); returns its update_id."""
        return self.updates.push(dict(update))

    def wait_updates_consumed(self, timeout: float = 10.0) -> None:
        self.updates.wait_consumed(timeout)

    @property
    def pending_updates(self) -> int:
        return self.updates.pending

    # -- what the bot did --------------------------------------------------------------
    def sent(self, chat_id: int | None = None) -> list[SentMessage]:
        with self._cond:
            return [m for m in self._sent if chat_id is None or m.chat_id == chat_id]

    def calls(self, method: str | None = None) -> list[Call]:
        with self._cond:
            return [c for c in self._calls if method is None or c.method == method.lower()]

    @property
    def commands(self) -> list[dict[str, str]]:
        """The commands of the default scope and no language."""
        return self.command_lists.get()

    def commands_for(
        self, scope: dict[str, Any] | None = None, language_code: str = ""
    ) -> list[dict[str, str]]:
        """The commands set for this scope and language (exactly; no fallback)."""
        return self.command_lists.get(scope, language_code)

    @property
    def command_sets(self) -> dict[tuple[str, str], list[dict[str, str]]]:
        """Every command list set: (scope as canonical JSON, language_code) -> commands."""
        return self.command_lists.all()

    def wait_sent(
        self, chat_id: int | None = None, count: int = 1, timeout: float = 10.0
    ) -> list[SentMessage]:
        """Block until at least `count` messages went to `chat_id` (any chat if None)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [m for m in self._sent if chat_id is None or m.chat_id == chat_id]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"{len(found)} of {count} messages to {chat_id} after {timeout}s"
                    )
                self._cond.wait(left)

    # -- internals (with the lock held) ------------------------------------------------
    def _chat(self, chat_id: int, chat_type: str | None = None) -> dict[str, Any]:
        chat = self._chats.get(chat_id)
        if chat is None:
            kind = chat_type or (
                "private" if chat_id > 0 else "group" if chat_id > -(10**12) else "supergroup"
            )
            chat = {"id": chat_id, "type": kind}
            if kind == "private":
                chat["first_name"] = f"User {chat_id}"
            else:
                chat["title"] = f"Chat {chat_id}"
            self._chats[chat_id] = chat
        elif chat_type is not None:
            chat["type"] = chat_type
        return chat

    def _take_message_id(self) -> int:
        self._next_message += 1
        return self._next_message

    def _script_for(self, method: str, params: dict[str, Any]) -> _Script | None:
        chat_id = int_param(params, "chat_id")
        for script in self._scripts:
            if script.method == method and script.times > 0 and script.chat_id in (None, chat_id):
                script.times -= 1
                return script
        return None

    # -- dispatch ---------------------------------------------------------------------
    def handle(self, token: str, method: str, params: dict[str, Any], via: str = "") -> Answer:
        began = time.monotonic()
        method = method.lower()
        if token != self.token:
            return error(401, "Unauthorized")
        with self._cond:
            script = self._script_for(method, params)
            delay = self._delays.get(method, 0.0)
        if script is not None and not script.lose_response:
            if script.status is None:
                raise Drop
            status, body = error(script.status, script.description, script.parameters)
        else:
            status, body = self._method(method, params)
        with self._cond:
            self._calls.append(Call(method, params, status, time.monotonic(), began, via))
        if delay:
            time.sleep(delay)
        if script is not None and script.lose_response:
            raise Drop
        return status, body

    def _method(self, method: str, params: dict[str, Any]) -> Answer:
        simple = {"close", "logout", "sendchataction"}
        handlers = {
            "getme": self._get_me,
            "sendmessage": self._send_message,
            "editmessagetext": self._edit_text,
            "editmessagereplymarkup": self._edit_markup,
            "answercallbackquery": self._answer_callback_query,
            "getchatmember": self._get_chat_member,
            "getchatadministrators": self._get_chat_administrators,
            "setmycommands": self.command_lists.set_commands,
            "getmycommands": self.command_lists.get_commands,
            "deletemycommands": self.command_lists.delete_commands,
            "getupdates": self.updates.get_updates,
            "setwebhook": self.updates.set_webhook,
            "deletewebhook": self.updates.delete_webhook,
            "getwebhookinfo": self.updates.webhook_info,
        }
        if method in simple:
            return ok(True)
        handler = handlers.get(method)
        if handler is None:
            return error(404, "Not Found")
        try:
            return handler(params)
        except (ValueError, KeyError, TypeError) as exc:
            return error(400, f"Bad Request: {exc}")

    def _me(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "Sahel Watch (test)",
            "username": self.username,
        }

    def _get_me(self, params: dict[str, Any]) -> Answer:
        return ok(
            {
                **self._me(),
                "can_join_groups": True,
                "can_read_all_group_messages": False,
                "supports_inline_queries": False,
            }
        )

    def _checked_text(self, params: dict[str, Any]) -> tuple[str, str, list[Link]]:
        """(text, plain, links) of a send or an edit; ValueError as Telegram words it."""
        text = str(params.get("text") or "")
        parse_mode = params.get("parse_mode") or None
        plain, links = text, list[Link]()
        if parse_mode is not None and str(parse_mode).lower() == "html":
            try:
                plain, links = parse(text)
            except HTMLParseError as exc:
                raise ValueError(str(exc)) from None
        if not plain.strip():
            raise ValueError("Bad Request: message text is empty")
        if utf16_len(plain) > MAX_TEXT:
            raise ValueError("Bad Request: message is too long")
        return text, plain, links

    def _send_message(self, params: dict[str, Any]) -> Answer:
        chat_id = int_param(params, "chat_id")
        if chat_id is None:
            return error(400, "Bad Request: chat_id is empty")
        parse_mode = params.get("parse_mode") or None
        thread_id = int_param(params, "message_thread_id")
        try:
            text, plain, links = self._checked_text(params)
            markup = keyboard_param(params)
        except ValueError as exc:
            return error(400, str(exc))
        preview = json_param(params, "link_preview_options")
        if bool_param(params, "disable_web_page_preview"):
            preview = {"is_disabled": True}
        with self._cond:
            refusal = self._send_refusal_locked(chat_id)
            if refusal is not None:
                return error(*refusal)
            try:
                replied = self._reply_target_locked(chat_id, params)
            except ValueError as exc:
                return error(400, str(exc))
            if chat_id in self._blocked:
                return error(403, self._blocked[chat_id])
            if chat_id in self._migrated:
                return error(
                    400,
                    "Bad Request: group chat was upgraded to a supergroup chat",
                    {"migrate_to_chat_id": self._migrated[chat_id]},
                )
            chat = self._chat(chat_id)
            if thread_id and not chat.get("is_forum"):
                return error(400, "Bad Request: message thread not found")
            now = time.monotonic()
            wait = self._flood.check(chat_id, now)
            if wait > 0:
                self.rate_limited += 1
                retry = max(1, math.ceil(wait))
                return error(429, f"Too Many Requests: retry after {retry}", {"retry_after": retry})
            message_id = self._take_message_id()
            found = tuple((link.text, link.href) for link in links)
            self._sent.append(
                SentMessage(
                    message_id, chat_id, thread_id, text, plain, parse_mode, found, now, params,
                    reply_to=None if replied is None else int(replied["message_id"]),
                    silent=bool_param(params, "disable_notification"),
                    link_preview=preview if isinstance(preview, dict) else None,
                    reply_markup=markup,
                )
            )  # fmt: skip
            result: dict[str, Any] = {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": dict(chat),
                "text": plain,
                "from": self._me(),
            }
            if chat["type"] == "channel":
                result["sender_chat"] = dict(chat)
            if thread_id:
                result.update(message_thread_id=thread_id, is_topic_message=True)
            if markup is not None:
                result["reply_markup"] = markup
            if replied is not None:
                result["reply_to_message"] = public(replied)
            self._record_message_locked({**result, "_sent_text": text}, from_bot=True)
            self._cond.notify_all()
        return ok(result)

    def _edit_text(self, params: dict[str, Any]) -> Answer:
        try:
            text, plain, _ = self._checked_text(params)
        except ValueError as exc:
            return error(400, str(exc))
        with self._cond:
            return self._edit_locked("editmessagetext", params, text, plain)

    def _edit_markup(self, params: dict[str, Any]) -> Answer:
        with self._cond:
            return self._edit_locked("editmessagereplymarkup", params, None, None)
