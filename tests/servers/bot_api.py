"""A Telegram Bot API test server: real HTTP on 127.0.0.1, Telegram's rules where they matter.

    server = BotApiServer(token="123:TEST").start()
    # the bot: TELEGRAM_API_URL=server.base_url, TELEGRAM_BOT_TOKEN=server.token
    server.send_text(1001, "/start")            # a user writes to the bot (getUpdates)
    server.wait_sent(1001, count=1)             # what the bot sent to that chat

Served methods: getMe, getUpdates (long poll, offset, limit, timeout), sendMessage,
setMyCommands, getMyCommands, deleteMyCommands, deleteWebhook, setWebhook, getWebhookInfo,
close, logOut, sendChatAction, answerCallbackQuery. Requests go to `/bot<token>/<method>`
(a wrong token is a 401), with a form-encoded, multipart or JSON body as PTB sends them.

Like Telegram: text over 4096 UTF-16 code units after entity parsing is a 400 "message is
too long"; parse_mode=HTML text is checked with Telegram's HTML rules (`tg_html`); too many
messages is a 429 with `parameters.retry_after` (token buckets: overall 30/s, per chat 1/s
with a burst of 3, per group 20/min; configurable with `Limits`); a blocked chat is a 403;
a migrated group is a 400 with `migrate_to_chat_id`. `fail()` scripts errors, dropped
connections and lost responses; `set_delay()` makes a method slow. A message is recorded
before the delay, so a client killed during a slow send leaves a delivered message behind,
the worst case for duplicate counting.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import socket
import threading
import time
from dataclasses import dataclass, field, replace
from email import message_from_bytes
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from tests.servers.tg_html import HTMLParseError, parse, utf16_len

MAX_TEXT = 4096
_PATH = re.compile(r"/bot([^/]*)/([A-Za-z]+)")
_COMMAND_NAME = re.compile(r"[a-z0-9_]{1,32}")


@dataclass(frozen=True)
class Limits:
    """Flood limits as token buckets; `enforce=False` turns them all off."""

    overall_per_second: float = 30.0
    overall_burst: float = 30.0
    chat_per_second: float = 1.0
    chat_burst: float = 3.0
    group_per_minute: float = 20.0
    group_burst: float = 20.0
    enforce: bool = True


@dataclass(frozen=True)
class SentMessage:
    message_id: int
    chat_id: int
    thread_id: int | None
    text: str  # as sent
    plain: str  # as a client shows it
    parse_mode: str | None
    links: tuple[tuple[str, str], ...]  # (text, href)
    at: float  # time.monotonic()
    params: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class Call:
    method: str
    params: dict[str, Any]
    status: int
    at: float


@dataclass
class _Script:
    method: str
    times: int
    status: int | None  # None: drop the connection
    description: str
    parameters: dict[str, Any] | None
    chat_id: int | None
    lose_response: bool  # process the call, then drop the connection


class _Bucket:
    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst, self.tokens, self.stamp = rate, burst, burst, now

    def wait(self, now: float) -> float:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self) -> None:
        self.tokens -= 1


class _Drop(Exception):
    """Close the connection without an answer."""


def _error(
    status: int, description: str, parameters: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return status, body


def _decode_params(content_type: str, body: bytes, query: str) -> dict[str, Any]:
    params: dict[str, Any] = dict(parse_qsl(query))
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/json" and body:
        params.update(json.loads(body))
    elif kind == "application/x-www-form-urlencoded":
        params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    elif kind == "multipart/form-data":
        message = message_from_bytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body, policy=HTTP
        )
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if isinstance(name, str) and isinstance(payload, bytes):
                params[name] = payload.decode("utf-8", "replace")
    return params


def _json_param(params: dict[str, Any], name: str) -> Any:
    value = params.get(name)
    return json.loads(value) if isinstance(value, str) else value


def _int_param(params: dict[str, Any], name: str, default: int | None = None) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    return int(value)


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
        self._limits = limits or Limits()
        self._cond = threading.Condition()
        self._updates: list[dict[str, Any]] = []
        self._next_update = 1
        self._next_message = 1
        self._sent: list[SentMessage] = []
        self._calls: list[Call] = []
        self._chats: dict[int, dict[str, Any]] = {}
        self._blocked: dict[int, str] = {}
        self._migrated: dict[int, int] = {}
        self._scripts: list[_Script] = []
        self._delays: dict[str, float] = {}
        self._buckets: dict[tuple[str, int], _Bucket] = {}
        self._commands: list[dict[str, str]] = []
        self._webhook: tuple[str, str | None] | None = None
        self._stopping = False
        self._sockets: set[socket.socket] = set()
        self.rate_limited = 0  # 429s answered because of Limits
        self.rate_limited_by: dict[str, int] = {}  # which limit: all | chat | group
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._pusher: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self, port: int = 0) -> BotApiServer:
        api = self

        class Handler(_Handler):
            server_api = api

        httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        httpd.daemon_threads = True
        httpd.block_on_close = False
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="bot-api", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        for sock in list(self._sockets):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> BotApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "start() first"
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """The Bot API root, for TELEGRAM_API_URL."""
        return f"http://127.0.0.1:{self.port}"

    # -- test controls -----------------------------------------------------------------
    def set_limits(self, limits: Limits) -> None:
        with self._cond:
            self._limits = limits
            self._buckets.clear()

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
        with self._cond:
            self._scripts.append(
                _Script(
                    method.lower(), times, status, description, parameters, chat_id, lose_response
                )
            )

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
        """A message from a user into getUpdates; a leading /command gets its entity."""
        with self._cond:
            chat = dict(self._chat(chat_id, chat_type))
            sender = user_id if user_id is not None else (chat_id if chat_id > 0 else 4242)
            message: dict[str, Any] = {
                "message_id": self._take_message_id(),
                "date": int(time.time()),
                "chat": chat,
                "from": {"id": sender, "is_bot": False, "first_name": first_name},
                "text": text,
            }
            if text.startswith("/"):
                word = text.split()[0]
                message["entities"] = [
                    {"type": "bot_command", "offset": 0, "length": utf16_len(word)}
                ]
            if thread_id is not None:
                message["message_thread_id"] = thread_id
                message["is_topic_message"] = True
            return self._push({"message": message})

    def inject_update(self, update: dict[str, Any]) -> int:
        """Any update payload (without update_id); returns its update_id."""
        with self._cond:
            return self._push(dict(update))

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

    @property
    def pending_updates(self) -> int:
        with self._cond:
            return len(self._updates)

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

    def wait_updates_consumed(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._updates:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self._updates)} updates never fetched")
                self._cond.wait(left)

    # -- internals (call with the lock held) --------------------------------------------
    def _chat(self, chat_id: int, chat_type: str | None = None) -> dict[str, Any]:
        chat = self._chats.get(chat_id)
        if chat is None:
            kind = chat_type or (
                "private"
                if chat_id > 0
                else "supergroup"
                if chat_id < -1_000_000_000_000
                else "group"
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

    def _push(self, update: dict[str, Any]) -> int:
        update["update_id"] = self._next_update
        self._next_update += 1
        self._updates.append(update)
        self._cond.notify_all()
        if self._webhook is not None:
            self._start_pusher()
        return int(update["update_id"])

    def _script_for(self, method: str, params: dict[str, Any]) -> _Script | None:
        chat_id = _int_param(params, "chat_id")
        for script in self._scripts:
            if script.method == method and script.times > 0 and script.chat_id in (None, chat_id):
                script.times -= 1
                return script
        return None

    def _rate_limit(self, chat_id: int, now: float) -> float:
        limits = self._limits
        if not limits.enforce:
            return 0.0
        wanted = [
            (("all", 0), limits.overall_per_second, limits.overall_burst),
            (("chat", chat_id), limits.chat_per_second, limits.chat_burst),
        ]
        if chat_id < 0:
            wanted.append((("group", chat_id), limits.group_per_minute / 60, limits.group_burst))
        buckets = []
        for key, rate, burst in wanted:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(rate, burst, now)
            buckets.append(bucket)
        waits = [b.wait(now) for b in buckets]
        wait = max(waits)
        if wait > 0:
            kind = wanted[waits.index(wait)][0][0]
            self.rate_limited_by[kind] = self.rate_limited_by.get(kind, 0) + 1
        if wait == 0:
            for bucket in buckets:
                bucket.take()
        return wait

    # -- dispatch ---------------------------------------------------------------------
    def handle(self, token: str, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        method = method.lower()
        if token != self.token:
            return _error(401, "Unauthorized")
        with self._cond:
            script = self._script_for(method, params)
            delay = self._delays.get(method, 0.0)
        if script is not None and not script.lose_response:
            if script.status is None:
                raise _Drop
            status, body = _error(script.status, script.description, script.parameters)
        else:
            handler = getattr(self, f"_m_{method}", None)
            if handler is None:
                status, body = _error(404, "Not Found")
            else:
                try:
                    status, body = handler(params)
                except (ValueError, KeyError, TypeError) as exc:
                    status, body = _error(400, f"Bad Request: {exc}")
        with self._cond:
            self._calls.append(Call(method, params, status, time.monotonic()))
        if delay:
            time.sleep(delay)
        if script is not None and script.lose_response:
            raise _Drop
        return status, body

    def _m_getme(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 200, {
            "ok": True,
            "result": {
                "id": self.bot_id,
                "is_bot": True,
                "first_name": "Sahel Watch (test)",
                "username": self.username,
                "can_join_groups": True,
                "can_read_all_group_messages": False,
                "supports_inline_queries": False,
            },
        }

    def _m_getupdates(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        offset = _int_param(params, "offset", 0) or 0
        limit = max(1, min(100, _int_param(params, "limit", 100) or 100))
        timeout = float(params.get("timeout") or 0)
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._webhook is not None:
                return _error(
                    409,
                    "Conflict: can't use getUpdates method while webhook is active; "
                    "use deleteWebhook to delete the webhook first",
                )
            while True:
                if offset:
                    self._updates = [u for u in self._updates if u["update_id"] >= offset]
                    self._cond.notify_all()
                left = deadline - time.monotonic()
                if self._updates or left <= 0 or self._stopping:
                    return 200, {"ok": True, "result": self._updates[:limit]}
                self._cond.wait(min(left, 0.5))

    def _m_sendmessage(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        chat_id = _int_param(params, "chat_id")
        if chat_id is None:
            return _error(400, "Bad Request: chat_id is empty")
        text = str(params.get("text") or "")
        parse_mode = params.get("parse_mode") or None
        thread_id = _int_param(params, "message_thread_id")
        if parse_mode is not None and str(parse_mode).lower() == "html":
            try:
                plain, links = parse(text)
            except HTMLParseError as exc:
                return _error(400, str(exc))
        else:
            plain, links = text, []
        if not plain.strip():
            return _error(400, "Bad Request: message text is empty")
        if utf16_len(plain) > MAX_TEXT:
            return _error(400, "Bad Request: message is too long")
        with self._cond:
            if chat_id in self._blocked:
                return _error(403, self._blocked[chat_id])
            if chat_id in self._migrated:
                return _error(
                    400,
                    "Bad Request: group chat was upgraded to a supergroup chat",
                    {"migrate_to_chat_id": self._migrated[chat_id]},
                )
            chat = self._chats.get(chat_id) or self._chat(chat_id)
            if thread_id and not chat.get("is_forum"):
                return _error(400, "Bad Request: message thread not found")
            now = time.monotonic()
            wait = self._rate_limit(chat_id, now)
            if wait > 0:
                self.rate_limited += 1
                retry = max(1, math.ceil(wait))
                return _error(
                    429, f"Too Many Requests: retry after {retry}", {"retry_after": retry}
                )
            message_id = self._take_message_id()
            self._sent.append(
                SentMessage(
                    message_id,
                    chat_id,
                    thread_id,
                    text,
                    plain,
                    parse_mode,
                    tuple((link.text, link.href) for link in links),
                    now,
                    params,
                )
            )
            self._cond.notify_all()
        result: dict[str, Any] = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": dict(chat),
            "text": plain,
            "from": {
                "id": self.bot_id,
                "is_bot": True,
                "first_name": "Sahel Watch (test)",
                "username": self.username,
            },
        }
        if thread_id:
            result.update(message_thread_id=thread_id, is_topic_message=True)
        return 200, {"ok": True, "result": result}

    def _m_setmycommands(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        commands = _json_param(params, "commands")
        if not isinstance(commands, list) or len(commands) > 100:
            return _error(400, "Bad Request: commands must be a list of at most 100 commands")
        for command in commands:
            name, about = command.get("command", ""), command.get("description", "")
            if not _COMMAND_NAME.fullmatch(name) or not 1 <= len(about) <= 256:
                return _error(400, "Bad Request: BOT_COMMAND_INVALID")
        with self._cond:
            self._commands = [
                {"command": c["command"], "description": c["description"]} for c in commands
            ]
        return 200, {"ok": True, "result": True}

    def _m_getmycommands(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 200, {"ok": True, "result": self.commands}

    def _m_deletemycommands(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._cond:
            self._commands = []
        return 200, {"ok": True, "result": True}

    def _m_setwebhook(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        url = str(params.get("url") or "")
        with self._cond:
            if not url:
                self._webhook = None
                return 200, {"ok": True, "result": True, "description": "Webhook was deleted"}
            self._webhook = (url, params.get("secret_token") or None)
            if self._updates:
                self._start_pusher()
        return 200, {"ok": True, "result": True, "description": "Webhook was set"}

    def _m_deletewebhook(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._cond:
            self._webhook = None
            if str(params.get("drop_pending_updates", "")).lower() == "true":
                self._updates.clear()
        return 200, {"ok": True, "result": True, "description": "Webhook is already deleted"}

    def _m_getwebhookinfo(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._cond:
            url = self._webhook[0] if self._webhook else ""
            pending = len(self._updates)
        return 200, {
            "ok": True,
            "result": {
                "url": url,
                "has_custom_certificate": False,
                "pending_update_count": pending,
            },
        }

    def _m_close(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 200, {"ok": True, "result": True}

    _m_logout = _m_close
    _m_sendchataction = _m_close
    _m_answercallbackquery = _m_close

    # -- webhook delivery -----------------------------------------------------------------
    def _start_pusher(self) -> None:
        if self._pusher is None or not self._pusher.is_alive():
            self._pusher = threading.Thread(
                target=self._push_webhook, name="bot-api-webhook", daemon=True
            )
            self._pusher.start()

    def _push_webhook(self) -> None:
        with httpx.Client(timeout=5) as client:
            while True:
                with self._cond:
                    if self._stopping or self._webhook is None or not self._updates:
                        return
                    update, (url, secret) = self._updates[0], self._webhook
                headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret else {}
                try:
                    ok = client.post(url, json=update, headers=headers).status_code == 200
                except httpx.HTTPError:
                    ok = False
                with self._cond:
                    if ok and self._updates and self._updates[0] is update:
                        self._updates.pop(0)
                        self._cond.notify_all()
                if not ok:
                    time.sleep(0.2)

    def with_limits(self, **changes: Any) -> Limits:
        """The current limits with some fields changed (for set_limits)."""
        return replace(self._limits, **changes)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_api: BotApiServer

    def setup(self) -> None:
        super().setup()
        # headers and body are two writes: without this, Nagle + delayed ACK cost 40 ms each
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server_api._sockets.add(self.connection)

    def finish(self) -> None:
        self.server_api._sockets.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        match = _PATH.fullmatch(parts.path)
        if match is None:
            self._answer(404, {"ok": False, "error_code": 404, "description": "Not Found"})
            return
        try:
            params = _decode_params(self.headers.get("Content-Type", ""), body, parts.query)
            status, payload = self.server_api.handle(match.group(1), match.group(2), params)
        except _Drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        except (ValueError, UnicodeDecodeError) as exc:
            status, payload = _error(400, f"Bad Request: {exc}")
        self._answer(status, payload)

    def _answer(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True
