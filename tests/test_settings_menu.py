"""/settings end to end: the real PTB Application long-polls the Bot API test server, a user
presses the keyboard, the message edits itself and the choice is stored (SQLite and
PostgreSQL); in groups and channels only administrators change anything."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.delivery.worker import Deliverer, Policy
from bot.i18n import Voice
from bot.owners import make_owner
from bot.storage import chat_settings
from bot.storage.chat_settings import ChatSettings
from bot.storage.models import Delivery, Story, Subscriber
from bot.storage.subscribers import Chat
from bot.telegram import settings_menu
from bot.telegram.admins import AdminCache
from bot.telegram.app import App, sender_for
from bot.telegram.settings_menu import Step, canonical_zone, step_for
from tests.servers.bot_api import BotApiServer, CallbackAnswer, Limits, SentMessage


@pytest.fixture(autouse=True)
def _typing_fast(bot_api: BotApiServer) -> None:
    bot_api.set_limits(Limits(chat_burst=50, group_burst=50))


async def ask(server: BotApiServer, chat_id: int, text: str, **options: object) -> SentMessage:
    """Send `text` as a user and return the bot's next message to that chat."""
    before = len(server.sent(chat_id))
    server.send_text(chat_id, text, **options)  # type: ignore[arg-type]
    messages = await asyncio.to_thread(server.wait_sent, chat_id, before + 1, 10.0)
    return messages[before]


async def press(
    server: BotApiServer, chat_id: int, message_id: int, data: str, **options: object
) -> CallbackAnswer:
    """Press the button with this callback data; the bot's answer (it answers after editing)."""
    query_id = server.press(chat_id, message_id, data=data, **options)  # type: ignore[arg-type]
    return await asyncio.to_thread(server.wait_answer, query_id, 10.0)


def stored(engine: Engine, chat_id: int) -> ChatSettings:
    return chat_settings.read(engine, Chat(chat_id))


# -- the grammar (pure) --------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        "", "set", "set:", "set:y", "set:s", "set:s:2", "set:p:true", "set:t:+bogus",
        "set:t:security", "set:d:h5", "set:d:a24", "set:d:a3", "set:d:a123", "set:q:22-8",
        "set:q:7",
        "set:z:Mars/Olympus", "set:z:../../etc/passwd", "set:z:Europe/London",
        "lang:fr", "set:m:x:y", "set:t:+" + "a" * 70, "set:z:Africa/Bamako\n", "sét:m",
        "set:l:de", "set:l:FR", "set:l:fr:x", "set:l:", "set:l:français",
    ],
)  # fmt: skip
def test_callback_data_outside_the_keyboard_is_refused(data: str) -> None:
    assert step_for(data, ChatSettings()) is None


def test_each_button_sets_what_it_says() -> None:
    now = ChatSettings(topics="security")
    assert step_for("set:m", now) == Step("m")
    assert step_for("set:t:+economy", now) == Step("t", {"topics": "security,economy"}, "Saved.")
    assert step_for("set:t:-security", now) is not None
    assert step_for("set:t:-security", now).changes == {}  # type: ignore[union-attr]
    assert step_for("set:d:h12", now) == Step(
        "d", {"delivery_mode": "digest", "digest_hours": 12}, "Saved."
    )
    assert step_for("set:d:a7", now).changes == {"delivery_mode": "daily", "digest_at": 420}  # type: ignore[union-attr]
    assert step_for("set:q:23-6", now).changes == {"quiet_from": 1380, "quiet_to": 360}  # type: ignore[union-attr]
    assert step_for("set:q:off", now).changes == {"quiet_from": None, "quiet_to": None}  # type: ignore[union-attr]
    assert step_for("set:s:1", now).changes == {"silent": True}  # type: ignore[union-attr]
    assert step_for("set:p:0", now).changes == {"link_previews": False}  # type: ignore[union-attr]
    assert step_for("set:l", now) == Step("l")
    assert step_for("set:l:fr", now) == Step("m", {"language": "fr"}, "Language saved.")
    # every button of every page is understood, and fits Telegram's 64 bytes
    view = ChatSettings()
    main = [b.callback_data for row in settings_menu.keyboard(view, "m", Voice()).inline_keyboard
            for b in row]  # fmt: skip
    assert "set:l" in main
    for page in ("m", "t", "d", "a", "q", "z", "l"):
        for row in settings_menu.keyboard(view, page, Voice()).inline_keyboard:
            for button in row:
                data = str(button.callback_data)
                assert len(data.encode()) <= 64 and step_for(data, view) is not None, data


