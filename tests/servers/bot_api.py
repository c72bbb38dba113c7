"""A Telegram Bot API test server: real HTTP on 127.0.0.1, Telegram's rules where they matter.

    server = BotApiServer(token="123:TEST").start()
    # the bot: TELEGRAM_API_URL=server.base_url, TELEGRAM_BOT_TOKEN=server.token
    server.send_text(1001, "/start")            # a user writes to the bot (getUpdates)
    server.wait_sent(1001, count=1)             # what the bot sent to that chat

Served methods: getMe, getUpdates (long poll, offset, limit, timeout), sendMessage,
setMyCommands, getMyCommands, deleteMyCommands, setWebhook, deleteWebhook, getWebhookInfo,
close, logOut, sendChatAction, answerCallbackQuery. Requests go to `/bot<token>/<method>`
(a wrong token is a 401) with the body PTB sends (`bot_api_http`).

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
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tests.servers.bot_api_http import Answer, Drop, HttpFront, error, int_param, json_param, ok
from tests.servers.bot_api_limits import FloodControl, Limits
from tests.servers.bot_api_updates import UpdateQueue
from tests.servers.tg_html import HTMLParseError, Link, parse, utf16_len

__all__ = ["BotApiServer", "Call", "Limits", "SentMessage"]

MAX_TEXT = 4096
_COMMAND_NAME = re.compile(r"[a-z0-9_]{1,32}")


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


class BotApiServer:
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
        self._commands: list[dict[str, str]] = []
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
    ) -> int:
        """A message from a user into the update queue; a leading /command gets its entity."""
        with self._cond:
            chat = dict(self._chat(chat_id, chat_type))
            message_id = self._take_message_id()
        sender = user_id if user_id is not None else (chat_id if chat_id > 0 else 4242)
        message: dict[str, Any] = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": chat,
            "text": text,
            "from": {"id": sender, "is_bot": False, "first_name": first_name},
        }
        if text.startswith("/"):
            length = utf16_len(text.split()[0])
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
        if thread_id is not None:
            message.update(message_thread_id=thread_id, is_topic_message=True)
        return self.updates.push({"message": message})

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
        with self._cond:
            return list(self._commands)

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
        simple = {"close", "logout", "sendchataction", "answercallbackquery"}
        handlers = {
            "getme": self._get_me,
            "sendmessage": self._send_message,
            "setmycommands": self._set_commands,
            "getmycommands": lambda _: ok(self.commands),
            "deletemycommands": self._delete_commands,
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

    def _send_message(self, params: dict[str, Any]) -> Answer:
        chat_id = int_param(params, "chat_id")
        if chat_id is None:
            return error(400, "Bad Request: chat_id is empty")
        text = str(params.get("text") or "")
        parse_mode = params.get("parse_mode") or None
        thread_id = int_param(params, "message_thread_id")
        plain, links = text, list[Link]()
        if parse_mode is not None and str(parse_mode).lower() == "html":
            try:
                plain, links = parse(text)
            except HTMLParseError as exc:
                return error(400, str(exc))
        if not plain.strip():
            return error(400, "Bad Request: message text is empty")
        if utf16_len(plain) > MAX_TEXT:
            return error(400, "Bad Request: message is too long")
        with self._cond:
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
                    message_id, chat_id, thread_id, text, plain, parse_mode, found, now, params
                )
            )
            self._cond.notify_all()
        result: dict[str, Any] = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": dict(chat),
            "text": plain,
            "from": self._me(),
        }
        if thread_id:
            result.update(message_thread_id=thread_id, is_topic_message=True)
        return ok(result)

    def _set_commands(self, params: dict[str, Any]) -> Answer:
        commands = json_param(params, "commands")
        if not isinstance(commands, list) or len(commands) > 100:
            return error(400, "Bad Request: commands must be a list of at most 100 commands")
        for command in commands:
            name, about = command.get("command", ""), command.get("description", "")
            if not _COMMAND_NAME.fullmatch(name) or not 1 <= len(about) <= 256:
                return error(400, "Bad Request: BOT_COMMAND_INVALID")
        with self._cond:
            self._commands = [
                {"command": c["command"], "description": c["description"]} for c in commands
            ]
        return ok(True)

    def _delete_commands(self, params: dict[str, Any]) -> Answer:
        with self._cond:
            self._commands = []
        return ok(True)
