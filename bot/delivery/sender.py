"""Sending one message, with python-telegram-bot's errors translated into plain outcomes.

    Sent(message_id)        delivered
    RetryLater(seconds)     429 flood control: wait, do not count an attempt
    Moved(new_chat_id)      the group became a supergroup: update the chat, resend
    Gone(reason)            403 blocked / deactivated / kicked, chat or topic not found
    Rejected(reason)        400 for this message: record, do not retry
    Unconfirmed(reason)     no answer in time: Telegram may have delivered it (retried at
                            most once, see bot/delivery/worker.py)
    Transient(reason)       network error before delivery: retry with backoff

`TelegramSender` paces each chat to one message per `chat_interval` seconds (the rate
limiter has no per-private-chat limit), then takes the message's slot of the overall and
the chat's rate that every replica shares through the database (`SharedRate`,
bot/delivery/ratelimit.py).
After a 429 it closes the `FloodGate` for the time Telegram asked, and the shared rate for
every replica: `GatedRequest`, the bot's HTTP layer, holds every request at the gate, just
before the wire, so the sends already queued in the rate limiter do not all go out into the
flood wait. `ConsoleSender` (bot/delivery/console.py) prints the text instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

import httpx
from telegram import Bot, InlineKeyboardMarkup, LinkPreviewOptions, ReplyParameters
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import BaseRequest, HTTPXRequest, RequestData
from telegram.warnings import PTBDeprecationWarning

from bot.pacing import KeyedGate
from bot.storage.errors import StorageError
from bot.telegram.render import html_to_text

if TYPE_CHECKING:
    from bot.delivery.ratelimit import SharedRate


@dataclass(frozen=True, slots=True)
class Sent:
    message_id: int
    unchanged: bool = False  # an edit Telegram found the message already showed


@dataclass(frozen=True, slots=True)
class RetryLater:
    seconds: float
    reason: str


@dataclass(frozen=True, slots=True)
class Moved:
    new_chat_id: int


@dataclass(frozen=True, slots=True)
class Gone:
    reason: str


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str


@dataclass(frozen=True, slots=True)
class Unconfirmed:
    reason: str


@dataclass(frozen=True, slots=True)
class Transient:
    reason: str


Outcome = Sent | RetryLater | Moved | Gone | Rejected | Unconfirmed | Transient

SMALL_PREVIEW = LinkPreviewOptions(prefer_small_media=True)
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)

# BadRequest descriptions meaning the chat (or topic) cannot receive anything from us.
_GONE_HINTS = (
    "chat not found",
    "thread not found",
    "bot was kicked",
    "have no rights to send",
    "not enough rights to send",
    "chat_write_forbidden",
    "user is deactivated",
)


class Sender(Protocol):
    async def send(
        self,
        chat_id: int,
        thread_id: int,
        text: str,
        *,
        reply_to: int | None = None,
        buttons: InlineKeyboardMarkup | None = None,
        silent: bool = False,
        previews: bool = True,
    ) -> Outcome: ...

    async def edit(
        self,
        chat_id: int,
        message_id: int,
        text: str,
        *,
        buttons: InlineKeyboardMarkup | None = None,
        previews: bool = True,
    ) -> Outcome: ...


def retry_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class FloodGate:
    """Closed while Telegram's flood control asks every request to wait."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until = 0.0

    def close_for(self, seconds: float) -> None:
        self._until = max(self._until, self._clock() + seconds)

    @property
    def closed_for(self) -> float:
        return max(0.0, self._until - self._clock())

    async def wait(self) -> None:
        """Return once the gate is open (it may close again while we sleep)."""
        for _ in range(100):
            left = self.closed_for
            if left <= 0:
                return
            await asyncio.sleep(left)


class GatedRequest(HTTPXRequest):
    """PTB's HTTP layer, holding each request at the flood gate (after the rate limiter)."""

    def __init__(self, gate: FloodGate, **options: Any) -> None:
        super().__init__(**options)
        self.gate = gate

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        await self.gate.wait()
        return await super().do_request(
            url, method, request_data, read_timeout, write_timeout, connect_timeout, pool_timeout
        )


