"""Alert rendering: valid Telegram HTML (checked with the test server's parser), never too long."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.telegram.render import (
    MAX_LENGTH,
    clean,
    html_to_text,
    pack,
    render_alert,
    render_latest,
    safe_url,
    shorten,
    utf16_len,
)
from bot.telegram.views import Source, StoryView
from tests.servers.tg_html import parse

WHEN = datetime(2025, 9, 5, 13, 0, tzinfo=UTC)


def story(**fields: object) -> StoryView:
    base: dict[str, object] = {
        "story_id": 1,
        "title": "Mali takes Algeria to the ICJ over the drone",
        "link": "https://wire.test/icj?id=1&lang=en",
        "outlet": "Wire EN",
        "published": WHEN,
        "seen": WHEN,
        "summary": (
            "Mali filed a case at the International Court of Justice. Algiers has not replied."
        ),
        "also": (),
    }
    base.update(fields)
    return StoryView(**base)  # type: ignore[arg-type]


def check(message: str) -> tuple[str, list[tuple[str, str]]]:
    """The message is valid Telegram HTML within the limit; its plain text and links."""
    assert utf16_len(message) <= MAX_LENGTH
    plain, links = parse(message)
    message.encode("utf-8")  # no lone surrogates
    return plain, [(link.text, link.href) for link in links]


def test_alert_has_linked_bold_title_outlet_time_and_summary() -> None:
    message = render_alert(story())
    plain, links = check(message)
    assert message.startswith('<b><a href="https://wire.test/icj?id=1&amp;lang=en">')
    assert links[0] == (
        "Mali takes Algeria to the ICJ over the drone",
        "https://wire.test/icj?id=1&lang=en",
    )
    assert "Wire EN · 5 Sep 2025, 13:00 UTC" in plain
    assert (
        "Mali filed a case at the International Court of Justice. Algiers has not replied." in plain
    )


def test_every_feed_string_is_escaped() -> None:
    nasty = story(
        title='<script>alert("x")</script> & <b>AT&T</b>',
        outlet="<i>Le Monde</i> & Co",
        summary="1 < 2 && 3 > 2; &amp; stays literal; \"quotes\" and 'apostrophes'",
        also=(Source('<a href="javascript:x">evil</a>', 'https://ok.test/?q=<>&"'),),
    )
    plain, links = check(render_alert(nasty))
    assert '<script>alert("x")</script> & <b>AT&T</b>' in plain
    assert "<i>Le Monde</i> & Co" in plain
    assert "1 < 2 && 3 > 2; &amp; stays literal; \"quotes\" and 'apostrophes'" in plain
    assert ('<a href="javascript:x">evil</a>', 'https://ok.test/?q=<>&"') in links


@pytest.mark.parametrize(
    "link",
    ["javascript:alert(1)", "ftp://files.test/x", "/relative/path", "data:text/html,x", "",
     "https://", "http://exa mple.test/", "https://x.test/" + "a" * 3000, "tg://resolve?domain=x"],
)  # fmt: skip
def test_only_http_links_become_anchors(link: str) -> None:
    plain, links = check(render_alert(story(link=link, also=(Source("Other", "javascript:x"),))))
    assert links == []
    assert "Mali takes Algeria" in plain and "Other" in plain
    assert safe_url(link) is None


def test_five_thousand_character_summary_is_trimmed_not_the_link() -> None:
    summary = " ".join(f"Sentence {i} says something new about Kidal." for i in range(120))
    assert len(summary) > 5000
    long_link = "https://wire.test/" + "segment/" * 200
    message = render_alert(story(summary=summary, link=long_link))
    plain, links = check(message)
    assert links[0][1] == long_link
    assert utf16_len(message) > MAX_LENGTH - 60  # it used the room it had
    assert "…" in plain and "Sentence 0 says" in plain


def test_emoji_count_double_and_still_fit() -> None:
    emoji = "🛰️🇲🇱🇩🇿🔥" * 600
    message = render_alert(story(title="Drone 🛰 " * 50, summary=emoji, outlet="📰 Outlet"))
    plain, _ = check(message)
    assert "🛰" in plain
    assert utf16_len(message) <= MAX_LENGTH


def test_giant_title_and_also_list_still_fit_with_the_link() -> None:
    sources = tuple(
        Source(f"Outlet {i} " + "&" * 70, f"https://o{i}.test/a?b=1&c=2") for i in range(40)
    )
    message = render_alert(story(title="<&>" * 3000, summary="x " * 3000, also=sources))
    plain, links = check(message)
    assert links[0][1] == "https://wire.test/icj?id=1&lang=en"
    assert plain.startswith("<&>")


def test_also_reported_by_lists_other_outlets_once() -> None:
    sources = (
        Source("Afrique FR", "https://afrique.test/cij"),
        Source("afrique fr", "https://afrique.test/cij-2"),
        Source("Wire EN", "https://wire.test/icj?id=1&lang=en"),  # the story's own link
        *(Source(f"Paper {i}", f"https://p{i}.test/x") for i in range(12)),
    )
    plain, links = check(render_alert(story(also=sources)))
    assert "Also reported by 13 outlets: Afrique FR, Paper 0" in plain
    assert plain.count("Afrique") == 1
    assert "and 3 more" in plain  # 13 distinct, 10 shown
    assert ("Afrique FR", "https://afrique.test/cij") in links


def test_no_publication_date_shows_when_seen() -> None:
    plain, _ = check(render_alert(story(published=None)))
    assert "seen 5 Sep 2025, 13:00 UTC" in plain


def test_control_bidi_and_lone_surrogates_are_dropped() -> None:
    title = "Bamako\x00 \u202egnikaerb\u202c \ud800news\x1b[31m"
    plain, _ = check(render_alert(story(title=title, summary="a\u200bb\r\nc")))
    assert "Bamako gnikaerb news [31m" in plain
    assert clean("  many   spaces\n\tand tabs ") == "many spaces and tabs"


def test_random_hostile_strings_always_render_valid_messages() -> None:
    rng = random.Random(20250401)
    alphabet = ["<", ">", "&", '"', "'", "a", "é", " ", "🛰", "\u202e", "\x00", "&amp;", "<b>", "\n"]

    def junk(n: int) -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, n)))

    for _ in range(200):
        view = story(
            title=junk(300), outlet=junk(200), summary=junk(6000),
            link=rng.choice(["https://a.test/" + junk(50), junk(20), "http://b.test/?x=<&>"]),
            also=tuple(Source(junk(40), "https://c.test/" + junk(30))
                       for _ in range(rng.randint(0, 15))),
        )  # fmt: skip
        check(render_alert(view))


def test_latest_packs_stories_newest_first_into_valid_messages() -> None:
    stories = [
        story(story_id=i, title=f"Development {i}", summary="Detail. " * 200)
        for i in range(20, 0, -1)
    ]
    messages = render_latest(stories)
    assert len(messages) >= 2
    joined = ""
    for message in messages:
        plain, _ = check(message)
        joined += plain
    assert joined.startswith("Latest 20 developments")
    positions = [joined.index(f"Development {i}\n") for i in range(20, 0, -1)]
    assert positions == sorted(positions)


def test_pack_and_shorten() -> None:
    assert pack(["a", "b", "c"], header="H", limit=MAX_LENGTH) == ["H\n\na\n\nb\n\nc"]
    assert pack(["x" * 3000, "y" * 3000]) == ["x" * 3000, "y" * 3000]
    assert shorten("one two three four", 15) == "one two three…"
    assert shorten("abcdefghijklmnop", 8) == "abcdefg…"
    assert shorten("short", 10) == "short"


def test_console_text_spells_out_links() -> None:
    text = html_to_text(render_alert(story(also=(Source("Afrique FR", "https://afrique.test/c"),))))
    assert text.splitlines()[0] == (
        "Mali takes Algeria to the ICJ over the drone <https://wire.test/icj?id=1&lang=en>"
    )
    assert "Also reported by 1 outlet: Afrique FR <https://afrique.test/c>" in text


# -- properties (Hypothesis): any story renders to valid Telegram HTML within 4096 ------

_ANY_TEXT = st.text(st.characters(), max_size=5000)  # surrogates, controls, bidi, markup: all of it
_LINKS = st.one_of(
    st.text(max_size=60),
    st.builds(lambda tail: "https://a.test/" + tail, st.text(max_size=3000)),
    st.sampled_from(["", "javascript:alert(1)", 'https://b.test/?q=<"&>', "http://[::1]/x"]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    title=_ANY_TEXT,
    outlet=st.text(st.characters(), max_size=300),
    summary=_ANY_TEXT,
    link=_LINKS,
    published=st.none() | st.datetimes(timezones=st.just(UTC)),
    also=st.lists(st.tuples(st.text(max_size=100), _LINKS), max_size=15),
)
def test_any_story_renders_valid_telegram_html_within_the_limit(
    title: str,
    outlet: str,
    summary: str,
    link: str,
    published: datetime | None,
    also: list[tuple[str, str]],
) -> None:
    view = story(
        title=title,
        outlet=outlet,
        summary=summary,
        link=link,
        published=published,
        also=tuple(Source(name, url) for name, url in also),
    )
    _plain, links = check(render_alert(view))
    assert all(href.startswith(("http://", "https://")) for _, href in links)
    for message in render_latest([view, view]):
        check(message)