def test_time_zones_are_checked_with_zoneinfo() -> None:
    assert canonical_zone("africa/bamako") == "Africa/Bamako"
    assert canonical_zone(" Europe/Paris ") == "Europe/Paris"
    assert canonical_zone("utc") == "UTC"
    for bad in ("Mars/Olympus", "", "/etc/passwd", "../UTC", "Africa/" + "x" * 80, "<b>"):
        assert canonical_zone(bad) is None


def test_admin_cache_expires_and_stays_bounded() -> None:
    now = [0.0]
    cache = AdminCache(ttl=60, size=2, clock=lambda: now[0])
    cache.put(-1, 5, True)
    assert cache.get(-1, 5) is True and cache.get(-1, 6) is None
    now[0] = 61
    assert cache.get(-1, 5) is None
    for user in (1, 2, 3):
        cache.put(-1, user, False)
    assert cache.get(-1, 1) is None and cache.get(-1, 3) is False


# -- through the bot -----------------------------------------------------------------------


async def test_settings_changed_by_keyboard_are_stored(
    running_bot: App, bot_api: BotApiServer, engine: Engine
) -> None:
    chat = 9101
    await ask(bot_api, chat, "/start")
    menu = await ask(bot_api, chat, "/settings")
    assert menu.plain.startswith("Settings for this chat")
    assert "Topics: all" in menu.plain and "Delivery: each alert as it comes" in menu.plain
    assert menu.reply_markup is not None
    message_id = menu.message_id

    await press(bot_api, chat, message_id, "set:t")
    page = bot_api.message(chat, message_id)
    assert "tick the ones" in page["text"]
    assert [row[0][1] for row in bot_api.buttons(chat, message_id)][:2] == [
        "set:t:-relations", "set:t:-security"
    ]  # fmt: skip
    await press(bot_api, chat, message_id, "set:t:-economy")
    await press(bot_api, chat, message_id, "set:t:-humanitarian")
    assert stored(engine, chat).topics == "relations,security,politics"
    assert (
        "Topics: Algeria–AES relations, Security, Politics and governance"
        in (bot_api.message(chat, message_id)["text"])
    )

    for data in ("set:m", "set:d", "set:d:h12", "set:m", "set:q", "set:q:22-7", "set:m",
                 "set:z", "set:z:Africa/Niamey", "set:s:1", "set:p:0"):  # fmt: skip
        await press(bot_api, chat, message_id, data)
    after = stored(engine, chat)
    assert (after.delivery_mode, after.digest_hours) == ("digest", 12)
    assert (after.quiet_from, after.quiet_to) == (22 * 60, 7 * 60)
    assert (after.timezone, after.silent, after.link_previews) == ("Africa/Niamey", True, False)
    assert after.subscribed

    for data in ("set:d", "set:d:day", "set:d:a7"):
        await press(bot_api, chat, message_id, data)
    assert (stored(engine, chat).delivery_mode, stored(engine, chat).digest_at) == ("daily", 420)
    await press(bot_api, chat, message_id, "set:m")
    done = await press(bot_api, chat, message_id, "set:x")
    assert done.text is None
    final = bot_api.message(chat, message_id)
    assert "reply_markup" not in final
    assert "Delivery: a daily digest at 07:00" in final["text"]
    assert "Quiet hours: 22:00–07:00" in final["text"]
    assert "Notifications: silent" in final["text"] and "Link previews: off" in final["text"]
    assert len(bot_api.sent(chat)) == 2  # every change edited the one message
    assert len(bot_api.edits(chat, message_id)) == 19


async def test_a_forged_or_stale_press_changes_nothing(
    running_bot: App, bot_api: BotApiServer, engine: Engine
) -> None:
    chat = 9102
    menu = await ask(bot_api, chat, "/settings")
    forged = await press(bot_api, chat, menu.message_id, "set:z:Mars/Olympus", check=False)
    assert forged.text == "This button is no longer valid: send /settings again."
    assert stored(engine, chat) == ChatSettings()
    await press(bot_api, chat, menu.message_id, "set:t")
    for key in ("relations", "politics", "economy", "humanitarian"):
        saved = await press(bot_api, chat, menu.message_id, f"set:t:-{key}")
        assert saved.text == "Saved."
    assert stored(engine, chat).topics == "security"
    kept = await press(bot_api, chat, menu.message_id, "set:t:-security")
    assert kept.text == "Keep at least one topic, or choose every topic."
    assert stored(engine, chat).topics == "security"
    # an old keyboard's button still does what it says: untick a topic already unticked
    stale = await press(bot_api, chat, menu.message_id, "set:t:-economy", check=False)
    assert stale.text == "Saved." and stored(engine, chat).topics == "security"
    again = await press(bot_api, chat, menu.message_id, "set:t:all")
    assert again.text == "Every topic." and stored(engine, chat).topics == ""
    same = await press(bot_api, chat, menu.message_id, "set:t:all")  # "not modified": fine
    assert same.text == "Every topic."
    # settings chosen before subscribing wait on an inactive row
    assert not stored(engine, chat).subscribed


