"""/settings and /timezone, and the gate that keeps changes to a group or channel to its
administrators.

/settings answers with the chat's settings and a keyboard (bot/telegram/settings_menu.py);
each press stores what the button says on the chat's Subscriber row
(bot/storage/chat_settings.py; the language as /language stores it, with the chat's command
menu) and edits that same message to show the result, in the chat's language. /timezone
Area/City takes any IANA zone zoneinfo knows; alone, it shows the zone keyboard.

The gate (`register`, handler group -1, which runs before the commands) stops a member who
is not an administrator (bot/telegram/admins.py) from changing a group or a channel: the
commands that change a chat (/start, /subscribe, /unsubscribe, /settings, /timezone,
/language, with their French names) get a short explanation instead, a settings or
language button an alert; nothing else runs for that update. Channels send commands as
channel posts (only administrators can post): /start, /subscribe, /unsubscribe, /settings
and /timezone answer those too, so a channel is subscribed by its administrators. Whoever
adds the bot to a channel is told, in a private message if they have started the bot, how
to subscribe the channel (or that the bot needs the right to post first).
"""

from __future__ import annotations

import asyncio
import html
import logging
from typing import Any

from telegram import ChatMember, InlineKeyboardMarkup, Message, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    BaseHandler,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    filters,
)

from bot.decide.textcut import shorten
from bot.i18n import Voice
from bot.storage import chat_settings, languages
from bot.storage.models import utcnow
from bot.storage.subscribers import Chat
from bot.telegram import admins, commands, language, replies, settings_menu
from bot.telegram.commands import NO_PREVIEW, REPLY_RETRIES, Context

log = logging.getLogger(__name__)

GATE_GROUP = -1
AFTER_GROUP = 1  # after bot/telegram/commands.py's own my_chat_member handler
CHANGING = ("start", "subscribe", "unsubscribe", "settings", "timezone", "language")
BUTTONS = r"^(set|lang):"  # the settings keyboard's and /language's callback data

AnyApplication = Application[Any, Any, Any, Any, Any, Any]


def names(name: str) -> list[str]:
    """Every name a command answers to (its French one too, once it is in the menu)."""
    try:
        return list(replies.command(name).names)
    except KeyError:
        return [name]


async def gate(update: Update, context: Context) -> None:
    """A change to a group or channel by someone who is not its administrator: explain, and
    stop here (the command or button handlers never see it)."""
    if await admins.can_manage(update, context):
        return
    query = update.callback_query
    if query is not None:
        await query.answer(admins.refusal(Voice(commands.language_code(update) or "en")),
                           show_alert=True)  # fmt: skip
    else:
        await commands.answer(
            update, context, admins.refusal(await commands.voice(update, context))
        )
    raise ApplicationHandlerStop


async def settings_command(update: Update, context: Context) -> None:
    """This chat's settings, with the keyboard that changes them."""
    chat = commands.where(update)
    if chat is None:
        return
    v = await commands.voice(update, context)
    view = await asyncio.to_thread(chat_settings.read, commands.deps(context).engine, chat)
    await commands.answer(
        update,
        context,
        settings_menu.page_text(view, "m", v, now=utcnow()),
        keyboard=settings_menu.keyboard(view, "m", v),
    )


async def timezone_command(update: Update, context: Context) -> None:
    """/timezone Area/City: the chat's time zone (any IANA zone); alone: a keyboard of zones."""
    chat = commands.where(update)
    if chat is None:
        return
    engine = commands.deps(context).engine
    v = await commands.voice(update, context)
    wanted = " ".join(context.args or [])
    if not wanted:
        view = await asyncio.to_thread(chat_settings.read, engine, chat)
        await commands.answer(
            update,
            context,
            settings_menu.page_text(view, "z", v, now=utcnow()),
            keyboard=settings_menu.keyboard(view, "z", v),
        )
        return
    zone = settings_menu.canonical_zone(wanted)
    if zone is None:
        text = v.gettext(
            "I don't know the time zone “%(zone)s”. Write it as Area/City, for example "
            "/timezone Africa/Bamako, or UTC."
        ) % {"zone": html.escape(shorten(wanted, settings_menu.MAX_ZONE))}
        await commands.answer(update, context, text)
        return
    await asyncio.to_thread(chat_settings.change, engine, chat, timezone=zone)
    text = v.gettext("Time zone: %(zone)s. It is %(time)s there now.") % {
        "zone": html.escape(zone),
        "time": settings_menu.local_time(zone, utcnow()),
    }
    await commands.answer(update, context, text)


def _pressed(update: Update) -> tuple[Chat, Message] | None:
    """The chat (and forum topic) of the message whose button was pressed, if still there."""
    query = update.callback_query
    message = query.message if query is not None else None
    if not isinstance(message, Message):
        return None  # inaccessible: too old, or deleted
    thread = (
        message.message_thread_id if message.is_topic_message and message.message_thread_id else 0
    )
    return Chat(message.chat.id, thread, message.chat.type), message


