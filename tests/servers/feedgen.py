"""Build valid RSS 2.0, RSS 1.0 (RDF) and Atom 1.0 documents from plain dicts, for tests.

An item is a dict with any of: ``id``, ``title``, ``summary`` (HTML allowed: it is
escaped into the XML, so a reader gets the HTML back), ``link``, ``published`` (an
RFC 822 date as in RSS; converted to RFC 3339 for Atom). Missing keys leave the
element out, which is how tests build entries without titles, links or dates.

Also the hostile bodies the parser must survive: `entity_bomb` and `billion_laughs`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from email.utils import parsedate_to_datetime

ATOM_NS = "http://www.w3.org/2005/Atom"
RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
RSS1_NS = "http://purl.org/rss/1.0/"
DC_NS = "http://purl.org/dc/elements/1.1/"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

Item = Mapping[str, str]


def _text(parent: ET.Element, tag: str, value: str | None, **attrib: str) -> None:
    if value is not None:
        ET.SubElement(parent, tag, attrib).text = value


def _serialise(root: ET.Element) -> bytes:
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document


def rfc3339(rfc822: str) -> str:
    """`Tue, 01 Apr 2025 09:12:00 +0000` -> `2025-04-01T09:12:00+00:00`."""
    return parsedate_to_datetime(rfc822).isoformat()


def rss(
    items: Iterable[Item],
    *,
    title: str = "Test feed",
    link: str = "https://feeds.test/",
    description: str = "A feed built for tests",
    language: str | None = None,
) -> bytes:
    """An RSS 2.0 document."""
    root = ET.Element("rss", {"version": "2.0"})
    channel = ET.SubElement(root, "channel")
    _text(channel, "title", title)
    _text(channel, "link", link)
    _text(channel, "description", description)
    _text(channel, "language", language)
    for item in items:
        node = ET.SubElement(channel, "item")
        _text(node, "title", item.get("title"))
        _text(node, "link", item.get("link"))
        _text(node, "description", item.get("summary"))
        if item.get("id") is not None:
            permalink = "true" if item["id"].startswith(("http://", "https://")) else "false"
            _text(node, "guid", item["id"], isPermaLink=permalink)
        _text(node, "pubDate", item.get("published"))
    return _serialise(root)


def atom(
    items: Iterable[Item],
    *,
    title: str = "Test feed",
    link: str = "https://feeds.test/",
    feed_id: str | None = None,
    language: str | None = None,
) -> bytes:
    """An Atom 1.0 document; titles and summaries are `type="html"`."""
    items = list(items)
    attrib = {"xmlns": ATOM_NS}
    if language:
        attrib[XML_LANG] = language
    root = ET.Element("feed", attrib)
    _text(root, "title", title, type="html")
    ET.SubElement(root, "link", {"rel": "alternate", "href": link})
    _text(root, "id", feed_id or link)
    dates = [rfc3339(item["published"]) for item in items if item.get("published")]
    _text(root, "updated", max(dates) if dates else "1970-01-01T00:00:00+00:00")
    for item in items:
        entry = ET.SubElement(root, "entry")
        _text(entry, "id", item.get("id"))
        if item.get("title") is not None:
            _text(entry, "title", item["title"], type="html")
        if item.get("link") is not None:
            ET.SubElement(entry, "link", {"rel": "alternate", "href": item["link"]})
        if item.get("summary") is not None:
            _text(entry, "summary", item["summary"], type="html")
        if item.get("published"):
            stamp = rfc3339(item["published"])
            _text(entry, "published", stamp)
            _text(entry, "updated", stamp)
    return _serialise(root)


def rdf(
    items: Iterable[Item],
    *,
    title: str = "Test feed",
    link: str = "https://feeds.test/",
    language: str | None = None,
) -> bytes:
    """An RSS 1.0 (RDF) document; dates go in `dc:date`."""
    items = list(items)
    root = ET.Element("rdf:RDF", {"xmlns:rdf": RDF_NS, "xmlns": RSS1_NS, "xmlns:dc": DC_NS})
    channel = ET.SubElement(root, "channel", {"rdf:about": link})
    _text(channel, "title", title)
    _text(channel, "link", link)
    _text(channel, "description", "A feed built for tests")
    _text(channel, "dc:language", language)
    for item in items:
        about = item.get("link") or item.get("id") or link
        node = ET.SubElement(root, "item", {"rdf:about": about})
        _text(node, "title", item.get("title"))
        _text(node, "link", item.get("link"))
        _text(node, "description", item.get("summary"))
        if item.get("published"):
            _text(node, "dc:date", rfc3339(item["published"]))
    return _serialise(root)


def entity_bomb(*, entity_chars: int = 10_000, references: int = 5_000) -> bytes:
    """The quadratic blow-up: one big entity referenced many times (~60 KB of XML)."""
    refs = "&big;" * references
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<!DOCTYPE rss [\n<!ENTITY big "{"A" * entity_chars}">\n]>\n'
        '<rss version="2.0"><channel><title>bomb</title><link>https://bomb.test/</link>'
        "<description>d</description>"
        f"<item><title>{refs}</title><description>{refs}</description>"
        "<guid>bomb-1</guid></item></channel></rss>"
    ).encode()


def billion_laughs(levels: int = 10) -> bytes:
    """The classic nested-entity bomb (10^levels expansions if a parser allowed it)."""
    decls = ['<!ENTITY lol0 "lol">']
    for level in range(1, levels):
        decls.append(f'<!ENTITY lol{level} "{f"&lol{level - 1};" * 10}">')
    return (
        '<?xml version="1.0"?>\n<!DOCTYPE rss [\n'
        + "\n".join(decls)
        + "\n]>\n"
        + '<rss version="2.0"><channel><title>laughs</title><link>https://lol.test/</link>'
        + f"<description>d</description><item><title>&lol{levels - 1};</title>"
        + "<guid>lol-1</guid></item></channel></rss>"
    ).encode()


# -- hostile entries (issue 7): text a database or feedparser cannot take as it is --------

HOSTILE_GUID = "🛰" * 999  # 3,996 bytes of UTF-8: over PostgreSQL's 2,704-byte index row
HOSTILE_CJK_LINK = "https://cjk.test/" + "新闻" * 950  # 1,917 characters, 5,717 bytes


def hostile_rss() -> bytes:
    """RSS 2.0 whose entries carry what broke storage, beside one plain good entry.

    In order: an emoji as two surrogate references plus a lone half (title, text, guid);
    a NUL in guid and link; a guid of 999 emoji; a 1,900-character CJK link; a
    `javascript:` link. Written by hand: ElementTree would escape the references.
    """
    items = [
        ("Drone &#55357;&#56832; down &#xD83D;over Kidal", "surr-&#55357;&#56832;-&#56832;1",
         "https://hostile.test/surrogates", "Text &#55357;&#56832; and &#56832;half"),
        ("NUL guid and link", "nul&#0;-guid\x00-2", "https://hostile.test/a\x00b", "nul"),
        ("Guid of 999 emoji", HOSTILE_GUID, "https://hostile.test/emoji-guid", "emoji"),
        ("CJK link", "cjk-4", HOSTILE_CJK_LINK, "cjk"),
        ("Script link", "js-5", "javascript:alert(1)", "js"),
        ("A plain good entry", "good-6", "https://hostile.test/good", "good"),
    ]  # fmt: skip
    body = "".join(
        f"<item><title>{title}</title><guid isPermaLink='false'>{guid}</guid>"
        f"<link>{link}</link><description>{text}</description></item>"
        for title, guid, link, text in items
    )
    return (
        "<?xml version='1.0' encoding='utf-8'?>\n<rss version='2.0'><channel>"
        "<title>Hostile</title><link>https://hostile.test/</link><description>d</description>"
        f"{body}</channel></rss>"
    ).encode()


def hostile_json_feed() -> bytes:
    """A JSON Feed with a lone surrogate in a title, a NUL in a guid and an escaped pair."""
    return (
        '{"version": "https://jsonfeed.org/version/1.1", "title": "Hostile JSON", "items": ['
        '{"id": "j\\u0000-1", "title": "Lone \\ud83d half", "url": "https://hostile.test/j1",'
        ' "content_text": "pair \\ud83d\\ude00 and lone \\ude00"},'
        '{"id": "j-2", "title": "A plain good entry", "url": "https://hostile.test/j2"}]}'
    ).encode("ascii")


def crowded_element(attributes: int = 40_000) -> bytes:
    """An RSS feed with one element of many attributes: n² CPU in feedparser's strict parser
    (40,000: 429 KB, 22 s of CPU before it was refused)."""
    crowd = " ".join(f'a{i}="v"' for i in range(attributes))
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Crowded'
        f"</title><item><title {crowd}>x</title><guid>crowd-1</guid></item></channel></rss>"
    ).encode()


def slow_markup(elements: int = 400_000) -> bytes:
    """Markup no pre-check refuses that still costs seconds of CPU to parse (~5 s of CPU for
    400,000 unclosed elements, 3.6 MB): for the CPU budget of a parse."""
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>slow</title>'
        "<item><title>x</title>" + '<a x="1">' * elements + "</channel></rss>"
    ).encode()
