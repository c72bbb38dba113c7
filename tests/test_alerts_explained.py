"""Alerts that explain themselves, through the real PTB client and the Bot API test server,
on SQLite and PostgreSQL: the topic tag and why-new line, the outlet's own name, a follow-up
threaded as a reply to the chat's alert, coverage edits (bounded, crash-safe), and the
buttons under an alert (all coverage, mute, "Not news?")."""

from __future__ import annotations

import asyncio
import html
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.delivery.sender import Outcome, TelegramSender
from bot.delivery.worker import Deliverer, Policy
from bot.i18n import Voice, translator
from bot.owners import make_owner
from bot.pipeline import Pipeline, decide_offline
from bot.settings import Settings
from bot.storage import alerts, chat_settings, languages
from bot.storage.alerts import EditPolicy
from bot.storage.db import make_engine
from bot.storage.models import Delivery, Feedback, Item, Story, StoryMute, Subscriber
from bot.storage.subscribers import Chat
from bot.telegram import admins
from bot.telegram.app import App, sender_for
from bot.telegram.coverage import CoverageEditor
from bot.telegram.explain import Press, parse
from tests.servers.bot_api import BotApiServer, CallbackAnswer, SentMessage
from tests.servers.bot_fixtures import subscribe_chats, wait_until
from tests.servers.feed_server import FeedServer
from tests.test_feedback import AFRIQUE, T0, WIRE, Stored, entry, store
from tests.test_pipeline import settings_for as pipeline_settings

QUICK = Policy(backoff_base=0.05, backoff_max=0.2, idle_poll=0.05, grace=2.0)


class Clock:
    """The deliverer's and the editor's time, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def deliverer(engine: Engine, application: App, clock: Clock) -> Deliverer:
    return Deliverer(engine, sender_for(application), owner=make_owner(), policy=QUICK, clock=clock)


def delivery(engine: Engine, story_id: int, chat_id: int) -> Delivery:
    with Session(engine) as session:
        row = session.exec(
            select(Delivery)
            .join(Subscriber, col(Subscriber.id) == col(Delivery.subscriber_id))
            .where(Delivery.story_id == story_id, Subscriber.chat_id == chat_id)
        ).one()
        return row


def alert_of(server: BotApiServer, engine: Engine, story_id: int, chat_id: int) -> SentMessage:
    message_id = delivery(engine, story_id, chat_id).message_id
    [message] = [m for m in server.sent(chat_id) if m.message_id == message_id]
    return message


def icj(engine: Engine) -> Stored:
    return store(
        engine,
        entry(WIRE, "icj", "Mali files ICJ case against Algeria over drone",
              "Mali asked the court to rule that Algeria violated its sovereignty.", 0,
              outlet="Pan-Africa Wire"),
        topics=("diplomacy", "justice"),
    )  # fmt: skip


def refusal(engine: Engine, follows: int) -> Stored:
    return store(
        engine,
        entry(WIRE, "refusal", "Algeria refuses ICJ jurisdiction in Mali drone case",
              "Algeria will not consent to the court hearing Mali's case.", 2),
        follows=follows,
        topics=("justice",),
    )  # fmt: skip


def joins(engine: Engine, story: Stored, guid: str, outlet: str, hours: float) -> Stored:
    """Another outlet's report of `story`, through a Google News-like feed."""
    return store(
        engine,
        entry(AFRIQUE, guid, f"Le Mali saisit la CIJ ({outlet})",
              "Bamako demande à la Cour de juger l'Algérie.", hours, outlet=outlet),
        story=story.story_id,
    )  # fmt: skip


async def answered(server: BotApiServer, query: str) -> CallbackAnswer:
    """The bot's answer to a pressed button (waited for off the event loop the bot runs on)."""
    return await asyncio.to_thread(server.wait_answer, query)


def buttons(message: SentMessage) -> list[str]:
    markup = message.reply_markup or {}
    return [b["callback_data"] for row in markup.get("inline_keyboard", []) for b in row]


# -- what an alert says --------------------------------------------------------------------


