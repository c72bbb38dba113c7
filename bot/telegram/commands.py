"""Chat commands: one plain `async def verb(update, context)` each, wired in `bot.telegram.app`.

Database work runs in a thread (`asyncio.to_thread`); answers come from `replies` (pure),
in the chat's language and time zone (`voice`: bot/storage/languages.py). A command in a
forum topic acts on that topic: its subscription delivers there. Anything unknown, or a
wrong argument, gets a short helpful answer, never silence or a trace.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine
from telegram import (
    ChatMember,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Update,
)
from telegram.constants import ParseMode
from telegram.ext import CallbackContext, ExtBot

from bot.feeds import catalog
from bot.feeds.fetch import Fetcher, make_client
from bot.feeds.guard import AddressPolicy, is_public_address
from bot.i18n import Voice
from bot.records import FeedSpec
from bot.settings import Settings
from bot.storage import languages, stories, subscribers
from bot.storage import stats as stored  # `stats` is the /stats handler here
from bot.storage.models import utcnow
from bot.storage.subscribers import Chat
from bot.telegram import admin_replies, replies
from bot.telegram.render import render_latest

log = logging.getLogger(__name__)

DEPS = "sahel_watch"

# the bot has an AIORateLimiter, whose per-call argument is the number of 429 retries
Context = CallbackContext[ExtBot[int], dict[Any, Any], dict[Any, Any], dict[Any, Any]]
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
REPLY_RETRIES = 3


@dataclass(frozen=True)
class BotDeps:
    """What the handlers need, kept in `application.bot_data[DEPS]`."""

    settings: Settings
    engine: Engine
    seeds: tuple[str, ...]  # one line per seed story
    # what counts as public for /addfeed (tests stand loopback addresses in for public ones)
    address_policy: AddressPolicy = is_public_address

    def config(self) -> list[FeedSpec]:
        return self.settings.feed_specs()

    async def feed_specs(self) -> list[FeedSpec]:
        """The feeds polled: the config's and those added from chats or the command line."""
        listed = await asyncio.to_thread(catalog.list_feeds, self.engine, self.config())
        return [feed.spec for feed in listed]


def deps(context: Context) -> BotDeps:
    found = context.bot_data.get(DEPS)
    if not isinstance(found, BotDeps):
        raise RuntimeError("the application was built without BotDeps")
    return found


def where(update: Update) -> Chat | None:
    """The chat and forum topic a command came from."""
    message, chat = update.effective_message, update.effective_chat
    if message is None or chat is None:
        return None
    thread = (
        message.message_thread_id if message.is_topic_message and message.message_thread_id else 0
    )
    return Chat(chat.id, thread, chat.type)


def language_code(update: Update) -> str | None:
    """What the writer's Telegram app says about their language ("fr", "en-GB", None)."""
    user = update.effective_user
    return user.language_code if user is not None else None


async def voice(update: Update, context: Context, *, adopt: bool = False) -> Voice:
    """How to speak to the chat this update came from: its language and time zone."""
    chat = where(update)
    if chat is None:
        return Voice(language_code(update) or "en")
    said = await asyncio.to_thread(
        languages.speech, deps(context).engine, chat, language_code(update), adopt=adopt
    )
    return Voice(said.language, said.timezone)


async def answer(
    update: Update,
    context: Context,
    texts: str | Sequence[str],
    *,
    keyboard: InlineKeyboardMarkup | None = None,
) -> None:
    """Reply in the same chat and topic, in HTML, one message per text (`keyboard` under
    the last).

    A 429 on a reply is waited out and retried by the rate limiter (`rate_limit_args`):
    a person who types commands quickly still gets every answer.
    """
    message, chat = update.effective_message, where(update)
    if message is None or chat is None:
        return
    listed = [texts] if isinstance(texts, str) else list(texts)
    for number, text in enumerate(listed, start=1):
        await context.bot.send_message(
            chat.chat_id,
            text,
            parse_mode=ParseMode.HTML,
            message_thread_id=chat.thread_id or None,
            link_preview_options=NO_PREVIEW,
            reply_markup=keyboard if number == len(listed) else None,
            rate_limit_args=REPLY_RETRIES,
        )


def is_admin(update: Update, settings: Settings) -> bool:
    ids = set(settings.admin_chat_ids)
    user, chat = update.effective_user, update.effective_chat
    return bool((user is not None and user.id in ids) or (chat is not None and chat.id in ids))


async def start(update: Update, context: Context) -> None:
    """Welcome, say what the bot watches, and subscribe this chat."""
    d, chat = deps(context), where(update)
    if chat is None:
        return
    newly = await asyncio.to_thread(subscribers.subscribe, d.engine, chat)
    v = await voice(update, context, adopt=newly)
    await answer(
        update, context, replies.welcome(d.seeds, newly=newly, feeds=len(d.settings.feeds), v=v)
    )


async def subscribe(update: Update, context: Context) -> None:
    """Receive alerts in this chat (or forum topic)."""
    d, chat = deps(context), where(update)
    if chat is None:
        return
    newly = await asyncio.to_thread(subscribers.subscribe, d.engine, chat)
    v = await voice(update, context, adopt=newly)
    await answer(update, context, replies.subscribed(newly=newly, v=v))