async def test_timezone_command(running_bot: App, bot_api: BotApiServer, engine: Engine) -> None:
    chat = 9103
    reply = await ask(bot_api, chat, "/timezone africa/bamako")
    assert reply.plain.startswith("Time zone: Africa/Bamako.")
    assert stored(engine, chat).timezone == "Africa/Bamako"
    refused = await ask(bot_api, chat, "/timezone <b>Mars/Olympus</b>")
    assert "I don't know the time zone “<b>Mars/Olympus</b>”" in refused.plain
    assert stored(engine, chat).timezone == "Africa/Bamako"
    zones = await ask(bot_api, chat, "/timezone")
    assert ("Africa/Bamako", "set:z:Africa/Bamako") in [
        (text.removeprefix("✅ "), data)
        for row in bot_api.buttons(chat, zones.message_id) for text, data in row
    ]  # fmt: skip


async def test_a_non_admin_is_refused_in_a_group(
    running_bot: App, bot_api: BotApiServer, engine: Engine
) -> None:
    group, admin, member = -9200, 71, 72
    bot_api.add_chat(group, "supergroup", title="Desk")
    bot_api.set_admins(group, [admin], creator=70)
    subscribed = await ask(bot_api, group, "/subscribe", user_id=admin)
    assert "Subscribed" in subscribed.plain
    for command in ("/unsubscribe@sahel_test_bot", "/settings", "/timezone UTC", "/langue fr"):
        refusal = await ask(bot_api, group, command, user_id=member)
        assert refusal.plain.startswith("Only this chat's administrators can change"), command
        assert refusal.reply_markup is None
    assert stored(engine, group) == ChatSettings(subscribed=True)
    assert len(bot_api.calls("getChatMember")) == 2  # the member's answer is cached


async def test_an_admin_changes_a_group_and_a_member_cannot(
    running_bot: App, bot_api: BotApiServer, engine: Engine
) -> None:
    group, admin, member = -9202, 73, 74
    bot_api.set_admins(group, [admin])
    await ask(bot_api, group, "/subscribe", user_id=admin)
    menu = await ask(bot_api, group, "/settings", user_id=admin)
    assert menu.reply_markup is not None
    refused = await press(bot_api, group, menu.message_id, "set:s:1", user_id=member)
    assert refused.show_alert and refused.text is not None
    assert refused.text.startswith("Only this chat's administrators")
    assert not stored(engine, group).silent
    assert bot_api.edits(group) == []

    allowed = await press(bot_api, group, menu.message_id, "set:s:1", user_id=admin)
    assert allowed.text == "Saved." and stored(engine, group).silent
    await press(bot_api, group, menu.message_id, "set:q", user_id=admin)
    await press(bot_api, group, menu.message_id, "set:q:23-6", user_id=admin)
    assert stored(engine, group).quiet_from == 23 * 60
    # one getChatMember per person within the cache's minute
    asked = [(c.params["chat_id"], c.params["user_id"]) for c in bot_api.calls("getChatMember")]
    assert sorted(asked) == [(str(group), str(admin)), (str(group), str(member))]
    bye = await ask(bot_api, group, "/unsubscribe", user_id=admin)
    assert "Unsubscribed" in bye.plain
    assert not stored(engine, group).subscribed


async def test_an_anonymous_admin_and_the_owner_may_change_a_group(
    running_bot: App, bot_api: BotApiServer, engine: Engine
) -> None:
    group = -9201
    bot_api.set_admins(group, [], creator=80)
    await ask(bot_api, group, "/subscribe", anonymous=True)
    assert stored(engine, group).subscribed
    await ask(bot_api, group, "/timezone Europe/Paris", user_id=80)
    assert stored(engine, group).timezone == "Europe/Paris"
    assert bot_api.calls("getChatMember")[0].params["user_id"] == "80"