async def test_an_alert_shows_its_topic_why_it_is_new_its_outlet_and_buttons(
    engine: Engine, ptb_app: App, bot_api: BotApiServer
) -> None:
    subscribe_chats(engine, [401])
    first = icj(engine)
    follow = refusal(engine, first.story_id)
    clock = Clock(T0 + timedelta(hours=3))
    await deliverer(engine, ptb_app, clock).drain()
    alert = alert_of(bot_api, engine, first.story_id, 401)
    lines = alert.plain.splitlines()
    assert lines[0] == "Mali files ICJ case against Algeria over drone"
    assert lines[1].startswith("Pan-Africa Wire · ")  # the outlet's own name, not "Wire EN"
    assert lines[2] == "🏷 Algeria–AES relations · first report of this development"
    story = first.story_id
    assert buttons(alert) == [f"a:cov:{story}", f"a:mute:{story}", f"a:fb:{story}"]
    later = alert_of(bot_api, engine, follow.story_id, 401)
    assert later.plain.splitlines()[2] == (
        "🏷 Algeria–AES relations · follows up “Mali files ICJ case against Algeria over drone”"
    )
    with Session(engine) as session:
        assert session.get(Story, first.story_id).outlet == "Pan-Africa Wire"  # type: ignore[union-attr]
        assert session.get(Story, follow.story_id).follows_id == first.story_id  # type: ignore[union-attr]


async def test_a_french_chat_reads_its_alert_explained_in_french(
    engine: Engine, ptb_app: App, bot_api: BotApiServer
) -> None:
    subscribe_chats(engine, [402])
    languages.choose(engine, Chat(402), "fr")
    first = icj(engine)
    await deliverer(engine, ptb_app, Clock(T0 + timedelta(minutes=5))).drain()
    alert = alert_of(bot_api, engine, first.story_id, 402)
    assert alert.plain.splitlines()[2] == (
        "🏷 " + translator("fr").gettext("Algeria–AES relations") + " · "
        "premier article sur ce fait nouveau"
    )
    labels = [b["text"] for row in (alert.reply_markup or {})["inline_keyboard"] for b in row]
    assert "Ne plus suivre cette affaire" in labels and "All coverage" not in labels


