"""What an alert says about itself (bot/telegram/explain.py), pure: the why-new line, the
buttons, the coverage listing; valid Telegram HTML within the limit whatever a feed sent."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.i18n import Voice
from bot.storage.alerts import Coverage
from bot.telegram.explain import (
    MAX_FOLLOWS,
    feedback_question,
    keyboard,
    parse,
    render_coverage,
    why_line,
)
from bot.telegram.render import MAX_LENGTH, render_alert
from tests.servers.tg_html import parse as parse_html
from tests.test_render import check, story

WHEN = datetime(2025, 9, 5, 13, 0, tzinfo=UTC)
EN, FR = Voice("en"), Voice("fr", "Africa/Algiers")


def test_why_line_names_the_reader_topics_and_the_story_followed() -> None:
    assert why_line(("security",), None, EN) == "🏷 Security · first report of this development"
    assert why_line(("justice", "diplomacy"), None, EN) == (
        "🏷 Algeria–AES relations · first report of this development"
    )
    assert why_line((), "Mali <files> & more", EN) == "follows up “Mali &lt;files&gt; &amp; more”"
    long = why_line((), "word " * 100, EN)
    assert len(long) < MAX_FOLLOWS + 20 and long.endswith("…”")
    assert why_line(("security",), None, FR) == ("🏷 Sécurité · premier article sur ce fait nouveau")


def test_buttons_carry_the_story_in_data_telegram_accepts() -> None:
    story_id = 10**15  # a big id still fits Telegram's 64 bytes
    data = [b.callback_data for row in keyboard(story_id, EN).inline_keyboard for b in row]
    data += [
        b.callback_data for row in feedback_question(story_id, EN)[1].inline_keyboard for b in row
    ]
    for value in data:
        assert isinstance(value, str) and len(value.encode()) <= 64
        assert parse(value) is not None
    texts = [b.text for row in keyboard(1, FR).inline_keyboard for b in row]
    assert texts == [
        "Toute la couverture",
        "Ne plus suivre cette affaire",
        "Pas une nouvelle\u00a0?",  # French typography: a no-break space before "?"
    ]


def test_coverage_lists_each_report_with_its_outlet_time_and_language() -> None:
    items = [
        Coverage("Mali files ICJ case", "Wire", "https://wire.test/a", "en", WHEN),
        Coverage("Le Mali saisit la CIJ", "", "https://afrique.test/b", "fr", WHEN),
    ]
    [message] = render_coverage(items, FR)
    plain, links = parse_html(message)
    assert plain.splitlines() == [
        "Couverture de cette affaire\u00a0: 2 articles",
        "• Mali files ICJ case",
        "  Wire · 5 sept. 2025, 14:00 UTC+1 · EN",
        "• Le Mali saisit la CIJ",
        f"  {FR.gettext('unknown outlet')} · 5 sept. 2025, 14:00 UTC+1 · FR",
    ]
    assert [link.href for link in links] == ["https://wire.test/a", "https://afrique.test/b"]
    assert render_coverage([], EN) == ["This story has no stored coverage."]


_ANY = st.text(st.characters(), max_size=3000)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(
        st.tuples(_ANY, st.text(max_size=300), st.text(max_size=3000), st.text(max_size=20)),
        max_size=40,
    ),
    follows=st.none() | _ANY,
    topics=st.lists(st.text(max_size=20), max_size=8),
)
def test_any_coverage_and_any_alert_explained_are_valid_telegram_html(
    rows: list[tuple[str, str, str, str]], follows: str | None, topics: list[str]
) -> None:
    items = [Coverage(title, outlet, link, lang, WHEN) for title, outlet, link, lang in rows]
    for message in render_coverage(items, EN):
        assert len(message) <= MAX_LENGTH
        check(message)
    explained = why_line(tuple(topics), follows, FR)
    check(render_alert(story(title=follows or "x"), v=FR, explain=explained))
