"""bot.feeds.parse: real captured feeds, generated feeds, and hostile bodies."""

from __future__ import annotations

import functools
import hashlib
import json
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bot.decide.language import detect_language
from bot.errors import ParseError
from bot.feeds.bounded import parse_bounded
from bot.feeds.fetch import Fetcher, Validators, make_client
from bot.feeds.normalise import canonical_url, clean_title, html_to_text
from bot.feeds.parse import (
    MAX_GUID_BYTES,
    MAX_LINK_BYTES,
    MAX_TEXT_CHARS,
    MAX_TITLE_CHARS,
    ParsedFeed,
    headline,
    parse_feed,
)
from bot.feeds.xmlsafe import MAX_ATTRIBUTES
from bot.records import Entry, FeedSpec
from bot.settings import Limits
from tests.servers import feedgen
from tests.servers.feed_server import FeedServer

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
REAL_FEEDS = sorted(p for p in (DATA / "feeds").iterdir() if p.name != "SOURCE.md")
XML = {"content-type": "application/xml"}
SPEC = FeedSpec(url="https://feeds.test/wire.xml", name="Wire", language="en")


def labelled() -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads((DATA / "labelled_items.json").read_text("utf-8"))
    return items


def parse(body: bytes, headers: dict[str, str] | None = None, **kw: Any) -> ParsedFeed:
    return parse_feed(body, XML if headers is None else headers, SPEC, **kw)


def assert_storable(entry: Entry) -> None:
    """Every string field encodes as UTF-8 without control characters, within its bound."""
    for value in (entry.guid, entry.title, entry.text, entry.link, entry.language, entry.outlet):
        value.encode("utf-8")  # no lone surrogate
        assert not [c for c in value if (ord(c) < 32 and c not in "\t\n") or 0x7F <= ord(c) <= 0x9F]
    assert 0 < len(entry.guid.encode()) <= MAX_GUID_BYTES and "\n" not in entry.guid
    assert 0 < len(entry.title) <= MAX_TITLE_CHARS and len(entry.text) <= MAX_TEXT_CHARS
    assert len(entry.outlet) <= MAX_TITLE_CHARS and "\n" not in entry.outlet
    assert entry.link == "" or (
        entry.link.startswith(("http://", "https://"))
        and len(entry.link.encode()) <= MAX_LINK_BYTES
    )


# -- every real captured feed -----------------------------------------------------------


def test_the_real_feed_corpus_is_there() -> None:
    assert len(REAL_FEEDS) == 207


@functools.cache
def parse_real(path: Path) -> ParsedFeed | ParseError:
    """Each captured feed is parsed once per session, shared by the tests below."""
    try:
        return parse(path.read_bytes(), max_entries=200)
    except ParseError as exc:
        return exc


@pytest.mark.timeout(30)
@pytest.mark.parametrize("path", REAL_FEEDS, ids=lambda p: p.name)
def test_real_feed_parses_or_fails_clearly(path: Path) -> None:
    parsed = parse_real(path)
    if isinstance(parsed, ParseError):
        assert 0 < len(str(parsed)) <= 200
        return
    assert len(parsed.entries) <= 200
    assert len({e.guid for e in parsed.entries}) == len(parsed.entries)
    for entry in parsed.entries:
        assert_storable(entry)
        assert entry.published is None or entry.published.tzinfo is not None
        assert entry.language.isalpha() and entry.language.islower()
        assert entry.feed_url == SPEC.url and entry.feed_name == SPEC.name


def test_real_feeds_yield_entries_with_dates() -> None:
    results = [parse_real(path) for path in REAL_FEEDS]
    entries = [e for r in results if isinstance(r, ParsedFeed) for e in r.entries]
    assert len(entries) > 4000
    assert sum(e.published is not None for e in entries) / len(entries) > 0.95
    # the one capture that is a JSON Feed is read too
    json_feed = [r for p, r in zip(REAL_FEEDS, results, strict=True) if p.read_bytes()[:1] == b"{"]
    assert json_feed and all(isinstance(r, ParsedFeed) and r.entries for r in json_feed)


# -- generated feeds round-trip the labelled set ----------------------------------------