def test_the_pipeline_stores_the_outlet_and_the_story_a_new_one_follows(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    """Through the cycle's own decide-and-store step: Google News names the outlet in
    `<source>` (Entry.outlet), and the decision core links a follow-up to its story."""
    filing = entry(WIRE, "filing", "Mali files ICJ case against Algeria over drone",
                   "Mali asked the International Court of Justice to rule that Algeria "
                   "violated its sovereignty.", 0, outlet="Pan-Africa Wire")  # fmt: skip
    refused = entry(WIRE, "refused", "Algeria refuses ICJ jurisdiction in Mali drone case",
                    "Algeria will not consent to the International Court of Justice hearing "
                    "Mali's case.", 30)  # fmt: skip
    first, then = decide_offline(make_settings(), database_url, [filing, refused])
    assert (first.decision, then.decision) == ("new", "new"), (first.reasons, then.reasons)
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            earlier = session.get(Story, first.story_id)
            later = session.get(Story, then.story_id)
            item = session.exec(select(Item).where(Item.guid == "filing")).one()
    finally:
        engine.dispose()
    assert earlier is not None and later is not None
    assert (earlier.outlet, earlier.follows_id) == ("Pan-Africa Wire", None)
    assert (later.outlet, later.follows_id) == ("", first.story_id)
    assert item.outlet == "Pan-Africa Wire"


def test_buttons_callback_data_is_read_strictly() -> None:
    assert parse("a:cov:12") == Press("cov", 12)
    assert parse("a:fb:12:known") == Press("fb", 12, "known")
    assert parse("a:fb:12") == Press("fb", 12)
    assert parse("a:unmute:12") == Press("unmute", 12)
    for forged in ("a:fb:12:spam", "a:cov:x", "a:mute:1:2", "a:unmute:1:2", "set:s:1", "a:cov:",
                   None, ""):  # fmt: skip
        assert parse(forged) is None, forged


# -- threads ----------------------------------------------------------------------------


async def test_a_follow_up_is_sent_as_a_reply_to_the_chats_alert(
    engine: Engine, ptb_app: App, bot_api: BotApiServer
) -> None:
    subscribe_chats(engine, [411, 412])
    first = icj(engine)
    clock = Clock(T0 + timedelta(minutes=30))
    await deliverer(engine, ptb_app, clock).drain()
    follow = refusal(engine, first.story_id)  # a later cycle
    clock.advance(hours=2)
    await deliverer(engine, ptb_app, clock).drain()
    for chat in (411, 412):
        alert = alert_of(bot_api, engine, first.story_id, chat)
        reply = alert_of(bot_api, engine, follow.story_id, chat)
        assert alert.reply_to is None
        assert reply.reply_to == alert.message_id  # each chat's own alert
        assert delivery(engine, follow.story_id, chat).reply_to == alert.message_id  # recorded
        sent_as = json.loads(reply.params["reply_parameters"])  # form-encoded, as PTB sends it
        assert sent_as["allow_sending_without_reply"] is True


async def test_a_follow_up_of_the_same_cycle_waits_for_its_alert_and_replies_to_it(
    engine: Engine, ptb_app: App, bot_api: BotApiServer
) -> None:
    subscribe_chats(engine, [421])
    first = icj(engine)
    follow = refusal(engine, first.story_id)  # both queued before either is sent
    clock = Clock(T0 + timedelta(hours=2, minutes=1))
    await deliverer(engine, ptb_app, clock).drain()
    alert = alert_of(bot_api, engine, first.story_id, 421)
    reply = alert_of(bot_api, engine, follow.story_id, 421)
    assert reply.reply_to == alert.message_id
    assert [m.message_id for m in bot_api.sent(421)] == [alert.message_id, reply.message_id]


def test_a_follow_up_waits_for_an_alert_another_process_is_sending(engine: Engine) -> None:
    subscribe_chats(engine, [431])
    first = icj(engine)
    follow = refusal(engine, first.story_id)
    row = delivery(engine, follow.story_id, 431)
    assert row.id is not None
    thread = alerts.thread_of(engine, row.id, now=T0 + timedelta(hours=2, minutes=1))
    assert (thread.wait_for, thread.young, thread.reply_to) == (first.story_id, True, None)
    late = alerts.thread_of(engine, row.id, now=T0 + timedelta(hours=3))
    assert late.young is False  # then it goes out alone rather than wait for ever


# -- coverage edits ---------------------------------------------------------------------


class CrashAfterEdit:
    """A sender whose process dies right after Telegram made an edit."""

    def __init__(self, real: TelegramSender) -> None:
        self.real = real

    async def send(self, *args: object, **kwargs: object) -> Outcome:  # pragma: no cover
        raise AssertionError("no sends here")

    async def edit(self, *args: object, **kwargs: object) -> Outcome:
        await self.real.edit(*args, **kwargs)  # type: ignore[arg-type]
        raise RuntimeError("killed before the edit was recorded")


async def test_an_alert_is_edited_when_other_outlets_join_within_bounds(
    engine: Engine, ptb_app: App, bot_api: BotApiServer
) -> None:
    subscribe_chats(engine, [441])
    first = icj(engine)
    clock = Clock(T0 + timedelta(minutes=1))
    sender = sender_for(ptb_app)
    editor = CoverageEditor(engine, sender, owner=make_owner(), clock=clock)
    await Deliverer(engine, sender, owner=make_owner(), policy=QUICK, clock=clock).drain()
    alert = alert_of(bot_api, engine, first.story_id, 441)
    assert "Also reported by" not in alert.plain
    assert await editor.run_once() == 0  # nothing new

    joins(engine, first, "lemonde-1", "Le Monde Afrique", 0.1)
    clock.advance(seconds=30)
    assert await editor.run_once() == 0  # settling: not within a minute of the send
    clock.advance(seconds=40)
    assert await editor.run_once() == 1
    [edit] = bot_api.edits(441, alert.message_id)
    assert "Also reported by 1 outlet: Le Monde Afrique" in edit.plain
    assert bot_api.buttons(441, alert.message_id)[0][0][1] == f"a:cov:{first.story_id}"
    row = delivery(engine, first.story_id, 441)
    assert (row.edits, row.outlets_shown, row.lease_owner) == (1, 1, None)
    assert await editor.run_once() == 0

    joins(engine, first, "lemonde-2", "Le Monde Afrique", 0.2)  # an outlet already named
    clock.advance(minutes=2)
    assert await editor.run_once() == 1
    assert len(bot_api.edits(441, alert.message_id)) == 1  # no edit: nothing would change
    row = delivery(engine, first.story_id, 441)
    assert (row.edits, row.outlets_shown) == (1, 2)

    joins(engine, first, "rfi", "RFI", 0.3)
    clock.advance(minutes=2)
    assert await editor.run_once() == 1
    edits = bot_api.edits(441, alert.message_id)
    assert "Also reported by 2 outlets: Le Monde Afrique, RFI" in edits[-1].plain

    # killed right after Telegram made the edit: the lease expires, the edit is repeated,
    # Telegram says "not modified", and it is not counted twice
    joins(engine, first, "ja", "Jeune Afrique", 0.4)
    clock.advance(minutes=2)
    crashing = CoverageEditor(engine, CrashAfterEdit(sender), owner="dead", clock=clock)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):
        await crashing.run_once()
    assert len(bot_api.edits(441, alert.message_id)) == 3
    assert await editor.run_once() == 0  # leased by the dead editor
    clock.advance(seconds=31)
    assert await editor.run_once() == 1
    assert len(bot_api.edits(441, alert.message_id)) == 3
    row = delivery(engine, first.story_id, 441)
    assert (row.edits, row.outlets_shown) == (2, 4)

    joins(engine, first, "afp", "AFP", 0.5)
    clock.advance(minutes=2)
    assert await editor.run_once() == 1  # the third and last edit
    joins(engine, first, "reuters", "Reuters", 0.6)
    clock.advance(minutes=2)
    assert await editor.run_once() == 0
    row = delivery(engine, first.story_id, 441)
    assert row.edits == EditPolicy().max_edits == 3
    assert "Also reported by 4 outlets: " in bot_api.edits(441, alert.message_id)[-1].plain
    assert editor.edited == 3