async def test_a_channel_is_subscribed_and_set_by_its_admins(
    running_bot: App, bot_api: BotApiServer, engine: Engine
) -> None:
    channel, admin, reader = -1009300, 91, 92
    bot_api.add_bot(channel, by=admin, status="administrator", chat_type="channel", title="Wire")
    bot_api.set_admins(channel, [admin])
    reply = await ask(bot_api, channel, "/subscribe")  # a post: only admins can post
    assert "Subscribed" in reply.plain
    with Session(engine) as session:
        row = session.exec(select(Subscriber).where(Subscriber.chat_id == channel)).one()
        assert (row.chat_type, row.active) == ("channel", True)
    menu = await ask(bot_api, channel, "/settings")
    refused = await press(bot_api, channel, menu.message_id, "set:p:0", user_id=reader)
    assert refused.show_alert and stored(engine, channel).link_previews
    await press(bot_api, channel, menu.message_id, "set:p:0", user_id=admin)
    assert not stored(engine, channel).link_previews


async def test_whoever_adds_the_bot_to_a_channel_learns_how_to_subscribe_it(
    running_bot: App, bot_api: BotApiServer, engine: Engine
) -> None:
    admin, other = 9401, 9402
    await ask(bot_api, admin, "/help")  # has started the bot: it may write to them
    before = len(bot_api.sent(admin))
    bot_api.add_bot(-1009400, by=admin, status="member", chat_type="channel", title="<Wire>")
    (cannot,) = (await asyncio.to_thread(bot_api.wait_sent, admin, before + 1))[before:]
    assert "“<Wire>” but cannot post there" in cannot.plain
    bot_api.add_bot(-1009400, by=admin, status="administrator", language_code="fr")
    told = (await asyncio.to_thread(bot_api.wait_sent, admin, before + 2))[-1]
    assert "publiez /abonner dans le canal" in told.plain  # in the adder's language
    bot_api.block(other)  # never started the bot: Telegram refuses, nothing else happens
    bot_api.add_bot(-1009401, by=other, status="administrator", chat_type="channel")
    await asyncio.to_thread(bot_api.wait_updates_consumed)
    assert await ask(bot_api, admin, "/help")  # the bot is still answering
    assert bot_api.sent(-1009401) == [] and not stored(engine, -1009401).subscribed


def add_story(engine: Engine, title: str, topics: str, created: datetime) -> None:
    """A story with a pending delivery per active subscriber, as the pipeline writes it."""
    with Session(engine) as session:
        story = Story(
            created_at=created, title=title, link=f"https://wire.test/{len(title)}",
            feed_name="Wire", summary=f"{title}.", published=created, topics=topics,
        )  # fmt: skip
        session.add(story)
        session.flush()
        assert story.id is not None
        for subscriber_id in session.exec(
            select(Subscriber.id).where(col(Subscriber.active).is_(True))
        ).all():
            assert subscriber_id is not None
            session.add(Delivery(story_id=story.id, subscriber_id=subscriber_id,
                                 next_attempt_at=created, created_at=created))  # fmt: skip
        session.commit()


async def test_settings_chosen_by_keyboard_are_honoured_by_the_next_delivery(
    running_bot: App, bot_api: BotApiServer, engine: Engine
) -> None:
    chat, other = 9501, 9502
    await ask(bot_api, chat, "/start")
    await ask(bot_api, other, "/start")
    menu = await ask(bot_api, chat, "/settings")
    for data in ("set:t", "set:t:-relations", "set:t:-politics", "set:t:-economy",
                 "set:t:-humanitarian", "set:m", "set:s:1", "set:p:0", "set:q",
                 "set:q:22-7", "set:m", "set:z", "set:z:Africa/Bamako"):  # fmt: skip
        await press(bot_api, chat, menu.message_id, data)
    night = datetime(2026, 3, 10, 23, 30, tzinfo=UTC)  # Bamako is UTC+0 all year
    add_story(engine, "Army convoy ambushed near Menaka", "security", night)
    add_story(engine, "Mali and Niger sign a gold refinery deal", "economy", night)
    before = {c: len(bot_api.sent(c)) for c in (chat, other)}

    def deliverer(now: datetime) -> Deliverer:
        policy = Policy(backoff_base=0.05, backoff_max=0.2, idle_poll=0.05, grace=2.0)
        return Deliverer(engine, sender_for(running_bot), owner=make_owner(), policy=policy,
                         clock=lambda: now)  # fmt: skip

    await deliverer(night + timedelta(seconds=5)).drain()
    assert len(bot_api.sent(other)) == before[other] + 2  # the default: everything, at once
    assert len(bot_api.sent(chat)) == before[chat]  # quiet hours: held until 07:00
    await deliverer(datetime(2026, 3, 11, 7, 0, 5, tzinfo=UTC)).drain()
    got = bot_api.sent(chat)[before[chat] :]
    assert [m.plain.splitlines()[0] for m in got] == ["Army convoy ambushed near Menaka"]
    assert got[0].silent and got[0].preview_disabled
    assert not any(m.silent for m in bot_api.sent(other)[before[other] :])