@pytest.mark.parametrize("build", [feedgen.rss, feedgen.atom, feedgen.rdf])
def test_labelled_items_round_trip(build: Any) -> None:
    items = labelled()
    parsed = parse(build(items, title="Sahel &amp; wire"))
    assert parsed.title == "Sahel & wire"
    assert len(parsed.entries) == len(items)
    for item, entry in zip(items, parsed.entries, strict=True):
        assert entry.title == clean_title(item["title"])
        assert entry.text == html_to_text(item["summary"])
        assert entry.link == canonical_url(item["link"])
        expected = parsedate_to_datetime(item["published"]).astimezone(UTC)
        assert entry.published == expected
        if build is not feedgen.rdf:  # RSS 1.0 has no guid: the link stands in
            assert entry.guid == item["id"]
        assert entry.language == "en"


def test_feed_language_wins_over_the_configured_one() -> None:
    items = labelled()[:3]
    assert {e.language for e in parse(feedgen.rss(items, language="fr-FR")).entries} == {"fr"}
    assert {e.language for e in parse(feedgen.atom(items, language="fr")).entries} == {"fr"}
    spec = FeedSpec(url=SPEC.url, name="x", language="fr")
    assert {e.language for e in parse_feed(feedgen.rss(items), XML, spec).entries} == {"fr"}


# -- news aggregators: title-only entries with their outlet ----------------------------


def _aggregated(*pairs: tuple[str, str]) -> str:
    """An aggregator's description: each headline linked, then its outlet in grey, escaped."""
    parts = [
        f'<a href="https://news.agg.test/rss/articles/A{n}?oc=5" target="_blank">{headline}</a>'
        f'&nbsp;&nbsp;<font color="#6f6f6f">{outlet}</font>'
        for n, (headline, outlet) in enumerate(pairs)
    ]
    markup = (
        parts[0] if len(pairs) == 1 else "<ol>" + "".join(f"<li>{p}</li>" for p in parts) + "</ol>"
    )
    return markup.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _item(n: int, title: str, description: str, source: str | None = None) -> str:
    element = f'<source url="https://outlet{n}.test">{source}</source>' if source else ""
    return (
        f"<item><title>{title}</title>"
        f"<link>https://news.agg.test/rss/articles/A{n}?oc=5</link>"
        f'<guid isPermaLink="false">A{n}</guid><pubDate>Mon, 30 Nov 2026 08:0{n}:00 GMT</pubDate>'
        f"<description>{description}</description>{element}</item>"
    )


AGGREGATOR_FEED = (
    '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
    "<title>Niger river - Aggregated news</title><link>https://news.agg.test/</link>"
    "<language>fr</language>"
    + _item(
        0,
        "Niamey proteste - The Voice of the Sahel",
        _aggregated(("Niamey proteste", "The Voice of the Sahel")),
        source="The Voice of the Sahel",
    )
    + _item(  # no <source>: the outlet comes from the suffix that a <font> names
        1,
        "Barrage de Kandadji : les travaux reprennent | Le Courrier du Fleuve",
        _aggregated(
            ("Barrage de Kandadji : les travaux reprennent", "Le Courrier du Fleuve"),
            ("Kandadji, le chantier relancé", "Radio Dunes"),
        ),
    )
    + _item(  # a dash inside the headline stays; the summary does not repeat the outlet
        2,
        "Mali - Algérie : les pourparlers reprennent – Sahel Hebdo",
        "",
        source="Sahel Hebdo",
    )
    + _item(  # an aggregator summary with a sentence of its own keeps its text
        3,
        "Les pêcheurs de Tillabéri inquiets - Radio Dunes",
        _aggregated(("Les pêcheurs de Tillabéri inquiets", "Radio Dunes"))
        + "&lt;p&gt;La crue arrive plus tôt que prévu.&lt;/p&gt;",
        source="Radio Dunes",
    )
    + "</channel></rss>"
).encode()