async def test_an_edit_keeps_the_chats_choice_of_no_link_preview(
    engine: Engine, ptb_app: App, bot_api: BotApiServer
) -> None:
    subscribe_chats(engine, [447, 448])
    chat_settings.change(engine, Chat(448), link_previews=False)
    first = icj(engine)
    clock = Clock(T0 + timedelta(minutes=1))
    sender = sender_for(ptb_app)
    await Deliverer(engine, sender, owner=make_owner(), policy=QUICK, clock=clock).drain()
    assert alert_of(bot_api, engine, first.story_id, 448).preview_disabled
    joins(engine, first, "lemonde", "Le Monde Afrique", 0.1)
    clock.advance(minutes=2)
    assert await CoverageEditor(engine, sender, owner=make_owner(), clock=clock).run_once() == 2
    [with_preview] = bot_api.edits(447)
    [without] = bot_api.edits(448)
    assert json.loads(without.params["link_preview_options"]) == {"is_disabled": True}
    assert json.loads(with_preview.params["link_preview_options"]) == {"prefer_small_media": True}


async def test_alerts_older_than_the_horizon_are_not_edited(
    engine: Engine, ptb_app: App, bot_api: BotApiServer
) -> None:
    subscribe_chats(engine, [443])
    first = icj(engine)
    clock = Clock(T0 + timedelta(minutes=1))
    sender = sender_for(ptb_app)
    await Deliverer(engine, sender, owner=make_owner(), policy=QUICK, clock=clock).drain()
    joins(engine, first, "late", "Le Monde Afrique", 50)  # two days and more later
    clock.advance(hours=50)
    editor = CoverageEditor(engine, sender, owner=make_owner(), clock=clock)
    assert await editor.run_once() == 0
    assert bot_api.edits(443) == []
    nearer = CoverageEditor(
        engine, sender, owner=make_owner(), clock=clock, policy=EditPolicy(horizon=3 * 86_400)
    )
    assert await nearer.run_once() == 1  # within a longer horizon it would have been


