"""The buttons under an alert (bot/telegram/explain.py draws them), as one callback handler:

    All coverage   the story's reports, both languages, with outlets and times, as a reply
                   to the alert
    Mute this story  no follow-up of it, and no coverage edit of its alert, reaches the chat
                   (in a group or channel, only its administrators may: bot/telegram/admins.py);
                   the button then reads "Unmute this story", which undoes it (same rule)
    Not news?      asks why (not relevant / already known), as a reply to the alert; the
                   answer is stored as feedback with the story's first item and the chat
                   (`python -m bot feedback export` makes evaluation data of it)

Callback data is untrusted: `explain.parse` reads only its own grammar, and a story that
does not exist is answered with a short notice, never an error.
"""

from __future__ import annotations

import asyncio
import logging

from telegram import InlineKeyboardMarkup, ReplyParameters, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest

from bot.i18n import Voice
from bot.storage import alerts
from bot.telegram import admins, explain
from bot.telegram.commands import NO_PREVIEW, REPLY_RETRIES, Context, deps, voice, where

log = logging.getLogger(__name__)

PATTERN = r"^a:"


async def alert_button(update: Update, context: Context) -> None:
    """A button under an alert was pressed."""
    query, chat = update.callback_query, where(update)
    if query is None or chat is None:
        return
    press = explain.parse(query.data)
    if press is None:
        await query.answer()
        return
    engine = deps(context).engine
    v = await voice(update, context)
    alert = query.message.message_id if query.message is not None else None
    if press.action in ("mute", "unmute"):
        if not await admins.can_manage(update, context):  # a group's alerts: its admins'
            await query.answer(admins.refusal(v), show_alert=True)
            return
        await _mute(update, context, press.action == "mute", press.story_id, v)
        return
    if press.action == "fb" and press.verdict is not None:
        stored = await asyncio.to_thread(
            alerts.record_feedback, engine, chat.chat_id, press.story_id, press.verdict
        )
        if not stored:
            await query.answer(v.gettext("This story is no longer stored."))
            return
        await query.answer(v.gettext("Thank you."))
        await query.edit_message_text(
            explain.feedback_thanks(press.verdict, v), parse_mode=ParseMode.HTML
        )
        return
    if press.action == "fb":
        text, buttons = explain.feedback_question(press.story_id, v)
        await query.answer()
        await _reply(context, chat.chat_id, chat.thread_id, alert, [text], buttons)
        return
    items = await asyncio.to_thread(alerts.coverage, engine, press.story_id)
    await query.answer()
    await _reply(context, chat.chat_id, chat.thread_id, alert, explain.render_coverage(items, v))


async def _mute(update: Update, context: Context, mute: bool, story_id: int, v: Voice) -> None:
    """Mute or unmute the story for the chat, and turn the alert's button to the other."""
    query, chat = update.callback_query, where(update)
    if query is None or chat is None:
        return
    change = alerts.mute if mute else alerts.unmute
    changed = await asyncio.to_thread(
        change, deps(context).engine, chat.chat_id, chat.thread_id, story_id
    )
    if mute:
        note = (
            v.gettext("Muted: no follow-ups or updates of this story will reach this chat.")
            if changed
            else v.gettext("This story is already muted here.")
        )
    else:
        note = (
            v.gettext("Unmuted: follow-ups and updates of this story will reach this chat again.")
            if changed
            else v.gettext("This story is not muted here.")
        )
    await query.answer(note)
    if query.message is None:
        return
    try:  # an old keyboard pressed again: the new one is already there ("not modified")
        await context.bot.edit_message_reply_markup(
            chat.chat_id,
            query.message.message_id,
            reply_markup=explain.keyboard(story_id, v, muted=mute),
            rate_limit_args=REPLY_RETRIES,
        )
    except BadRequest as exc:  # the choice is stored; only the button stays as it was
        if "not modified" not in exc.message:
            log.info("alert buttons of %s not turned: %s", chat.chat_id, exc.message)


async def _reply(
    context: Context,
    chat_id: int,
    thread_id: int,
    alert: int | None,
    texts: list[str],
    buttons: InlineKeyboardMarkup | None = None,
) -> None:
    """Send `texts` in the chat (topic), the first as a reply to the alert."""
    for number, text in enumerate(texts, start=1):
        await context.bot.send_message(
            chat_id,
            text,
            parse_mode=ParseMode.HTML,
            message_thread_id=thread_id or None,
            link_preview_options=NO_PREVIEW,
            reply_parameters=(
                ReplyParameters(alert, allow_sending_without_reply=True)
                if alert is not None and number == 1
                else None
            ),
            reply_markup=buttons if number == len(texts) else None,
            rate_limit_args=REPLY_RETRIES,
        )
