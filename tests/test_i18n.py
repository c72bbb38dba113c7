"""French and English: the catalogs are complete and compiled, dates speak the chat's
language and time zone, and a French reader's whole journey through the Bot API test server
is in French (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import gettext
import re
import tomllib
import zoneinfo
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.delivery.worker import Deliverer
from bot.i18n import Voice, catalog, chat_language, dates, translator
from bot.i18n.dates import ago, when, when_ago
from bot.owners import make_owner
from bot.storage.models import Subscriber
from bot.telegram import language, replies
from bot.telegram.app import App, sender_for
from tests.servers.bot_api import BotApiServer, Limits, SentMessage
from tests.servers.bot_fixtures import wait_until

NBSP = "\u00a0"


def text(message: SentMessage) -> str:
    """What a client shows, French no-break spaces as plain ones (for readable asserts)."""
    return message.plain.replace(NBSP, " ")


# -- the catalogs -----------------------------------------------------------------------


def test_every_string_of_the_code_has_a_french_translation_and_the_mo_is_compiled() -> None:
    """`python -m bot.i18n.catalog --check`: nothing missing, fuzzy, broken or stale."""
    assert catalog.check() == []


def test_the_shipped_mo_is_the_po_compiled() -> None:
    with catalog.po_path("fr").open("rb") as file:
        po = read_po(file, locale="fr")
    compiled = gettext.GNUTranslations(BytesIO(catalog.mo_bytes(po)))
    shipped = gettext.GNUTranslations(BytesIO(catalog.mo_path("fr").read_bytes()))
    assert shipped._catalog == compiled._catalog  # type: ignore[attr-defined]
    assert len(shipped._catalog) > 100  # type: ignore[attr-defined]


TAG = re.compile(r"</?[a-z]+[^>]*>")


def test_translations_keep_the_html_tags_and_placeholders_of_the_english() -> None:
    """A translation may reword, never drop a <b> or a %(name)s (Telegram refuses broken
    HTML; a missing placeholder loses a value)."""
    with catalog.po_path("fr").open("rb") as file:
        po = read_po(file, locale="fr")
    checked = 0
    for message in po:
        if not message.id:
            continue
        sources = message.id if isinstance(message.id, tuple) else (message.id,)
        targets = message.string if isinstance(message.string, tuple) else (message.string,)
        tags = sorted(TAG.findall(sources[-1]))
        names = set(PLACEHOLDER.findall(sources[-1]))
        for target in targets:
            assert sorted(TAG.findall(target)) == tags, message.id
            found = set(PLACEHOLDER.findall(target))
            # a plural's singular may say "the latest" for "the latest %(count)d"
            assert found <= names if message.pluralizable else found == names, message.id
            checked += 1
    assert checked > 100


PLACEHOLDER = re.compile(r"%\(([a-z_]+)\)[sd]")


def test_the_compiled_catalogs_are_package_data() -> None:
    """pyproject.toml ships every .mo (a wheel without them would speak only English)."""
    project = tomllib.loads((catalog.ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = project["tool"]["setuptools"]["package-data"]["bot"]
    package = catalog.ROOT / "bot"
    shipped = {path for pattern in patterns for path in package.glob(pattern)}
    assert catalog.mo_path("fr") in shipped


def test_extraction_finds_gettext_calls_and_marked_strings() -> None:
    found = {m.id for m in catalog.extract() if m.id}
    assert "How to use the bot" in found  # N_() in the COMMANDS table
    assert "Sahel Watch commands" in found  # v.gettext()
    assert ("Latest %(count)d development", "Latest %(count)d developments") in found


def test_check_reports_a_string_the_catalog_lacks(monkeypatch: pytest.MonkeyPatch) -> None:
    real = catalog.extract

    def more() -> object:
        template = real()
        template.add("A sentence nobody translated", None, [("bot/x.py", 1)])
        return template

    monkeypatch.setattr(catalog, "extract", more)
    assert "fr: not in the .po: 'A sentence nobody translated'" in catalog.check()


def test_the_refresh_command_checks_and_says_where_it_must_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert catalog.main(["--check"]) == 0
    monkeypatch.setattr(catalog, "CONFIG", tmp_path / "babel.cfg")
    assert catalog.main([]) == 2
    assert "run this in a checkout of the repository" in capsys.readouterr().err


def test_translator_and_chat_language() -> None:
    assert chat_language("fr") == chat_language("fr-CA") == chat_language("FR_be") == "fr"
    assert chat_language("en-GB") == chat_language("ar") == chat_language(None) == "en"
    assert translator("fr").gettext("How to use the bot") == "Comment utiliser le bot"
    assert translator("en").gettext("How to use the bot") == "How to use the bot"
    assert translator("de").gettext("How to use the bot") == "How to use the bot"
    fr = translator("fr")
    assert (
        fr.ngettext("%(count)d new development", "%(count)d new developments", 1) % {"count": 1}
        == "1 fait nouveau"
    )
    assert (
        fr.ngettext("%(count)d new development", "%(count)d new developments", 0) % {"count": 0}
        == "0 fait nouveau"
    )  # French counts zero as singular
    assert (
        fr.ngettext("%(count)d new development", "%(count)d new developments", 3) % {"count": 3}
        == "3 faits nouveaux"
    )


# -- dates ------------------------------------------------------------------------------

MOMENT = datetime(2025, 4, 7, 14, 30, tzinfo=UTC)


def test_dates_in_the_chats_language_and_time_zone() -> None:
    assert when(MOMENT) == "7 Apr 2025, 14:30 UTC"
    assert when(MOMENT, language="fr") == "7 avr. 2025, 14:30 UTC"
    assert when(MOMENT, language="fr", timezone="Africa/Algiers") == "7 avr. 2025, 15:30 UTC+1"
    assert when(MOMENT, timezone="Asia/Kolkata") == "7 Apr 2025, 20:00 UTC+5:30"
    assert when(MOMENT, timezone="America/Caracas") == "7 Apr 2025, 10:30 UTC-4"
    assert when(MOMENT, timezone="Mars/Olympus") == "7 Apr 2025, 14:30 UTC"  # unknown: UTC
    later = MOMENT + timedelta(hours=2, minutes=5)
    assert ago(MOMENT, later) == "2 hr. ago"
    assert ago(MOMENT, later, language="fr") == f"il y a 2{NBSP}h"
    assert ago(MOMENT, MOMENT + timedelta(days=3), language="fr") == f"il y a 3{NBSP}j"
    assert when_ago(MOMENT, later, language="fr", timezone="Africa/Niamey") == (
        f"7 avr. 2025, 15:30 UTC+1 (il y a 2{NBSP}h)"
    )
    assert Voice("fr-FR", "Africa/Bamako").when_ago(MOMENT, later) == (
        f"7 avr. 2025, 14:30 UTC (il y a 2{NBSP}h)"
    )


def test_zones_are_known_where_the_system_has_no_zone_files() -> None:
    """A minimal base image may lack /usr/share/zoneinfo: the tzdata package stands in."""
    zoneinfo.reset_tzpath(to=[])
    zoneinfo.ZoneInfo.clear_cache()
    dates.zone.cache_clear()
    try:
        assert when(MOMENT, timezone="Africa/Algiers") == "7 Apr 2025, 15:30 UTC+1"
    finally:
        zoneinfo.reset_tzpath()
        zoneinfo.ZoneInfo.clear_cache()
        dates.zone.cache_clear()


def test_language_words() -> None:
    assert [language.parse_language(w) for w in ("fr", "FR", "français", "Francais", "en")] == [
        "fr", "fr", "fr", "fr", "en",
    ]  # fmt: skip
    assert language.parse_language("klingon") is None


def test_every_command_answers_to_its_french_alias() -> None:
    assert replies.command("aide").name == "help"
    assert replies.command("dernieres").name == "latest"
    assert replies.command("arreter").name == "unsubscribe"
    assert replies.slash("latest", Voice("fr")) == "/dernieres"
    assert replies.slash("latest", Voice("en")) == "/latest"
    french = [name for name, _about in replies.menu("fr")]
    assert len(set(french)) == len(french)


# -- a French reader, end to end ----------------------------------------------------------


@pytest.fixture(autouse=True)
def _typing_fast(bot_api: BotApiServer) -> None:
    bot_api.set_limits(Limits(chat_burst=50))


async def ask(server: BotApiServer, chat_id: int, words: str, **options: object) -> SentMessage:
    before = len(server.sent(chat_id))
    server.send_text(chat_id, words, **options)  # type: ignore[arg-type]
    messages = await asyncio.to_thread(server.wait_sent, chat_id, before + 1, 10.0)
    return messages[before]


def language_of(engine: Engine, chat_id: int) -> tuple[str, bool] | None:
    with Session(engine) as session:
        row = session.exec(select(Subscriber).where(Subscriber.chat_id == chat_id)).first()
        return None if row is None else (row.language, row.language_chosen)


async def test_a_french_readers_journey_is_in_french(
    running_bot: App, bot_api: BotApiServer, engine: Engine, add_story: Callable[..., int]
) -> None:
    reader = 901
    welcome = await ask(bot_api, reader, "/start", language_code="fr")
    assert text(welcome).startswith(
        "Sahel Watch envoie une courte alerte quand l’actualité va au-delà de l’affaire"
    )
    assert "✅ Cette discussion est maintenant abonnée." in text(welcome)
    assert "/dernieres montre les faits nouveaux récents" in text(welcome)
    assert language_of(engine, reader) == ("fr", False)

    aide = await ask(bot_api, reader, "/aide", language_code="fr")
    assert text(aide).startswith("Commandes de Sahel Watch\n/start — Abonner cette discussion")
    assert "/dernieres — Les faits nouveaux les plus récents : /dernieres [1-20]" in text(aide)
    assert "/langue — Choisir la langue du bot : anglais ou français" in text(aide)

    empty = await ask(bot_api, reader, "/dernieres", language_code="fr")
    assert text(empty) == (
        "Pas encore de fait nouveau. Vous recevrez une alerte ici dès qu’il y en aura un."
    )
    now = datetime.now(UTC)
    for n in range(2):
        add_story(
            title=f"Le Mali saisit la CIJ, étape {n}",
            link=f"https://wire.test/fr/{n}",
            published=now - timedelta(hours=3 - n),
            created_at=now - timedelta(hours=3 - n),
            deliver=False,
        )
    latest = await ask(bot_api, reader, "/dernieres", language_code="fr")
    assert text(latest).startswith(
        "Les 2 derniers faits nouveaux\n\nLe Mali saisit la CIJ, étape 1"
    )
    assert "(il y a 2 h)" in text(latest) and "(il y a 3 h)" in text(latest)
    assert "UTC" in text(latest)

    # an alert reaches the chat in French: labels, date, buttons
    add_story(title="Le Mali saisit la CIJ", link="https://wire.test/fr/icj",
              published=datetime(2025, 4, 7, 14, 30, tzinfo=UTC),
              also=[("RFI", "https://rfi.test/icj")])  # fmt: skip
    sender = sender_for(running_bot)
    await Deliverer(engine, sender, owner=make_owner()).drain()
    alert = bot_api.sent(reader)[-1]
    assert "Le Mali saisit la CIJ" in text(alert)
    assert "7 avr. 2025, 14:30 UTC" in text(alert)
    assert "Également rapporté par" in text(alert)
    buttons = [b["text"] for row in (alert.reply_markup or {})["inline_keyboard"] for b in row]
    assert "Toute la couverture" in buttons and "All coverage" not in buttons

    wrong = await ask(bot_api, reader, "/dernieres abc", language_code="fr")
    assert text(wrong) == (
        "« abc » n’est pas un nombre de 1 à 20. Essayez /dernieres pour les 5 faits nouveaux "
        "les plus récents, ou /dernieres 10."
    )
    statut = await ask(bot_api, reader, "/statut", language_code="fr")
    assert text(statut).startswith(
        "État\nCette discussion : ✅ abonnée\nDernière interrogation : jamais"
    )
    unknown = await ask(bot_api, reader, "/bonjour", language_code="fr")
    assert text(unknown) == "Je ne connais pas /bonjour. /aide liste ce que je sais faire."

    english = await ask(bot_api, reader, "/langue en", language_code="fr")
    assert text(english) == "✅ From now on this chat is in English."
    assert language_of(engine, reader) == ("en", True)
    helped = await ask(bot_api, reader, "/aide", language_code="fr")  # the choice stays
    assert text(helped).startswith("Sahel Watch commands\n/start — Subscribe this chat")

    menu = await ask(bot_api, reader, "/language", language_code="fr")
    assert text(menu) == "Choose the language of this chat (now: English)."
    assert bot_api.buttons(reader, menu.message_id) == [
        [("English", "lang:en"), ("Français", "lang:fr")]
    ]
    query = bot_api.press(reader, menu.message_id, text="Français", language_code="fr")
    await asyncio.to_thread(bot_api.wait_answer, query)
    await asyncio.to_thread(bot_api.wait_edits, reader, menu.message_id)
    edited = bot_api.message(reader, menu.message_id)["text"].replace(NBSP, " ")
    assert edited == "✅ Désormais, cette discussion est en français."
    assert language_of(engine, reader) == ("fr", True)

    def own_menu() -> list[str]:
        return [
            c["command"] for c in bot_api.commands_for(scope={"type": "chat", "chat_id": reader})
        ]

    await wait_until(lambda: own_menu()[:2] == ["start", "dernieres"])  # follows the choice
    bye = await ask(bot_api, reader, "/desabonner", language_code="en")  # chosen: still French
    assert text(bye) == "🔕 Désabonné : plus d’alertes ici. /abonner pour reprendre."

    french_menu = bot_api.commands_for(language_code="fr")
    assert [c["command"] for c in french_menu][:3] == ["start", "dernieres", "statut"]
    assert french_menu[1]["description"].replace(NBSP, " ") == (
        "Les faits nouveaux les plus récents : /dernieres [1-20]"
    )
    assert bot_api.commands[1] == {
        "command": "latest",
        "description": "The most recent developments: /latest [1-20]",
    }


async def test_an_unchosen_private_chat_follows_its_users_app_and_a_group_keeps_its_own(
    running_bot: App, bot_api: BotApiServer, engine: Engine
) -> None:
    reader, group = 902, -9020
    await ask(bot_api, reader, "/start", language_code="en-US")
    assert language_of(engine, reader) == ("en", False)
    assert text(await ask(bot_api, reader, "/help", language_code="fr")).startswith(
        "Commandes de Sahel Watch"
    )
    assert language_of(engine, reader) == ("fr", False)

    bot_api.set_admins(group, [31])
    subscribed = await ask(bot_api, group, "/subscribe", user_id=31, language_code="fr")
    assert text(subscribed).startswith("✅ Abonné : les faits nouveaux seront envoyés ici.")
    assert language_of(engine, group) == ("fr", False)
    other = await ask(bot_api, group, "/help", user_id=32, language_code="en")
    assert text(other).startswith("Commandes de Sahel Watch")  # a group keeps its language

    # a chat with no subscription speaks its writer's language and stores nothing
    lone = await ask(bot_api, 903, "/id", language_code="fr")
    assert text(lone) == "Identifiant de cette discussion : 903"
    assert language_of(engine, 903) is None
    # a choice made before subscribing holds when the chat subscribes
    await ask(bot_api, 903, "/langue fr", language_code="en")
    assert language_of(engine, 903) == ("fr", True)
    later = await ask(bot_api, 903, "/subscribe", language_code="en")
    assert text(later).startswith("✅ Abonné")
    assert language_of(engine, 903) == ("fr", True)
    wrong = await ask(bot_api, 903, "/langue klingon")
    assert text(wrong) == (
        "« klingon » n’est pas une langue que je parle. Essayez /langue fr ou /langue en."
    )