async def test_the_editor_runs_beside_the_deliverer_and_stops_with_it(
    engine: Engine, ptb_app: App, bot_api: BotApiServer
) -> None:
    subscribe_chats(engine, [445])
    first = icj(engine)
    clock = Clock(T0 + timedelta(minutes=1))
    patient = Policy(idle_poll=0.05, grace=5.0)
    worker = Deliverer(engine, sender_for(ptb_app), owner=make_owner(), policy=patient,
                       clock=clock)  # fmt: skip
    assert worker.editor is not None
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    await wait_until(lambda: delivery(engine, first.story_id, 445).state == "sent")
    joins(engine, first, "lemonde", "Le Monde Afrique", 0.1)
    clock.advance(minutes=2)
    worker.wake()  # as the poll job does after a cycle
    await wait_until(lambda: len(bot_api.edits(445)) == 1)
    stop.set()
    await asyncio.wait_for(running, timeout=2.0)  # not the editor's 5 s interval, nor grace


def news_feed(items: list[tuple[str, str, str, datetime]]) -> bytes:
    """An aggregator's feed (Google News' shape): each headline ends with " - Outlet" and
    names its outlet in <source>. Items: (guid, headline, outlet, published)."""
    parts = []
    for guid, headline, outlet, when in items:
        parts.append(
            f"<item><title>{html.escape(headline)} - {html.escape(outlet)}</title>"
            f"<link>https://news.test/articles/{guid}</link>"
            f'<guid isPermaLink="false">{guid}</guid>'
            f"<pubDate>{format_datetime(when, usegmt=True)}</pubDate>"
            "<description>Algeria will not consent to the International Court of Justice "
            "hearing Mali's case over the drone, its foreign ministry said.</description>"
            f'<source url="https://{guid}.test">{html.escape(outlet)}</source></item>'
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        "<title>News aggregator</title><link>https://news.test/</link>"
        "<description>Top stories</description>" + "".join(parts) + "</channel></rss>"
    ).encode()


async def test_a_poll_cycle_that_finds_another_outlet_edits_the_sent_alert(
    engine: Engine,
    database_url: str,
    ptb_app: App,
    bot_api: BotApiServer,
    feed_server: FeedServer,
    tmp_path: Path,
) -> None:
    """Through the pipeline: the outlet comes from <source>, and the same headline from
    another outlet in a later cycle joins the story and is added to the sent alert."""
    headline = "Algeria refuses ICJ jurisdiction in Mali drone case"
    published = datetime.now(UTC) - timedelta(hours=2)
    url = feed_server.add("/news.xml", news_feed([("lm", headline, "Le Monde", published)]))
    settings = pipeline_settings(tmp_path, database_url, [("Aggregator", url)])
    subscribe_chats(engine, [471])

    async def poll() -> None:
        pipeline = Pipeline.create(settings, engine)
        try:
            await pipeline.run_cycle(force=True)
        finally:
            await pipeline.aclose()

    await poll()
    sender = sender_for(ptb_app)
    await Deliverer(engine, sender, owner=make_owner(), policy=QUICK).drain()
    [alert] = bot_api.sent(471)
    title, byline = alert.plain.splitlines()[:2]
    assert title == headline  # without " - Le Monde"
    assert byline.startswith("Le Monde · ")  # the outlet, not the feed ("Aggregator")

    later = [("rfi", headline, "RFI", published + timedelta(minutes=20))]
    feed_server.set_body("/news.xml", news_feed([("lm", headline, "Le Monde", published), *later]))
    await poll()
    with Session(engine) as session:
        joined = session.exec(select(Item).where(Item.guid == "rfi")).one()
    assert (joined.decision, joined.outlet) == ("duplicate", "RFI")
    editor = CoverageEditor(engine, sender, owner=make_owner(),
                            clock=Clock(datetime.now(UTC) + timedelta(minutes=2)))  # fmt: skip
    assert await editor.run_once() == 1
    [edit] = bot_api.edits(471, alert.message_id)
    assert "Also reported by 1 outlet: RFI" in edit.plain