async def unsubscribe(update: Update, context: Context) -> None:
    """Stop alerts in this chat (or forum topic); /stop does the same."""
    d, chat = deps(context), where(update)
    if chat is None:
        return
    was = await asyncio.to_thread(subscribers.unsubscribe, d.engine, chat.chat_id, chat.thread_id)
    await answer(update, context, replies.unsubscribed(was=was, v=await voice(update, context)))


def parse_count(args: Sequence[str]) -> int | None:
    """/latest's argument: nothing → the default, else a whole number from 1 up (more than
    `LATEST_MAX` counts as the maximum: `capped`), else None. No leading zeros.

    The length is checked before `int()`, which refuses more than 4,300 digits (and
    would spend time on fewer): "/latest 999…" is simply more than the maximum.
    """
    if not args:
        return replies.LATEST_DEFAULT
    word = args[0]
    if len(args) > 1 or not word.isascii() or not word.isdecimal() or word.startswith("0"):
        return None
    if len(word) > len(str(replies.LATEST_MAX)):
        return replies.LATEST_MAX + 1
    return int(word)


async def latest(update: Update, context: Context) -> None:
    """The most recent developments, newest first (at most LATEST_MAX, and says so)."""
    d, v = deps(context), await voice(update, context)
    args = list(context.args or [])
    count = parse_count(args)
    if count is None:
        await answer(update, context, replies.latest_usage(" ".join(args), v=v))
        return
    note = replies.latest_capped(args[0], v=v) if count > replies.LATEST_MAX else ""
    count = min(count, replies.LATEST_MAX)
    found = await asyncio.to_thread(stories.latest, d.engine, count)
    if not found:
        await answer(update, context, replies.no_stories(v=v))
        return
    await answer(update, context, render_latest(found, v=v, now=utcnow(), note=note))


async def status(update: Update, context: Context) -> None:
    """This chat's subscription, the last poll, feed health and the last 24 hours."""
    d, chat = deps(context), where(update)
    if chat is None:
        return
    view = await asyncio.to_thread(
        stored.status_view,
        d.engine,
        await d.feed_specs(),
        chat_id=chat.chat_id,
        thread_id=chat.thread_id,
    )
    await answer(
        update, context, replies.status(view, now=utcnow(), v=await voice(update, context))
    )


async def help_command(update: Update, context: Context) -> None:
    """Every command, in one message."""
    admin = is_admin(update, deps(context).settings)
    await answer(update, context, replies.help_text(admin=admin, v=await voice(update, context)))


async def sources(update: Update, context: Context) -> None:
    """The feeds watched, with their health: outlets' hosts, full addresses for admins."""
    d = deps(context)
    feeds = await asyncio.to_thread(stored.feed_health, d.engine, await d.feed_specs())
    admin = is_admin(update, d.settings)
    await answer(
        update, context, replies.sources(feeds, admin=admin, v=await voice(update, context))
    )


async def stats(update: Update, context: Context) -> None:
    """Subscribers, stories, deliveries by state and feed health: admins only."""
    d, v = deps(context), await voice(update, context)
    if not is_admin(update, d.settings):
        await answer(update, context, replies.not_admin("/stats", v=v))
        return
    view = await asyncio.to_thread(stored.stats_view, d.engine, await d.feed_specs())
    await answer(update, context, admin_replies.stats(view, now=utcnow(), v=v))


def feed_request(args: Sequence[str]) -> tuple[str, str, str]:
    """/addfeed URL [name] [language]: the URL, the name (may hold spaces), the language."""
    url, rest = (args[0], list(args[1:])) if args else ("", [])
    language = rest.pop().lower() if rest and rest[-1].lower() in catalog.LANGUAGES else ""
    return url, " ".join(rest), language


def added_by(update: Update) -> str:
    user, chat = update.effective_user, update.effective_chat
    who = f"Telegram user {user.id}" if user is not None else "Telegram"
    return who + (f" in chat {chat.id}" if chat is not None else "")


async def addfeed(update: Update, context: Context) -> None:
    """Admins: fetch a feed once and, if it reads as a feed, poll it from now on."""
    d, v = deps(context), await voice(update, context)
    if not is_admin(update, d.settings):
        await answer(update, context, replies.not_admin("/addfeed", v=v))
        return
    url, name, language = feed_request(list(context.args or []))
    if not url:
        await answer(update, context, admin_replies.addfeed_usage(v=v))
        return
    problem = catalog.check_request(url, name, language)
    if problem is None and url in {s.url for s in d.config()}:
        problem = v.gettext("it is already in the config file")
    if problem is not None:
        await answer(update, context, admin_replies.feed_refused(url, problem, v=v))
        return
    limits = d.settings.limits
    async with make_client(limits) as client:
        fetcher = Fetcher(client, limits, address_policy=d.address_policy)
        probe = await catalog.probe(
            fetcher, limits, url, source="chat", name=name, language=language
        )
    if probe.error is not None:
        await answer(update, context, admin_replies.feed_refused(url, probe.error, v=v))
        return
    spec = FeedSpec(url, catalog.clean_name(name) or probe.title or url, probe.language)
    done = await asyncio.to_thread(
        catalog.save_feed,
        d.engine,
        spec,
        source="chat",
        added_by=added_by(update),
        config_urls={s.url for s in d.config()},
    )
    await answer(
        update, context, admin_replies.feed_added(spec, probe, already=done != "added", v=v)
    )