async def test_aggregator_entries_are_titles_with_their_outlet_over_http(
    feed_server: FeedServer,
) -> None:
    """Fetched and parsed the way the pipeline does it (fetch, then the bounded parser)."""
    url = feed_server.add("/aggregated.xml", AGGREGATOR_FEED)
    limits = Limits()
    async with make_client(limits) as client:
        outcome = await Fetcher(client, limits).fetch(url, Validators())
    assert outcome.status == "changed" and outcome.body is not None
    spec = FeedSpec(url=url, name="Aggregated", language="en")
    parsed = await parse_bounded(outcome.body, outcome.headers, spec, max_entries=10, cpu_seconds=5)
    got = [(e.title, e.outlet, e.text) for e in parsed.entries]
    assert got == [
        ("Niamey proteste", "The Voice of the Sahel", ""),
        ("Barrage de Kandadji : les travaux reprennent", "Le Courrier du Fleuve", ""),
        ("Mali - Algérie : les pourparlers reprennent", "Sahel Hebdo", ""),
        (
            "Les pêcheurs de Tillabéri inquiets",
            "Radio Dunes",
            "Les pêcheurs de Tillabéri inquiets Radio Dunes\n\nLa crue arrive plus tôt que prévu.",
        ),
    ]
    for entry in parsed.entries:
        assert_storable(entry)
        assert entry.language == "fr"  # the feed's declared language is the prior
        # and the decision core keeps it: the outlet's English words no longer count
        assert detect_language(f"{entry.title}. {entry.text}", entry.language) == "fr"


def test_a_dash_that_is_not_the_outlet_stays_and_plain_entries_keep_their_text() -> None:
    body = (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title>'
        + _item(0, "Mali - Algeria: talks resume", "&lt;p&gt;Envoys met in Algiers.&lt;/p&gt;")
        + _item(1, "Talks resume - Algeria", _aggregated(("Talks resume", "Desert Post")))
        + _item(2, "Mali - Algeria: talks resume", "", source="Algeria")
        + _item(
            3, "Forum topic title", "&lt;p&gt;First post.&lt;/p&gt;", source="Forum topic title"
        )
        + "</channel></rss>"
    ).encode()
    got = [(e.title, e.outlet, e.text) for e in parse(body).entries]
    assert got == [
        ("Mali - Algeria: talks resume", "", "Envoys met in Algiers."),
        ("Talks resume - Algeria", "", "Talks resume Desert Post"),
        ("Mali - Algeria: talks resume", "Algeria", ""),
        ("Forum topic title", "", "First post."),  # a source named like the entry is no outlet
    ]


def test_headline_reads_a_plain_dict_as_the_evaluation_gives_it() -> None:
    summary = '<a href="https://news.agg.test/a">Dam works resume</a>&nbsp;<font>Desert Post</font>'
    assert headline({"title": "Dam works resume - Desert Post", "summary": summary}) == (
        "Dam works resume",
        "Desert Post",
        "",
    )
    assert headline({"title": "Dam works resume", "summary": "<p>Crews are back.</p>"}) == (
        "Dam works resume",
        "",
        "Crews are back.",
    )


RSS091 = b"""<?xml version="1.0" encoding="ISO-8859-1"?>
<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN"
  "http://my.netscape.com/publish/formats/rss-0.91.dtd">
<rss version="0.91"><channel><title>Old</title><link>https://old.test/</link>
<description>d</description><language>en-us</language>
<item><title>Alg\xe9rie : un drone abattu</title><link>https://old.test/a</link>
<description>Texte &lt;b&gt;gras&lt;/b&gt;</description></item>
</channel></rss>"""


def test_rss_091_with_a_netscape_doctype() -> None:
    parsed = parse(RSS091)
    (entry,) = parsed.entries
    assert entry.title == "Algérie : un drone abattu"
    assert entry.text == "Texte gras"
    assert entry.link == "https://old.test/a" == entry.guid
    assert entry.published is None


# -- missing fields ---------------------------------------------------------------------