async def test_a_french_reader_sets_the_chat_in_french(
    running_bot: App, bot_api: BotApiServer, engine: Engine
) -> None:
    chat = 9601
    menu = await ask(bot_api, chat, "/parametres", language_code="fr")
    assert menu.plain.startswith("Réglages de cette discussion")
    labels = [text for row in bot_api.buttons(chat, menu.message_id) for text, _ in row]
    assert "🗂 Thèmes" in labels
    await press(bot_api, chat, menu.message_id, "set:d", language_code="fr")
    saved = await press(bot_api, chat, menu.message_id, "set:d:h6", language_code="fr")
    assert saved.text == "Enregistré."
    assert stored(engine, chat).delivery_mode == "digest"
    fr = Voice("fr")
    every = fr.ngettext("a digest every hour", "a digest every %(hours)d hours", 6) % {"hours": 6}
    line = fr.gettext("Delivery: %(how)s") % {"how": every}
    assert line != "Delivery: a digest every 6 hours"  # translated
    assert line in bot_api.message(chat, menu.message_id)["text"].splitlines()
    zone = await ask(bot_api, chat, "/fuseau Africa/Algiers", language_code="fr")
    assert zone.plain.startswith("Fuseau horaire\xa0: Africa/Algiers.")


async def test_the_language_is_chosen_on_the_settings_keyboard(
    running_bot: App, bot_api: BotApiServer, engine: Engine
) -> None:
    chat = 9602
    menu = await ask(bot_api, chat, "/settings", language_code="en")
    assert "Language: English" in menu.plain.splitlines()
    assert ("🌐 Language", "set:l") in [b for row in bot_api.buttons(chat, menu.message_id)
                                      for b in row]  # fmt: skip
    await press(bot_api, chat, menu.message_id, "set:l")
    page = bot_api.message(chat, menu.message_id)["text"]
    assert page.endswith("Language of this chat: replies, alerts, digests and the command menu.")
    assert bot_api.buttons(chat, menu.message_id) == [
        [("✅ English", "set:l:en"), ("▫️ Français", "set:l:fr")], [("« Back", "set:m")],
    ]  # fmt: skip
    saved = await press(bot_api, chat, menu.message_id, "set:l:fr")
    assert saved.text == "Langue enregistrée."
    assert stored(engine, chat).language == "fr"
    shown = bot_api.message(chat, menu.message_id)["text"]
    assert shown.startswith("Réglages de cette discussion")  # the menu speaks French at once
    assert "Langue\xa0: Français" in shown.splitlines()
    french = [c["command"] for c in bot_api.commands_for({"type": "chat", "chat_id": chat})]
    assert "aide" in french  # the chat's command menu follows
    again = await ask(bot_api, chat, "/settings", language_code="en")  # chosen wins over the app
    assert again.plain.startswith("Réglages de cette discussion")
    await press(bot_api, chat, again.message_id, "set:l", language_code="en")
    back = await press(bot_api, chat, again.message_id, "set:l:en", language_code="en")
    assert back.text == "Language saved." and stored(engine, chat).language == "en"


async def test_only_a_groups_administrators_change_its_language_by_keyboard(
    running_bot: App, bot_api: BotApiServer, engine: Engine
) -> None:
    group, admin, member = -9203, 75, 76
    bot_api.set_admins(group, [admin])
    menu = await ask(bot_api, group, "/settings", user_id=admin)
    await press(bot_api, group, menu.message_id, "set:l", user_id=admin)
    refused = await press(bot_api, group, menu.message_id, "set:l:fr", user_id=member)
    assert refused.show_alert and stored(engine, group).language == "en"
    allowed = await press(bot_api, group, menu.message_id, "set:l:fr", user_id=admin)
    assert allowed.text == "Langue enregistrée." and stored(engine, group).language == "fr"


async def test_settings_in_a_forum_topic_belong_to_that_topic(
    running_bot: App, bot_api: BotApiServer, engine: Engine
) -> None:
    forum, admin = -1009700, 97
    bot_api.add_chat(forum, "supergroup", title="Newsroom", is_forum=True)
    bot_api.set_admins(forum, [admin])
    menu = await ask(bot_api, forum, "/settings", user_id=admin, thread_id=12)
    assert menu.thread_id == 12
    await press(bot_api, forum, menu.message_id, "set:s:1", user_id=admin)
    assert chat_settings.read(engine, Chat(forum, 12)).silent
    assert not chat_settings.read(engine, Chat(forum, 0)).silent
