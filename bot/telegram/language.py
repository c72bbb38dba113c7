"""/language (/langue): a chat chooses English or French, by argument or with buttons.

The choice is stored (bot/storage/languages.py) and from then on wins over the language of
the members' Telegram apps; the chat's own command menu follows it (`setMyCommands` for the
chat's scope). In groups and channels only administrators choose (the gate in
bot/telegram/settings.py runs first).
"""

from __future__ import annotations

import asyncio
import logging

from telegram import (
    BotCommand,
    BotCommandScopeChat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import TelegramError

from bot.i18n import LANGUAGE_NAMES, LANGUAGES, Voice
from bot.storage import languages
from bot.telegram import replies
from bot.telegram.commands import Context, answer, deps, voice, where

log = logging.getLogger(__name__)

LANGUAGE_CALLBACK = "lang:"  # callback data of the /language keyboard: "lang:fr"


def language_keyboard() -> InlineKeyboardMarkup:
    """One button per language, each named in its own language."""
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(LANGUAGE_NAMES[code], callback_data=LANGUAGE_CALLBACK + code)
                for code in LANGUAGES
            ]
        ]
    )


def parse_language(word: str) -> str | None:
    """'en', 'fr', 'English', 'français', 'francais' → the code; else None."""
    folded = word.strip().casefold().replace("ç", "c")
    for code, name in LANGUAGE_NAMES.items():
        if folded in (code, name.casefold().replace("ç", "c")):
            return code
    return {"anglais": "en", "french": "fr"}.get(folded)


async def language(update: Update, context: Context) -> None:
    """Choose the chat's language: /language fr, or a keyboard with the languages."""
    d, chat, v = deps(context), where(update), await voice(update, context)
    if chat is None:
        return
    args = list(context.args or [])
    if not args:
        await answer(update, context, replies.language_menu(v=v), keyboard=language_keyboard())
        return
    code = parse_language(" ".join(args)) if len(args) == 1 else None
    if code is None:
        await answer(update, context, replies.language_usage(" ".join(args), v=v))
        return
    await asyncio.to_thread(languages.choose, d.engine, chat, code)
    await answer(update, context, replies.language_set(Voice(code, v.timezone)))
    await chat_menu(context, chat.chat_id, code)


async def language_button(update: Update, context: Context) -> None:
    """A button of the /language keyboard: choose, and say so in the message itself."""
    query, chat = update.callback_query, where(update)
    if query is None or chat is None or not query.data:
        return
    code = query.data.removeprefix(LANGUAGE_CALLBACK)
    if code not in LANGUAGES:
        await query.answer()
        return
    d = deps(context)
    now = await voice(update, context)
    await asyncio.to_thread(languages.choose, d.engine, chat, code)
    chosen = Voice(code, now.timezone)
    await query.answer(LANGUAGE_NAMES[code])
    await query.edit_message_text(replies.language_set(chosen), parse_mode=ParseMode.HTML)
    await chat_menu(context, chat.chat_id, code)


async def chat_menu(context: Context, chat_id: int, language: str) -> None:
    """The command menu of this chat in its chosen language, whatever its members' apps
    say (`setMyCommands` for the chat's scope). A failure leaves the language menus."""
    menu = [BotCommand(name, about) for name, about in replies.menu(language)]
    try:
        await context.bot.set_my_commands(menu, scope=BotCommandScopeChat(chat_id))
    except TelegramError:
        log.warning("could not set the command menu of chat %s", chat_id, exc_info=True)