# -- buttons: mute, coverage, "Not news?" ---------------------------------------------------


async def test_buttons_mute_show_coverage_and_take_feedback(
    engine: Engine, running_bot: App, bot_api: BotApiServer
) -> None:
    subscribe_chats(engine, [451, 452])
    first = icj(engine)
    joins(engine, first, "lemonde", "Le Monde Afrique", 0.5)
    clock = Clock(T0 + timedelta(hours=1))
    sender = sender_for(running_bot)
    await Deliverer(engine, sender, owner=make_owner(), policy=QUICK, clock=clock).drain()
    muted_alert = alert_of(bot_api, engine, first.story_id, 451)
    alert = alert_of(bot_api, engine, first.story_id, 452)

    query = bot_api.press(451, muted_alert.message_id, data=f"a:mute:{first.story_id}")
    answer = await answered(bot_api, query)
    assert answer.text == "Muted: no follow-ups or updates of this story will reach this chat."
    with Session(engine) as session:
        assert len(session.exec(select(StoryMute)).all()) == 1
    await asyncio.to_thread(bot_api.wait_edits, 451, muted_alert.message_id)  # now "Unmute"
    again = await answered(  # the keyboard as it was before, pressed again
        bot_api,
        bot_api.press(451, muted_alert.message_id, data=f"a:mute:{first.story_id}", check=False),
    )
    assert again.text == "This story is already muted here."

    follow = refusal(engine, first.story_id)
    joins(engine, first, "rfi", "RFI", 2.5)
    clock.advance(hours=2)
    await Deliverer(engine, sender, owner=make_owner(), policy=QUICK, clock=clock).drain()
    assert delivery(engine, follow.story_id, 451).state == "skipped"  # muted saga
    assert alert_of(bot_api, engine, follow.story_id, 452).reply_to == alert.message_id
    editor = CoverageEditor(engine, sender, owner=make_owner(), clock=clock)
    assert await editor.run_once() == 1  # only the chat that did not mute it
    [turned] = bot_api.edits(451)  # only its buttons, by the mute
    assert turned.method == "editmessagereplymarkup"
    assert len(bot_api.edits(452, alert.message_id)) == 1

    before = len(bot_api.sent(452))
    query = bot_api.press(452, alert.message_id, text="All coverage")
    await answered(bot_api, query)
    [coverage] = (await asyncio.to_thread(bot_api.wait_sent, 452, before + 1))[before:]
    assert coverage.reply_to == alert.message_id
    lines = coverage.plain.splitlines()
    assert lines[0] == "Coverage of this story: 3 reports"
    assert lines[1:] == [  # both languages, oldest first, with outlets and times
        "• Mali files ICJ case against Algeria over drone",
        "  Pan-Africa Wire · 20 Apr 2025, 09:00 UTC · EN",
        "• Le Mali saisit la CIJ (Le Monde Afrique)",
        "  Le Monde Afrique · 20 Apr 2025, 09:30 UTC · FR",
        "• Le Mali saisit la CIJ (RFI)",
        "  RFI · 20 Apr 2025, 11:30 UTC · FR",
    ]

    query = bot_api.press(452, alert.message_id, text="Not news?")
    await answered(bot_api, query)
    [question] = (await asyncio.to_thread(bot_api.wait_sent, 452, before + 2))[before + 1 :]
    assert question.reply_to == alert.message_id
    assert buttons(question) == [
        f"a:fb:{first.story_id}:irrelevant",
        f"a:fb:{first.story_id}:known",
    ]
    thanks = bot_api.press(452, question.message_id, text="I knew it already")
    assert (await answered(bot_api, thanks)).text == "Thank you."
    [edit] = await asyncio.to_thread(bot_api.wait_edits, 452, question.message_id)
    assert edit.plain == "Thank you: noted as already known."
    with Session(engine) as session:
        [feedback] = session.exec(select(Feedback)).all()
        item_id = session.exec(
            select(Item.id).where(Item.story_id == first.story_id, Item.decision == "new")
        ).one()
    assert (feedback.story_id, feedback.chat_id, feedback.verdict) == (
        first.story_id, 452, "known",
    )  # fmt: skip
    assert feedback.item_id == item_id


