"""bot.feeds.normalise: HTML to text, titles, outlets, canonical links, folding."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bot.feeds.normalise import (
    canonical_url,
    clean_title,
    element_texts,
    first_words,
    html_to_text,
    only_headlines,
    outlet_suffix,
    same_words,
    without_outlet,
)

REPO = Path(__file__).resolve().parent.parent
LABELLED = REPO.parent / "shared" / "data" / "labelled_items.json"

TAG = re.compile(r"<[a-zA-Z/][^>]*>")
ENTITY = re.compile(r"&(?:[a-zA-Z]+|#\d+|#x[0-9a-fA-F]+);")


def labelled() -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(LABELLED.read_text(encoding="utf-8"))
    return items


# -- html_to_text -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ("caf&#233; &amp; cr&egrave;me", "café & crème"),
        ("&laquo;&nbsp;Bamako&nbsp;&raquo;", "« Bamako »"),
        ("it&#x27;s &#39;fine&#39;", "it's 'fine'"),
        ("<b>bold</b> and <i>italic</i>", "bold and italic"),
        ("a &lt;b&gt; tag", "a <b> tag"),  # escaped markup is text, not markup
        ("3 < 5 and 7 > 2", "3 < 5 and 7 > 2"),
        ("one\n\n  two\t three", "one two three"),
        ("x<script>alert('no')</script>y<style>p{}</style>z", "x y z"),
        ("keep<!-- a comment -->this", "keep this"),
        ("E = mc<sup>2</sup>", "E = mc2"),
        ("", ""),
    ],
)
def test_html_to_text_decodes_and_drops_markup(fragment: str, expected: str) -> None:
    assert html_to_text(fragment) == expected


def test_block_elements_become_paragraph_and_line_breaks() -> None:
    text = html_to_text("<h2>Head</h2><p>First  para.</p><p>Second<br>line</p><ul><li>a</li></ul>")
    assert text == "Head\n\nFirst para.\n\nSecond\nline\n\na"


def test_control_characters_and_zero_width_spaces_are_removed() -> None:
    assert html_to_text("a\x00b\x07c\u200bd\ufeffe") == "abcde"
    assert clean_title("t\x00i\x1ftle") == "title"


def test_text_is_bounded_and_cut_at_a_word() -> None:
    text = html_to_text("<p>" + "word " * 10_000 + "</p>", max_chars=100)
    assert len(text) <= 100
    assert text.endswith("…")
    assert text[:-1].split(" ")[-1] == "word"


def test_huge_markup_is_bounded_in_time() -> None:
    fragment = "<div class='x'>" * 200_000 + "text" + "</div>" * 200_000
    started = time.perf_counter()
    text = html_to_text(fragment, max_chars=1000)
    assert time.perf_counter() - started < 1.0
    assert len(text) <= 1000


def test_a_tag_cut_at_the_input_bound_does_not_leak() -> None:
    fragment = "x" * 4090 + '<a href="https://e.test/very/long/link">link</a>'
    text = html_to_text(fragment, max_chars=10)
    assert "<a" not in text and "href" not in text


def test_every_labelled_summary_becomes_plain_text() -> None:
    for item in labelled():
        text = html_to_text(item["summary"])
        assert text, item["id"]
        assert not TAG.search(text), (item["id"], text)
        assert not ENTITY.search(text), (item["id"], text)
        assert "\xa0" not in text and "  " not in text


# -- titles ---------------------------------------------------------------------------


def test_clean_title_is_one_plain_line() -> None:
    assert clean_title("Algeria&#39;s <b>drone</b>\n  claim &amp; reply") == (
        "Algeria's drone claim & reply"
    )
    assert clean_title("<p>Para</p><p>graph</p>") == "Para graph"


def test_clean_title_is_bounded() -> None:
    title = clean_title("long " * 500, max_chars=50)
    assert len(title) <= 50 and title.endswith("…")


def test_every_labelled_title_is_clean() -> None:
    for item in labelled():
        title = clean_title(item["title"])
        assert title and not ENTITY.search(title) and "\n" not in title, item["id"]


def test_first_words_makes_a_stand_in_title() -> None:
    assert first_words("Mali closes\nits airspace to Algerian flights.", max_chars=20) == (
        "Mali closes its…"
    )


# -- canonical_url ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTPS://News.Example.TEST/a/b/", "https://news.example.test/a/b"),
        ("https://e.test/x?utm_source=rss&utm_medium=feed", "https://e.test/x"),
        ("https://e.test/x?id=3&utm_campaign=c&page=2#comments", "https://e.test/x?id=3&page=2"),
        ("https://e.test/x?fbclid=abc&gclid=1&mc_cid=2&mc_eid=3&q=a+b", "https://e.test/x?q=a+b"),
        ("https://e.test/x?UTM_Source=x&b=2&a=1", "https://e.test/x?b=2&a=1"),
        ("http://e.test:80/p", "http://e.test/p"),
        ("https://e.test:443/p", "https://e.test/p"),
        ("https://e.test:8443/p/", "https://e.test:8443/p"),
        ("https://e.test", "https://e.test/"),
        ("https://e.test/", "https://e.test/"),
        ("https://e.test/?utm_source=x", "https://e.test/"),
        ("  https://e.test/a  ", "https://e.test/a"),
        ("https://e.test/Case/Path", "https://e.test/Case/Path"),
        ("http://[::1]:8080/x/", "http://[::1]:8080/x"),
        ("mailto:someone@e.test", "mailto:someone@e.test"),
        ("/relative/path", "/relative/path"),
        ("https://e.test:notaport/x", "https://e.test:notaport/x"),
    ],
)
def test_canonical_url(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


def test_canonical_url_is_idempotent_on_the_labelled_links() -> None:
    links = [canonical_url(item["link"]) for item in labelled()]
    for link in links:
        assert canonical_url(link) == link
        assert "utm_" not in link and "#" not in link
        assert link == "https://" + link.split("://", 1)[1]
        path = link.split("://", 1)[1].partition("?")[0]
        assert not path.endswith("/") or path.count("/") == 1
    assert len(set(links)) == len(links)  # the set's promise: no two share a canonical link


# -- properties (Hypothesis) ------------------------------------------------------------

_URL_PART = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)) | st.sampled_from("/?&=#:@%.[]"),
    max_size=30,
)


@st.composite
def urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["http", "https", "HTTP", "ftp", "javascript", ""]))
    host = draw(st.sampled_from(["Wire.TEST", "a.test", "[::1]", "xn--e1a.test", ""]) | _URL_PART)
    port = draw(st.sampled_from(["", ":80", ":443", ":8080", ":", ":99999"]))
    path = draw(_URL_PART)
    query = draw(
        st.lists(
            st.sampled_from(["utm_source=x", "fbclid=1", "a=1", "", "b", "UTM_x=2", "%75tm_a=1"])
            | _URL_PART,
            max_size=5,
        )
    )
    fragment = draw(st.sampled_from(["", "#top", "#"]) | _URL_PART)
    return f"{scheme}://{host}{port}/{path}?{'&'.join(query)}{fragment}"


@settings(max_examples=400, deadline=None)
@given(st.one_of(urls(), st.text(max_size=80)))
@example("http://Wire.TEST/ ?")  # dropping "?" bared a trailing space
@example("https://a.test/a/ #frag")
def test_canonical_url_is_idempotent(url: str) -> None:
    once = canonical_url(url)
    assert canonical_url(once) == once


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(), max_size=300))  # surrogates included
@example("lone \ud83d half")
def test_normalised_text_is_always_storable(raw: str) -> None:
    for out in (html_to_text(raw, max_chars=200), clean_title(raw, max_chars=100)):
        out.encode("utf-8")  # no surrogate left
        assert not any(ord(c) < 32 and c not in "\n" for c in out)
    assert len(html_to_text(raw, max_chars=200)) <= 200


def test_surrogate_pair_references_become_one_character() -> None:
    assert html_to_text("a &#55357;&#56832; b &#xd83d;&#XDE00;") == "a 😀 b 😀"
    assert clean_title("lone &#55357; high &#56832; low") == "lone high low"
    assert html_to_text("&amp;#55357;&amp;#56832;") == "&#55357;&#56832;"  # escaped: text


# -- outlets and aggregator summaries ---------------------------------------------------


@pytest.mark.parametrize(
    ("title", "outlet"),
    [
        ("Dam works resume on the river - Riverside Courier", "Riverside Courier"),
        ("Dam works resume on the river – Riverside Courier", "Riverside Courier"),
        ("Dam works resume on the river — Riverside Courier", "Riverside Courier"),
        ("Dam works resume on the river | Riverside Courier", "Riverside Courier"),
        ("Dam works resume on the river - RIVERSIDE  courier", "Riverside Courier"),
        ("Dam works resume on the river - Le Régional", "Le Regional"),
        ("Dam works resume on the river - Sahel - Édition du soir", "Sahel - Édition du soir"),
    ],
)
def test_the_outlet_suffix_goes(title: str, outlet: str) -> None:
    assert without_outlet(title, outlet) == "Dam works resume on the river"


@pytest.mark.parametrize(
    ("title", "outlet"),
    [
        ("Mali - Algeria: talks resume", "Algeria"),  # the tail says more than the outlet
        ("Mali - Algeria: talks resume", "Desert Post"),
        ("Talks resume - Algeria", ""),  # no outlet known: nothing goes
        ("Riverside Courier", "Riverside Courier"),  # no title would be left
        (" - Riverside Courier", "Riverside Courier"),
        ("Talks resume-Riverside Courier", "Riverside Courier"),  # no spaces: a compound
        ("Talks resume - Riverside Courier weekly", "Riverside Courier"),
    ],
)
def test_a_suffix_that_is_not_the_outlet_stays(title: str, outlet: str) -> None:
    assert without_outlet(title, outlet) == title


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80), st.text(max_size=30))
def test_without_outlet_keeps_a_nonempty_start_of_the_title(title: str, outlet: str) -> None:
    kept = without_outlet(title, outlet)
    assert title.startswith(kept) and (kept == title or re.search(r"\w", kept))


def test_outlet_suffix_names_the_outlet_a_title_ends_with() -> None:
    names = ("Other Post", "Riverside Courier")
    assert outlet_suffix("Dam works resume | Riverside Courier", names) == "Riverside Courier"
    assert outlet_suffix("Dam works resume - Desert Post", names) == ""
    assert outlet_suffix("Dam works resume", names) == ""
    assert same_words("Le  Régional!", "le regional") and not same_words("Le Régional", "Régional")


def test_element_texts_reads_links_and_font_names_bounded() -> None:
    fragment = (
        '<ol><li><a href="https://agg.test/1" target="_blank">Dam <b>works</b> resume</a>'
        '&nbsp;&nbsp;<font color="#6f6f6f">Riverside &amp; Co</font></li>'
        '<li><A HREF="https://agg.test/2">Second take</A> <font>Other Post</font></li></ol>'
    )
    assert element_texts(fragment, "a") == ("Dam works resume", "Second take")
    assert element_texts(fragment, "font") == ("Riverside & Co", "Other Post")
    many = "<font>name</font>" * 500
    assert len(element_texts(many, "font")) == 50
    assert element_texts("<a>" + "x " * 400 + "</a>", "a", max_chars=100)[0].endswith("…")


AGGREGATED = (
    '<a href="https://agg.test/1">Dam works resume on the river</a>&nbsp;&nbsp;'
    '<font color="#6f6f6f">Riverside Courier</font>'
)
RELATED = (
    '<ol><li><a href="https://agg.test/1">Dam works resume on the river</a>&nbsp;&nbsp;'
    "<font>Riverside Courier</font></li>"
    '<li><a href="https://agg.test/2">Engineers back at the dam site</a>&nbsp;&nbsp;'
    "<font>Other Post</font></li></ol>"
)


@pytest.mark.parametrize("fragment", [AGGREGATED, RELATED])
def test_a_summary_of_headlines_and_outlets_is_no_text(fragment: str) -> None:
    title = "Dam works resume on the river"
    text = html_to_text(fragment)
    names = ("Riverside Courier", *element_texts(fragment, "font"))
    assert only_headlines(text, (title,), names, element_texts(fragment, "a"))
    assert only_headlines(text.upper(), (title + " - Riverside Courier", title), names, ()) is (
        fragment is AGGREGATED
    )


def test_a_summary_with_anything_more_is_text() -> None:
    title = "Dam works resume on the river"
    names = ("Riverside Courier", "Other Post")
    links = ("Dam works resume on the river", "Engineers back at the dam site")
    prose = html_to_text(AGGREGATED + "<p>Crews returned on Monday after a month away.</p>")
    assert not only_headlines(prose, (title,), names, links)
    # related links count only beside the entry's own headline
    others = html_to_text(RELATED.replace("Dam works resume on the river", "Another story"))
    assert not only_headlines(others, (title,), names, (*links, "Another story"))
    assert not only_headlines("Riverside Courier", (title,), names, links)
    assert not only_headlines("Dam works resume on the riverbank", (title,), names, links)
    assert only_headlines("Dam works resume on the river.", (title,), (), ())