async def settings_button(update: Update, context: Context) -> None:
    """A press on the settings keyboard: store what it says, then edit the message to show it."""
    query = update.callback_query
    if query is None:
        return
    found = _pressed(update)
    if found is None:
        v = Voice(commands.language_code(update) or "en")
        await query.answer(v.gettext("This message is too old: send /settings again."))
        return
    chat, message = found
    engine = commands.deps(context).engine
    v = await commands.voice(update, context)
    view = await asyncio.to_thread(chat_settings.read, engine, chat)
    step = settings_menu.step_for(query.data or "", view)
    if step is None:
        await query.answer(v.gettext("This button is no longer valid: send /settings again."))
        return
    changes = dict(step.changes)
    chosen = changes.pop("language", None)
    if chosen is not None:  # as /language does: stored, the reply and the menu in it
        await asyncio.to_thread(languages.choose, engine, chat, chosen)
        await language.chat_menu(context, chat.chat_id, chosen)
        v = Voice(chosen, v.timezone)
        view = await asyncio.to_thread(chat_settings.read, engine, chat)
    if changes:
        view = await asyncio.to_thread(chat_settings.change, engine, chat, **changes)
    markup: InlineKeyboardMarkup | None = None
    if step.page == "x":
        text = settings_menu.summary(view, v, now=utcnow())
    else:
        text = settings_menu.page_text(view, step.page, v, now=utcnow())
        markup = settings_menu.keyboard(view, step.page, v)
    try:
        await context.bot.edit_message_text(
            text,
            chat_id=chat.chat_id,
            message_id=message.message_id,
            parse_mode=ParseMode.HTML,
            reply_markup=markup,
            link_preview_options=NO_PREVIEW,
            rate_limit_args=REPLY_RETRIES,
        )
    except BadRequest as exc:
        if "not modified" not in exc.message:
            await query.answer()
            raise
    await query.answer(v.gettext(step.note) if step.note else None)


async def added_to_channel(update: Update, context: Context) -> None:
    """The bot was added to a channel (or its rights there changed): tell whoever did it how
    to subscribe the channel, privately; a user who never started the bot cannot be told."""
    change = update.my_chat_member
    if change is None or change.chat.type != "channel" or change.from_user is None:
        return
    new = change.new_chat_member
    if new.status not in (ChatMember.ADMINISTRATOR, ChatMember.MEMBER):
        return
    v = Voice(change.from_user.language_code or "en")
    title = html.escape(shorten(change.chat.title or str(change.chat.id), 80))
    if new.status == ChatMember.ADMINISTRATOR and getattr(new, "can_post_messages", False):
        text = v.gettext(
            "I was added to the channel “%(title)s”. To receive alerts there, post /subscribe "
            "in the channel; /settings posted there shows its settings."
        )
    else:
        text = v.gettext(
            "I was added to the channel “%(title)s” but cannot post there: make me an "
            "administrator allowed to post messages, then post /subscribe in the channel."
        )
    try:
        await context.bot.send_message(
            change.from_user.id,
            text % {"title": title},
            parse_mode=ParseMode.HTML,
            link_preview_options=NO_PREVIEW,
            rate_limit_args=REPLY_RETRIES,
        )
    except (Forbidden, BadRequest) as exc:
        log.info("could not tell user %s about channel %s: %s", change.from_user.id,
                 change.chat.id, exc.message)  # fmt: skip


def handlers() -> list[tuple[BaseHandler[Update, Any, Any], int]]:
    """(handler, group) pairs, in the order they are added."""
    shared = filters.ChatType.GROUPS | filters.ChatType.CHANNEL
    posts = filters.UpdateType.MESSAGES | filters.UpdateType.CHANNEL_POST
    changing = [n for name in CHANGING for n in names(name)]
    found: list[tuple[BaseHandler[Update, Any, Any], int]] = [
        (CommandHandler(changing, gate, filters=posts & shared), GATE_GROUP),
        (CallbackQueryHandler(gate, pattern=BUTTONS), GATE_GROUP),
        (CommandHandler(names("settings"), settings_command, filters=posts), 0),
        (CommandHandler(names("timezone"), timezone_command, filters=posts), 0),
        (CallbackQueryHandler(settings_button, pattern=r"^set:"), 0),
    ]
    for name, handler in (
        ("start", commands.start),
        ("subscribe", commands.subscribe),
        ("unsubscribe", commands.unsubscribe),
    ):
        found.append(
            (CommandHandler(names(name), handler, filters=filters.UpdateType.CHANNEL_POST), 0)
        )
    found.append(
        (ChatMemberHandler(added_to_channel, ChatMemberHandler.MY_CHAT_MEMBER), AFTER_GROUP)
    )
    return found


def register(application: AnyApplication) -> None:
    """Add the gate, /settings, /timezone, the keyboard and channels' commands (call before
    the handler of unknown commands)."""
    for handler, group in handlers():
        application.add_handler(handler, group=group)
