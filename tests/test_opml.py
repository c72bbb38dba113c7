"""bot.feeds.opml: subscription lists in and out, entities refused, everything escaped."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.feeds.opml import MAX_OPML_BYTES, OpmlError, OpmlFeed, read_opml, write_opml

WHEN = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

READER_EXPORT = b"""<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0">
  <head><title>My subscriptions</title></head>
  <body>
    <outline text="Africa" title="Africa">
      <outline type="rss" text="Wire &amp; Co" title="ignored" xmlUrl="https://wire.test/rss?a=1&amp;b=2"
               htmlUrl="https://wire.test/" language="fr-FR"/>
      <outline type="rss" title="Only a title" xmlUrl="  https://b.test/atom  " language="de"/>
    </outline>
    <outline text="A folder without feeds"/>
    <outline type="rss" text="Twice" xmlUrl="https://wire.test/rss?a=1&amp;b=2"/>
    <outline type="rss" text="  spaced
        name " xmlUrl="http://c.test/feed.xml"/>
  </body>
</opml>
"""


def test_reads_nested_outlines_in_order_once_each() -> None:
    assert read_opml(READER_EXPORT) == [
        OpmlFeed("https://wire.test/rss?a=1&b=2", "Wire & Co", "fr"),
        OpmlFeed("https://b.test/atom", "Only a title", ""),
        OpmlFeed("http://c.test/feed.xml", "spaced name", ""),
    ]


@pytest.mark.parametrize(
    ("document", "why"),
    [
        (
            b'<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
            b'<opml version="2.0"><body><outline text="&b;" xmlUrl="http://x.test/"/></body></opml>',
            "DTDForbidden",
        ),
        (
            b'<?xml version="1.0"?><!DOCTYPE opml SYSTEM "file:///etc/passwd">'
            b'<opml version="2.0"><body/></opml>',
            "DTDForbidden",
        ),
        (b"<rss><channel/></rss>", "not <opml>"),
        (b'<opml version="2.0"><head/></opml>', "no <body>"),
        (b"<opml><body><outline", "not well-formed"),
        (b" " * (MAX_OPML_BYTES + 1), "larger than"),
    ],
)
def test_refuses_entities_and_what_is_not_opml(document: bytes, why: str) -> None:
    with pytest.raises(OpmlError, match=why):
        read_opml(document)


def test_writes_escaped_opml_2_that_reads_back() -> None:
    feeds = [
        OpmlFeed("https://wire.test/rss?a=1&b=2", 'Wire "quoted" <b>&</b>', "fr"),
        OpmlFeed("http://c.test/feed.xml"),
    ]
    written = write_opml(feeds, title="Sahel <Watch>", created=WHEN)
    assert written.startswith(b"<?xml version='1.0' encoding='utf-8'?>\n<opml version=\"2.0\">")
    assert b"<title>Sahel &lt;Watch&gt;</title>" in written
    assert b"<dateCreated>Tue, 01 Dec 2026 12:00:00 GMT</dateCreated>" in written
    assert b'xmlUrl="https://wire.test/rss?a=1&amp;b=2"' in written
    assert b'text="Wire &quot;quoted&quot; &lt;b&gt;&amp;&lt;/b&gt;"' in written
    assert read_opml(written) == [
        OpmlFeed("https://wire.test/rss?a=1&b=2", 'Wire "quoted" <b>&</b>', "fr"),
        OpmlFeed("http://c.test/feed.xml", "", ""),  # text="URL": no name
    ]


_XML_TEXT = st.text(
    st.characters(
        blacklist_categories=("Cs", "Cc"),
        blacklist_characters="\ufffe\uffff",
    ),
    min_size=1,
    max_size=40,
).map(lambda s: " ".join(s.split()))


@given(
    st.lists(
        st.tuples(_XML_TEXT.filter(bool), _XML_TEXT.filter(bool), st.sampled_from(["en", "fr"])),
        max_size=8,
        unique_by=lambda t: t[0],
    )
)
def test_any_list_round_trips(feeds: list[tuple[str, str, str]]) -> None:
    wanted = [OpmlFeed(f"https://x.test/{url}", name, lang) for url, name, lang in feeds]
    wanted = list({f.url: f for f in wanted}.values())
    assert read_opml(write_opml(wanted, title="t", created=WHEN)) == wanted
