"""The python-telegram-bot `Application`: built, wired and started here, and nowhere else.

The Bot API root is a setting (`TELEGRAM_API_URL`), so the same code talks to Telegram, to a
self-hosted Bot API server, or to the tests' server. Requests go through `AIORateLimiter`
set a little under Telegram's published limits (29/s overall, 19/min per group) and with
small bursts (4 overall, 5 per group): AIORateLimiter is a leaky bucket whose burst equals
its rate, and a full-size burst of requests whose sends are delayed unequally (event loop,
network) can reach Telegram bunched closer than allowed. With a small client burst the
server's bucket stays nearly full and absorbs that jitter; the sustained rate is the same.
`max_retries=0`, because a `RetryAfter` is handled by rescheduling the delivery
(bot/delivery/worker.py).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import Engine
from telegram import BotCommand, Update
from telegram.error import InvalidToken, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    MessageHandler,
    filters,
)

from bot.delivery.ratelimit import SharedRate
from bot.delivery.sender import FloodGate, GatedRequest, TelegramSender
from bot.errors import ConfigError
from bot.i18n import DEFAULT_LANGUAGE, LANGUAGES
from bot.settings import Settings
from bot.telegram import alert_buttons, commands, language, replies
from bot.telegram.settings import register as register_settings
from bot.telegram.updates import UpdatesWatch, WatchedRequest, poll_timeout

log = logging.getLogger(__name__)

OVERALL_PER_SECOND = 29
OVERALL_BURST = 4
GROUP_PER_MINUTE = 19
GROUP_BURST = 5
CONNECTIONS = 256  # PTB's default pool for API calls
GATE = "flood_gate"
WATCH = "updates_watch"
ALLOWED_UPDATES = [
    Update.MESSAGE,
    Update.EDITED_MESSAGE,
    Update.MY_CHAT_MEMBER,
    Update.CALLBACK_QUERY,
    Update.CHANNEL_POST,
]

App = Application[Any, Any, Any, Any, Any, Any]


def token_of(settings: Settings) -> str:
    if settings.telegram_bot_token is None:
        raise ConfigError("TELEGRAM_BOT_TOKEN is not set")
    return settings.telegram_bot_token.get_secret_value()


def webhook_secret(token: str) -> str:
    """A stable X-Telegram-Bot-Api-Secret-Token, derived from (never equal to) the token."""
    return hashlib.sha256(b"sahel-watch webhook\0" + token.encode()).hexdigest()


def rate_limiter() -> AIORateLimiter:
    """Telegram's limits as leaky buckets: a sustained rate, a small burst."""
    return AIORateLimiter(
        overall_max_rate=OVERALL_BURST,
        overall_time_period=OVERALL_BURST / OVERALL_PER_SECOND,
        group_max_rate=GROUP_BURST,
        group_time_period=GROUP_BURST * 60 / GROUP_PER_MINUTE,
        max_retries=0,
    )


def build_application(settings: Settings, engine: Engine, *, seeds: tuple[str, ...]) -> App:
    """The Application with every handler; nothing is contacted until it is initialised."""
    gate = FloodGate()
    watch = UpdatesWatch()
    api = settings.telegram_api_url.rstrip("/")
    application: App = (
        ApplicationBuilder()
        .token(token_of(settings))
        .base_url(f"{api}/bot")
        .base_file_url(f"{api}/file/bot")
        .rate_limiter(rate_limiter())
        .request(
            GatedRequest(
                gate,
                connection_pool_size=CONNECTIONS,
                read_timeout=settings.telegram.send_timeout,
            )
        )
        .get_updates_request(WatchedRequest(watch))
        .job_queue(None)
        .build()
    )
    application.bot_data[commands.DEPS] = commands.BotDeps(settings, engine, seeds)
    application.bot_data[GATE] = gate
    application.bot_data[WATCH] = watch
    # each command answers to its English name, its French alias and its other names
    for name, handler in (
        ("start", commands.start),
        ("subscribe", commands.subscribe),
        ("unsubscribe", commands.unsubscribe),
        ("latest", commands.latest),
        ("status", commands.status),
        ("help", commands.help_command),
        ("sources", commands.sources),
        ("language", language.language),
        ("id", commands.chat_id),
    ):
        application.add_handler(CommandHandler(list(replies.command(name).names), handler))
    application.add_handler(CommandHandler("stats", commands.stats))
    application.add_handler(
        CallbackQueryHandler(
            language.language_button, pattern=f"^{language.LANGUAGE_CALLBACK}[a-z]+$"
        )
    )
    # the buttons under an alert: all coverage, mute, "Not news?" (bot/telegram/alert_buttons.py)
    application.add_handler(
        CallbackQueryHandler(alert_buttons.alert_button, pattern=alert_buttons.PATTERN)
    )
    # these fetch a feed (up to limits.total_timeout): other updates need not wait for them
    for name, handler in (
        ("addfeed", commands.addfeed),
        ("removefeed", commands.removefeed),
        ("feeds", commands.feeds),
    ):
        application.add_handler(CommandHandler(name, handler, block=False))
    # /settings, /timezone, channels' commands, and the gate: admins only change groups
    register_settings(application)
    application.add_handler(MessageHandler(filters.COMMAND, commands.unknown))
    # last: text that nothing above took, in a private chat, gets "what this bot is"
    application.add_handler(
        MessageHandler(
            filters.ChatType.PRIVATE & filters.TEXT & ~filters.COMMAND & ~filters.UpdateType.EDITED,
            commands.plain_text,
        )
    )
    application.add_handler(MessageHandler(filters.StatusUpdate.MIGRATE, commands.migrated))
    application.add_handler(
        ChatMemberHandler(commands.membership, ChatMemberHandler.MY_CHAT_MEMBER)
    )
    application.add_error_handler(commands.on_error)
    return application