async def removefeed(update: Update, context: Context) -> None:
    """Admins: stop polling a feed added from a chat or the command line."""
    d, v = deps(context), await voice(update, context)
    if not is_admin(update, d.settings):
        await answer(update, context, replies.not_admin("/removefeed", v=v))
        return
    key = " ".join(context.args or [])
    if not key:
        await answer(update, context, admin_replies.removefeed_usage(v=v))
        return
    done, names = await asyncio.to_thread(catalog.drop_feed, d.engine, key, config=d.config())
    await answer(update, context, admin_replies.feed_removed(done, key, names, v=v))


async def feeds(update: Update, context: Context) -> None:
    """Admins: every feed polled, where it comes from, and its health."""
    d, v = deps(context), await voice(update, context)
    if not is_admin(update, d.settings):
        await answer(update, context, replies.not_admin("/feeds", v=v))
        return
    listed = await asyncio.to_thread(catalog.list_feeds, d.engine, d.config())
    health = await asyncio.to_thread(stored.feed_health, d.engine, [f.spec for f in listed])
    rows = [(h, f.source) for h, f in zip(health, listed, strict=True)]
    await answer(update, context, admin_replies.feeds(rows, now=utcnow(), v=v))


async def chat_id(update: Update, context: Context) -> None:
    """This chat's id (and forum topic), for the operator's `admin_chat_ids`."""
    chat = where(update)
    if chat is None:
        return
    v = await voice(update, context)
    await answer(update, context, replies.chat_id(chat.chat_id, chat.thread_id, v=v))


async def plain_text(update: Update, context: Context) -> None:
    """Text that is not a command, in a private chat: say what the bot is and where to start."""
    await answer(update, context, replies.about_bot(v=await voice(update, context)))


async def unknown(update: Update, context: Context) -> None:
    """A command the bot does not have: say so, unless it was meant for another bot."""
    message = update.effective_message
    if message is None or not message.text:
        return
    word = message.text.split()[0]
    command, _, target = word.partition("@")
    if target and target.lower() != (context.bot.username or "").lower():
        return  # /cmd@otherbot in a group
    chat = update.effective_chat
    if not target and chat is not None and chat.type != "private":
        return  # a bare unknown command in a group is probably for another bot
    await answer(update, context, replies.unknown_command(command, v=await voice(update, context)))


async def migrated(update: Update, context: Context) -> None:
    """The group became a supergroup: follow it to its new chat id."""
    message = update.effective_message
    if message is None or not message.migrate_to_chat_id:
        return
    moved = await asyncio.to_thread(
        subscribers.migrate, deps(context).engine, message.chat_id, message.migrate_to_chat_id
    )
    log.info(
        "chat %s migrated to %s (%d subscriptions moved)",
        message.chat_id,
        message.migrate_to_chat_id,
        moved,
    )


JOINED = (ChatMember.MEMBER, ChatMember.ADMINISTRATOR)
GONE = (ChatMember.BANNED, ChatMember.LEFT)


async def membership(update: Update, context: Context) -> None:
    """The bot was added to a group (introduce itself), or blocked, kicked or removed from a
    chat (stop sending there)."""
    change = update.my_chat_member
    if change is None:
        return
    joined = change.new_chat_member.status in JOINED and change.old_chat_member.status in GONE
    if joined and change.chat.type in ("group", "supergroup"):
        code = change.from_user.language_code if change.from_user else None
        await context.bot.send_message(
            change.chat.id,
            replies.group_intro(v=Voice(code or "en")),
            parse_mode=ParseMode.HTML,
            link_preview_options=NO_PREVIEW,
            rate_limit_args=REPLY_RETRIES,
        )
        return
    if change.new_chat_member.status in (ChatMember.BANNED, ChatMember.LEFT):
        reason = (
            "bot blocked by the user"
            if change.chat.type == "private"
            else "bot removed from the chat"
        )
        count = await asyncio.to_thread(
            subscribers.deactivate_chat, deps(context).engine, change.chat.id, reason
        )
        log.info("chat %s: %s (%d subscriptions turned off)", change.chat.id, reason, count)


async def on_error(update: object, context: Context) -> None:
    """Log the error (the logging set-up redacts secrets) and apologise if a user is waiting."""
    log.error("error while handling an update", exc_info=context.error)
    if isinstance(update, Update) and update.effective_message is not None:
        try:
            v = Voice(language_code(update) or "en")
            await answer(update, context, replies.failure(v=v))
        except Exception:  # the chat may be the problem (blocked, gone): nothing more to do
            log.debug("could not send the apology", exc_info=True)
