"""The console sender: alerts printed to a stream (no Telegram token configured).

One more `Sender` (bot/delivery/sender.py), with the Telegram sender's interface.
"""

from __future__ import annotations

from typing import TextIO

from telegram import InlineKeyboardMarkup

from bot.delivery.sender import Outcome, Sent
from bot.telegram.render import html_to_text


class ConsoleSender:
    """Prints each alert's text (links spelled out) instead of sending it."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._count = 0

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
        self._count += 1
        rule = "─" * 60
        print(f"{rule}\n{html_to_text(text)}\n{rule}", file=self._stream, flush=True)
        return Sent(self._count)

    async def edit(
        self,
        chat_id: int,
        message_id: int,
        text: str,
        *,
        buttons: InlineKeyboardMarkup | None = None,
        previews: bool = True,
    ) -> Outcome:
        return Sent(message_id)  # the console shows alerts once; coverage edits are not printed