class ChatPacer:
    """At most one send per `interval` seconds to any one chat (in this process)."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._locks: KeyedGate[int] = KeyedGate()  # one send at a time per chat
        self._next: dict[int, float] = {}

    @asynccontextmanager
    async def turn(self, chat_id: int) -> AsyncIterator[None]:
        try:
            async with self._locks.hold(chat_id):
                wait = self._next.get(chat_id, 0.0) - self._clock()
                if wait > 0:
                    await asyncio.sleep(wait)
                try:
                    yield
                finally:
                    self._next[chat_id] = self._clock() + self.interval
        finally:
            if len(self._next) > 10_000:
                now = self._clock()
                self._next = {c: t for c, t in self._next.items() if t > now}


class TelegramSender:
    """Sends through a PTB `Bot` (give it an AIORateLimiter for the overall and group limits)."""

    def __init__(
        self,
        bot: Bot,
        *,
        gate: FloodGate,
        chat_interval: float = 1.0,
        shared: SharedRate | None = None,
    ) -> None:
        self._bot = bot
        self._gate = gate
        self._pacer = ChatPacer(chat_interval)
        self._shared = shared

    async def send(
        self,
        chat_id: int,
        thread_id: int,
        text: str,
        *,
        reply_to: int | None = None,
        buttons: InlineKeyboardMarkup | None = None,
        silent: bool = False,
        previews: bool = True,
    ) -> Outcome:
        """Send `text`; `reply_to` threads it under an earlier message of the chat (sent
        alone if that message is gone), `buttons` go under it; `silent` without a
        notification sound, `previews` False without a link preview (the chat's choices)."""
        extra: dict[str, Any] = {"reply_markup": buttons}
        if silent:
            extra["disable_notification"] = True
        if not previews:
            extra["link_preview_options"] = NO_PREVIEW
        if reply_to is not None:
            extra["reply_parameters"] = ReplyParameters(reply_to, allow_sending_without_reply=True)
        async with self._pacer.turn(chat_id):
            return await self._attempt(chat_id, thread_id, text, ParseMode.HTML, extra)

    async def edit(
        self,
        chat_id: int,
        message_id: int,
        text: str,
        *,
        buttons: InlineKeyboardMarkup | None = None,
        previews: bool = True,
    ) -> Outcome:
        """Edit a sent message's text (an edit counts against the same limits as a send),
        keeping the chat's link preview choice. A message that would not change counts as
        done: `Sent(message_id, unchanged=True)`."""
        extra: dict[str, Any] = {"reply_markup": buttons}
        extra["link_preview_options"] = SMALL_PREVIEW if previews else NO_PREVIEW
        async with self._pacer.turn(chat_id):
            return await self._attempt(chat_id, 0, text, ParseMode.HTML, extra, edit=message_id)

    async def _call(
        self, chat_id: int, thread_id: int, text: str, mode: str | None, extra: dict[str, Any],
        edit: int | None,
    ) -> int:  # fmt: skip
        if edit is not None:
            edited = await self._bot.edit_message_text(
                text=text, chat_id=chat_id, message_id=edit, parse_mode=mode, **extra
            )
            return edit if isinstance(edited, bool) else edited.message_id
        message = await self._bot.send_message(
            chat_id=chat_id,
            text=text,
            parse_mode=mode,
            message_thread_id=thread_id or None,
            **{"link_preview_options": SMALL_PREVIEW, **extra},
        )
        return message.message_id

    async def _attempt(
        self,
        chat_id: int,
        thread_id: int,
        text: str,
        mode: str | None,
        extra: dict[str, Any] | None = None,
        *,
        edit: int | None = None,
    ) -> Outcome:
        if self._shared is not None:
            try:
                await self._shared.take(chat_id)
            except StorageError as exc:  # no slot, no send: the limit is shared or nothing
                return Transient(
                    f"not sent: the shared send rate is unavailable ({type(exc).__name__})"
                )
        try:
            message_id = await self._call(chat_id, thread_id, text, mode, extra or {}, edit)
        except RetryAfter as exc:
            seconds = retry_seconds(exc)
            self._gate.close_for(seconds)
            if self._shared is not None:  # every replica waits it out (if the database can
                with contextlib.suppress(StorageError):  # not say so: their own 429s will)
                    await self._shared.pause(seconds)
            return RetryLater(seconds, f"flood control: retry after {seconds:g} s")
        except ChatMigrated as exc:
            return Moved(exc.new_chat_id)
        except Forbidden as exc:
            return Gone(exc.message)
        except BadRequest as exc:
            reason = exc.message
            if edit is not None and "message is not modified" in reason.lower():
                return Sent(edit, unchanged=True)  # an edit repeated after a crash
            if mode is not None and "can't parse entities" in reason.lower():
                # our renderer escapes everything, but never lose an alert over markup
                plain = html_to_text(text)
                return await self._attempt(chat_id, thread_id, plain, None, extra, edit=edit)
            if any(hint in reason.lower() for hint in _GONE_HINTS):
                return Gone(reason)
            return Rejected(reason)
        except TimedOut as exc:
            if isinstance(exc.__cause__, httpx.ConnectTimeout | httpx.PoolTimeout):
                return Transient(f"not sent: {exc.message}")  # never reached Telegram
            return Unconfirmed(f"no answer in time ({exc.message}); it may have been delivered")
        except InvalidToken:
            return Transient("the bot token was rejected")
        except (NetworkError, TelegramError) as exc:
            return Transient(f"{type(exc).__name__}: {exc.message}")
        return Sent(message_id)