async def test_only_a_groups_administrators_mute_a_story_for_it(
    engine: Engine, running_bot: App, bot_api: BotApiServer
) -> None:
    group = -1004711
    subscribe_chats(engine, [group], chat_type="supergroup")
    bot_api.set_admins(group, [900])
    first = icj(engine)
    await deliverer(engine, running_bot, Clock(T0 + timedelta(hours=1))).drain()
    alert = alert_of(bot_api, engine, first.story_id, group)
    refused = await answered(
        bot_api, bot_api.press(group, alert.message_id, text="Mute this story", user_id=901)
    )
    assert refused.text == admins.refusal(Voice("en")) and refused.show_alert
    with Session(engine) as session:
        assert session.exec(select(StoryMute)).all() == []
    done = await answered(
        bot_api, bot_api.press(group, alert.message_id, text="Mute this story", user_id=900)
    )
    assert done.text == "Muted: no follow-ups or updates of this story will reach this chat."
    coverage = await answered(
        bot_api, bot_api.press(group, alert.message_id, text="All coverage", user_id=901)
    )
    assert coverage.text is None  # anyone may read the coverage
    with Session(engine) as session:
        assert len(session.exec(select(StoryMute)).all()) == 1


def labels(markup: dict[str, object] | None) -> list[str]:
    rows = (markup or {}).get("inline_keyboard", [])
    return [b["text"] for row in rows for b in row]  # type: ignore[attr-defined, union-attr]


async def test_a_muted_alert_offers_to_unmute_and_unmuting_lets_follow_ups_through(
    engine: Engine, running_bot: App, bot_api: BotApiServer
) -> None:
    subscribe_chats(engine, [456])
    first = icj(engine)
    clock = Clock(T0 + timedelta(hours=1))
    await deliverer(engine, running_bot, clock).drain()
    alert = alert_of(bot_api, engine, first.story_id, 456)
    story = first.story_id

    await answered(bot_api, bot_api.press(456, alert.message_id, text="Mute this story"))
    [edit] = await asyncio.to_thread(bot_api.wait_edits, 456, alert.message_id)
    assert edit.method == "editmessagereplymarkup" and edit.plain == alert.plain
    assert labels(edit.reply_markup) == ["All coverage", "Unmute this story", "Not news?"]
    assert [d for row in bot_api.buttons(456, alert.message_id) for _, d in row] == [
        f"a:cov:{story}", f"a:unmute:{story}", f"a:fb:{story}",
    ]  # fmt: skip

    stale = await answered(bot_api, bot_api.press(456, alert.message_id, data=f"a:mute:{story}",
                                                   check=False))  # fmt: skip
    assert stale.text == "This story is already muted here."  # the keyboard already says so
    assert len(bot_api.edits(456, alert.message_id)) == 1

    unmuted = await answered(
        bot_api, bot_api.press(456, alert.message_id, text="Unmute this story")
    )
    assert unmuted.text == (
        "Unmuted: follow-ups and updates of this story will reach this chat again."
    )
    with Session(engine) as session:
        assert session.exec(select(StoryMute)).all() == []
    [_, back] = await asyncio.to_thread(bot_api.wait_edits, 456, alert.message_id, count=2)
    assert labels(back.reply_markup) == ["All coverage", "Mute this story", "Not news?"]
    again = await answered(bot_api, bot_api.press(456, alert.message_id, data=f"a:unmute:{story}",
                                                  check=False))  # fmt: skip
    assert again.text == "This story is not muted here."

    follow = refusal(engine, story)
    clock.advance(hours=2)
    await deliverer(engine, running_bot, clock).drain()
    assert alert_of(bot_api, engine, follow.story_id, 456).reply_to == alert.message_id