def test_missing_title_link_date_and_id_have_fallbacks() -> None:
    body = feedgen.rss(
        [
            {"summary": "<p>Mali closes its airspace to Algerian flights after the incident.</p>"},
            {"id": "https://wire.test/story/9", "title": "Guid is a URL"},
            {"id": "opaque-7", "title": "No link at all"},
            {"title": "Only a title"},
            {"link": "/relative/story?utm_source=x"},
        ]
    )
    untitled, by_guid, no_link, title_only, relative = parse(body).entries
    assert untitled.title.startswith("Mali closes its airspace")
    assert untitled.guid.startswith("sha256:") and untitled.published is None
    assert by_guid.link == "https://wire.test/story/9" == by_guid.guid
    assert no_link.link == "" and no_link.guid == "opaque-7"  # not the feed's URL
    assert title_only.guid.startswith("sha256:") and title_only.guid != untitled.guid
    assert relative.link == "https://feeds.test/relative/story"
    assert relative.guid == relative.link == relative.title  # nothing else to show


def test_an_entry_with_nothing_is_skipped_with_a_warning() -> None:
    parsed = parse(feedgen.rss([{"id": "x"}, {"title": "kept"}]))
    assert [e.title for e in parsed.entries] == ["kept"]
    assert any("skipped 1" in w for w in parsed.warnings)


def test_repeated_ids_and_too_many_entries() -> None:
    items = [{"id": f"id-{i % 150}", "title": f"t{i}"} for i in range(300)]
    parsed = parse(feedgen.rss(items), max_entries=200)
    assert len(parsed.entries) == 150
    assert any("300 entries; kept the first 200" in w for w in parsed.warnings)
    assert any("repeating an earlier id" in w for w in parsed.warnings)


def test_json_feed() -> None:
    doc = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "JSON wire",
        "language": "fr",
        "items": [
            {
                "id": "j1",
                "url": "https://j.test/1?utm_medium=x",
                "title": "Niamey &amp; Bamako",
                "content_html": "<p>Texte</p>",
                "date_published": "2025-04-02T10:00:00+02:00",
            },
            {"id": 2, "content_text": "plain <not a tag> text"},
        ],
    }
    parsed = parse(json.dumps(doc).encode(), {"content-type": "application/feed+json"})
    first, second = parsed.entries
    assert (first.title, first.link, first.text, first.language) == (
        "Niamey & Bamako",
        "https://j.test/1",
        "Texte",
        "fr",
    )
    assert first.published == datetime(2025, 4, 2, 8, 0, tzinfo=UTC)
    assert second.guid == "2" and second.text == "plain <not a tag> text"