def sender_for(application: App) -> TelegramSender:
    """The alert sender for this Application's bot, sharing its flood gate, and the overall
    rate with every replica on the same database (bot/delivery/ratelimit.py)."""
    gate = application.bot_data[GATE]
    assert isinstance(gate, FloodGate)
    deps = application.bot_data[commands.DEPS]
    assert isinstance(deps, commands.BotDeps)
    shared = SharedRate(deps.engine, per_second=OVERALL_PER_SECOND, burst=OVERALL_BURST, gate=gate)
    return TelegramSender(application.bot, gate=gate, shared=shared)


def updates_watch(application: App) -> UpdatesWatch:
    """What the getUpdates answers of this Application say (bot/telegram/updates.py)."""
    watch = application.bot_data[WATCH]
    assert isinstance(watch, UpdatesWatch)
    return watch


def _polling_error(exc: TelegramError) -> None:
    """PTB retries getUpdates after this (with its backoff); one line instead of a traceback."""
    log.warning("Telegram: getUpdates failed (%s: %s); retrying", type(exc).__name__, exc.message)


async def start_application(application: App, settings: Settings, *, updates: bool = True) -> None:
    """Initialise (getMe), register the commands, and (with `updates`) start receiving updates.

    Several replicas all start the Application (each sends alerts), but only one receives
    updates at a time: `python -m bot run` passes `updates=False` and calls `start_updates`
    while it holds the updates lease (bot/role.py).
    """
    _check_mode(settings)
    try:
        await application.initialize()
    except InvalidToken:
        # PTB's message quotes the token; ours must not
        raise ConfigError(
            f"TELEGRAM_BOT_TOKEN was rejected by the Bot API at {settings.telegram_api_url}"
        ) from None
    await register_menus(application)
    await application.start()
    if updates:
        await start_updates(application, settings)


async def register_menus(application: App) -> None:
    """The command menu in each language: French clients show the French names and
    descriptions (`language_code="fr"`), every other client the English ones (no code)."""
    for spoken in LANGUAGES:
        menu = [BotCommand(name, about) for name, about in replies.menu(spoken)]
        code = None if spoken == DEFAULT_LANGUAGE else spoken
        await application.bot.set_my_commands(menu, language_code=code)


async def start_updates(application: App, settings: Settings) -> None:
    """Long polling (getUpdates), or the webhook server, into the running Application."""
    updater = application.updater
    assert updater is not None
    _check_mode(settings)
    if settings.telegram.mode == "webhook":
        token = token_of(settings)
        path = urlsplit(settings.telegram.webhook_url).path.strip("/") or "telegram"
        await updater.start_webhook(
            listen=settings.telegram.webhook_listen,
            port=settings.telegram.webhook_port,
            url_path=path,
            webhook_url=settings.telegram.webhook_url,
            secret_token=webhook_secret(token),
            allowed_updates=ALLOWED_UPDATES,
        )
        log.info(
            "Telegram: webhook on %s:%d/%s",
            settings.telegram.webhook_listen,
            settings.telegram.webhook_port,
            path,
        )
    else:
        updates_watch(application).started()
        await updater.start_polling(
            timeout=poll_timeout(settings.telegram.updates_lease_seconds),
            allowed_updates=ALLOWED_UPDATES,
            error_callback=_polling_error,
        )
        log.info("Telegram: long polling as @%s", application.bot.username)


async def stop_updates(application: App) -> None:
    """Stop long polling (confirming what was fetched) or the webhook server; idempotent."""
    updater = application.updater
    if updater is not None and updater.running:
        try:
            await updater.stop()
        except InvalidToken:  # the polling loop ended on it; already reported (run.py)
            if updates_watch(application).refused is None:
                raise
        log.info("Telegram: no longer receiving updates")


async def stop_application(application: App) -> None:
    await stop_updates(application)
    if application.running:
        await application.stop()
    await application.shutdown()


def _check_mode(settings: Settings) -> None:
    """A webhook needs its URL and PTB's webhooks extra: say so before anything starts."""
    if settings.telegram.mode != "webhook":
        return
    if not settings.telegram.webhook_url:
        raise ConfigError("telegram.webhook_url is required when telegram.mode is 'webhook'")
    if not _webhooks_available():
        _no_webhooks()


def _webhooks_available() -> bool:
    return importlib.util.find_spec("tornado") is not None


def _no_webhooks() -> None:
    raise ConfigError(
        "telegram.mode = 'webhook' needs the webhooks extra: "
        "pip install 'python-telegram-bot[webhooks]' (or use mode = 'polling')"
    )