async def test_coverage_edits_wait_while_a_story_is_muted_and_resume_when_unmuted(
    engine: Engine, running_bot: App, bot_api: BotApiServer
) -> None:
    subscribe_chats(engine, [457])
    first = icj(engine)
    clock = Clock(T0 + timedelta(hours=1))
    await deliverer(engine, running_bot, clock).drain()
    alert = alert_of(bot_api, engine, first.story_id, 457)
    await answered(bot_api, bot_api.press(457, alert.message_id, text="Mute this story"))
    await asyncio.to_thread(bot_api.wait_edits, 457, alert.message_id)
    joins(engine, first, "lemonde", "Le Monde Afrique", 1.5)
    clock.advance(hours=2)
    editor = CoverageEditor(engine, sender_for(running_bot), owner=make_owner(), clock=clock)
    assert await editor.run_once() == 0  # muted: the alert is left as it is
    await answered(bot_api, bot_api.press(457, alert.message_id, text="Unmute this story"))
    await asyncio.to_thread(bot_api.wait_edits, 457, alert.message_id, count=2)
    assert await editor.run_once() == 1  # the outlet that joined meanwhile
    edit = bot_api.edits(457, alert.message_id)[-1]
    assert edit.method == "editmessagetext"
    assert "Also reported by 1 outlet: Le Monde Afrique" in edit.plain
    assert labels(edit.reply_markup) == ["All coverage", "Mute this story", "Not news?"]


async def test_a_french_chat_mutes_and_unmutes_in_french_and_only_admins_unmute_a_group(
    engine: Engine, running_bot: App, bot_api: BotApiServer
) -> None:
    group = -1004712
    subscribe_chats(engine, [group], chat_type="supergroup")
    languages.choose(engine, Chat(group), "fr")
    bot_api.set_admins(group, [900])
    first = icj(engine)
    await deliverer(engine, running_bot, Clock(T0 + timedelta(hours=1))).drain()
    alert = alert_of(bot_api, engine, first.story_id, group)
    fr = translator("fr")
    done = await answered(bot_api, bot_api.press(
        group, alert.message_id, text="Ne plus suivre cette affaire", user_id=900))  # fmt: skip
    assert done.text == fr.gettext(
        "Muted: no follow-ups or updates of this story will reach this chat."
    )
    [edit] = await asyncio.to_thread(bot_api.wait_edits, group, alert.message_id)
    unmute = fr.gettext("Unmute this story")
    assert unmute != "Unmute this story" and unmute in labels(edit.reply_markup)
    refused = await answered(
        bot_api, bot_api.press(group, alert.message_id, text=unmute, user_id=901)
    )
    assert refused.text == admins.refusal(Voice("fr")) and refused.show_alert
    with Session(engine) as session:
        assert len(session.exec(select(StoryMute)).all()) == 1
    await answered(bot_api, bot_api.press(group, alert.message_id, text=unmute, user_id=900))
    with Session(engine) as session:
        assert session.exec(select(StoryMute)).all() == []
    [_, back] = await asyncio.to_thread(bot_api.wait_edits, group, alert.message_id, count=2)
    assert "Ne plus suivre cette affaire" in labels(back.reply_markup)


async def test_a_forged_or_stale_button_changes_nothing(
    engine: Engine, running_bot: App, bot_api: BotApiServer
) -> None:
    subscribe_chats(engine, [461])
    first = icj(engine)
    clock = Clock(T0 + timedelta(hours=1))
    await deliverer(engine, running_bot, clock).drain()
    alert = alert_of(bot_api, engine, first.story_id, 461)
    forged = bot_api.press(461, alert.message_id, data="a:fb:999999:known", check=False)
    assert (await answered(bot_api, forged)).text == "This story is no longer stored."
    junk = bot_api.press(461, alert.message_id, data="a:mute:abc", check=False)
    assert (await answered(bot_api, junk)).text is None
    with Session(engine) as session:
        assert session.exec(select(Feedback)).all() == []
        assert session.exec(select(StoryMute)).all() == []