# -- not feeds --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "headers", "reason"),
    [
        (
            b"<!DOCTYPE html><html><head><title>Hi</title></head><body>x</body></html>",
            {"content-type": "text/html"},
            "not a feed: got an HTML page",
        ),
        (b"<html><body><p>Consent wall</p></body></html>", XML, "not a feed: got an HTML page"),
        (
            b'{"error": "rate limited"}',
            {"content-type": "application/json"},
            "not a feed: got JSON",
        ),
        (b"", XML, "empty body"),
        (b"   \n ", XML, "empty body"),
        (b"<note><to>x</to></note>", XML, "not a feed"),
        (b"\x89PNG\r\n\x1a\n\x00\x00binary", {"content-type": "image/png"}, "not a feed"),
    ],
)
def test_not_a_feed(body: bytes, headers: dict[str, str], reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse(body, headers)


def test_a_body_that_is_a_path_is_not_read_as_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret.xml"
    secret.write_bytes(feedgen.rss([{"id": "s", "title": "SECRET FILE CONTENT"}]))
    with pytest.raises(ParseError):
        parse(str(secret).encode())


def test_bozo_feed_with_entries_is_used_with_a_warning() -> None:
    body = feedgen.rss([{"id": "a", "title": "First"}]).replace(b"First", b"Fish & Chips")
    parsed = parse(body)
    assert [e.title for e in parsed.entries] == ["Fish & Chips"]
    assert any(w.startswith("read leniently") for w in parsed.warnings)


# -- encodings --------------------------------------------------------------------------

FR_ITEM = {
    "id": "fr-1",
    "title": "Algérie : l’AES rappelle ses ambassadeurs",
    "summary": "Crème brûlée",
}


@pytest.mark.parametrize(
    ("headers", "transform"),
    [
        ({"content-type": "application/xml; charset=iso-8859-1"}, None),  # HTTP says latin-1
        ({"content-type": "text/xml"}, "latin-1-decl"),  # text/xml + decl latin-1, body UTF-8
        ({"content-type": "application/xml; charset=utf-8"}, "cp1252-body"),  # body not UTF-8
        ({"content-type": "application/xml"}, "utf-16"),
        ({"content-type": "application/xml; charset=utf-16"}, "utf-16-decl-only"),
    ],
)
def test_wrong_declared_encoding_is_read_right(
    headers: dict[str, str], transform: str | None
) -> None:
    body = feedgen.rss([FR_ITEM])
    if transform == "latin-1-decl":
        body = body.replace(b"encoding='utf-8'", b"encoding='iso-8859-1'")
    elif transform == "cp1252-body":
        body = body.decode("utf-8").encode("cp1252")
    elif transform == "utf-16":
        body = body.decode("utf-8").replace("utf-8", "utf-16").encode("utf-16")
    elif transform == "utf-16-decl-only":
        body = body.replace(b"encoding='utf-8'", b"encoding='utf-16'")
    (entry,) = parse(body, headers).entries
    assert entry.title == FR_ITEM["title"]
    assert entry.text == "Crème brûlée"


# -- entity bombs -----------------------------------------------------------------------


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    "body",
    [feedgen.entity_bomb(), feedgen.billion_laughs()],
    ids=["quadratic", "billion-laughs"],
)
def test_entity_bombs_are_defused(body: bytes) -> None:
    started = time.perf_counter()
    parsed = parse(body)
    assert time.perf_counter() - started < 2.0
    assert any("DOCTYPE with entity declarations" in w for w in parsed.warnings)
    for entry in parsed.entries:
        assert len(entry.title) <= MAX_TITLE_CHARS and len(entry.text) <= MAX_TEXT_CHARS
        assert "AAAAAAAAAA" not in entry.title + entry.text
        assert "lollol" not in entry.title + entry.text


def test_a_doctype_subset_with_tricky_quotes_and_comments_is_removed() -> None:
    body = (
        b'<?xml version="1.0"?>\n<!-- <rss> in a comment -->\n'
        b'<!DOCTYPE rss [ <!-- ]> --> <!ENTITY e "]>"> <!ENTITY big \'' + b"B" * 5000 + b"'> ]>\n"
        b'<rss version="2.0"><channel><title>t</title><item><title>&big;&big;&e;</title>'
        b"<guid>g</guid></item></channel></rss>"
    )
    parsed = parse(body)
    (entry,) = parsed.entries
    assert "BBBB" not in entry.title


def test_entity_declarations_the_scanner_cannot_place_are_refused() -> None:
    body = b'junk <!DOCTYPE rss [<!ENTITY big "' + b"A" * 5000 + b'">]><rss version="2.0"/>'
    with pytest.raises(ParseError, match="refused"):
        parse(body)
    with pytest.raises(ParseError, match="refused"):
        parse(b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "x">')


# -- hostile text: only storable, bounded values come out (issue 7) ---------------------


def test_surrogate_references_become_the_character_and_lone_halves_go() -> None:
    entry = parse(feedgen.hostile_rss()).entries[0]
    assert entry.title == "Drone 😀 down over Kidal"
    assert entry.text == "Text 😀 and half"
    assert entry.guid == "surr-😀-1"
    assert_storable(entry)


def test_hostile_entries_come_out_clean_and_bounded() -> None:
    parsed = parse(feedgen.hostile_rss())
    by_title = {e.title: e for e in parsed.entries}
    assert len(by_title) == 6
    for entry in parsed.entries:
        assert_storable(entry)
    nul = by_title["NUL guid and link"]
    assert (nul.guid, nul.link) == ("nul-guid-2", "")  # a link with a NUL is dropped
    emoji = by_title["Guid of 999 emoji"]
    digest = hashlib.sha256(feedgen.HOSTILE_GUID.encode()).hexdigest()
    assert emoji.guid == f"sha256:{digest}"  # stable: the same entry next poll
    assert emoji.link == "https://hostile.test/emoji-guid"
    assert by_title["CJK link"].link == ""  # too long: dropped, not cut
    assert by_title["Script link"].link == ""  # not the feed's URL either
    assert by_title["A plain good entry"].link == "https://hostile.test/good"


def test_json_feed_lone_surrogates_and_nul_are_removed() -> None:
    parsed = parse(feedgen.hostile_json_feed(), {"content-type": "application/feed+json"})
    first, second = parsed.entries
    assert (first.guid, first.title, first.text) == ("j-1", "Lone half", "pair 😀 and lone")
    assert second.title == "A plain good entry"
    for entry in parsed.entries:
        assert_storable(entry)


@pytest.mark.parametrize(
    "link", ["javascript:alert(1)", "mailto:x@y.test", "data:text/html,x", "ftp://f.test/a"]
)
def test_a_rejected_link_does_not_fall_back_to_the_feed_url(link: str) -> None:
    (entry,) = parse(feedgen.rss([{"id": "r1", "title": "Rejected", "link": link}])).entries
    assert entry.link == ""


def test_a_link_at_the_bound_is_kept_and_one_byte_over_is_dropped() -> None:
    base = "https://long.test/"
    fits = base + "a" * (MAX_LINK_BYTES - len(base))
    over = fits + "a"
    entries = parse(
        feedgen.rss(
            [{"id": "1", "title": "fits", "link": fits}, {"id": "2", "title": "over", "link": over}]
        )
    ).entries
    assert [e.link for e in entries] == [fits, ""]


@pytest.mark.timeout(30)
def test_an_element_crowded_with_attributes_is_refused_quickly() -> None:
    body = feedgen.crowded_element(40_000)
    started = time.process_time()
    with pytest.raises(ParseError, match=f"more than {MAX_ATTRIBUTES} attributes"):
        parse(body)
    assert time.process_time() - started < 1.0  # was 22 s of CPU
    just_under = feedgen.crowded_element(MAX_ATTRIBUTES - 1)
    assert [e.guid for e in parse(just_under).entries] == ["crowd-1"]


# -- properties (Hypothesis): any bytes give storable entries or a ParseError -----------

_HOSTILE_TEXT = st.lists(
    st.characters()  # surrogates included: escaped in JSON, invalid UTF-8 in XML
    | st.sampled_from(
        ["&#55357;", "&#56832;", "&#0;", "&amp;", "&", "<", "]]>", "<![CDATA[", "\x00", "\ufeff"]
    ),
    max_size=30,
).map("".join)


@st.composite
def feed_bodies(draw: st.DrawFn) -> bytes:
    """Feed-shaped documents with hostile text spliced in unescaped, in every field."""
    fields = [draw(_HOSTILE_TEXT) for _ in range(5)]
    kind = draw(st.sampled_from(["rss", "atom", "json", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=400))
    if kind == "json":
        item = {"id": fields[0], "title": fields[1], "url": fields[2], "content_html": fields[3]}
        doc = {"version": "https://jsonfeed.org/version/1.1", "title": fields[4], "items": [item]}
        return json.dumps(doc).encode()
    guid, title, link, text, extra = fields
    if kind == "atom":
        return (
            f'<feed xmlns="http://www.w3.org/2005/Atom"><title>{extra}</title><entry>'
            f'<id>{guid}</id><title type="html">{title}</title><link href="{link}"/>'
            f"<summary>{text}</summary></entry></feed>"
        ).encode("utf-8", "surrogatepass")
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>{extra}</title><item>'
        f"<guid>{guid}</guid><title>{title}</title><link>{link}</link>"
        f"<description>{text}</description></item></channel></rss>"
    ).encode("utf-8", "surrogatepass")


@settings(max_examples=250, deadline=None)
@given(feed_bodies())
@example(feedgen.hostile_rss())
@example(feedgen.hostile_json_feed())
def test_any_body_gives_storable_entries_or_a_parse_error(body: bytes) -> None:
    try:
        parsed = parse(body, max_entries=50)
    except ParseError as exc:
        assert 0 < len(str(exc)) <= 200
        return
    assert len(parsed.entries) <= 50
    for entry in parsed.entries:
        assert_storable(entry)
    parsed.title.encode("utf-8")
