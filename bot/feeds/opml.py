"""OPML 2.0 subscription lists in and out (pure): how a reader's feeds move in one step.

Reading goes through defusedxml: a DOCTYPE (and so any entity declaration, external or
internal) is refused, so a list cannot expand to gigabytes or read local files. Every
`<outline>` with an `xmlUrl` is a feed, at any depth (readers nest them in folders); its
name is `text`, else `title` (none when it is the URL); `language` is kept when it is one
we read (en, fr).
Writing builds the tree with `xml.etree`, which escapes every attribute value.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

import defusedxml.ElementTree as safe_et
from defusedxml import DefusedXmlException

from bot.errors import SahelWatchError

MAX_OPML_BYTES = 5_000_000
MAX_FEEDS = 5_000
LANGUAGES = ("en", "fr")


class OpmlError(SahelWatchError):
    """The file is not an OPML list we accept; the message says why."""


@dataclass(frozen=True, slots=True)
class OpmlFeed:
    """One subscription: its URL, the reader's name for it, and its language if known."""

    url: str
    name: str = ""
    language: str = ""


def read_opml(data: bytes) -> list[OpmlFeed]:
    """The feeds an OPML document lists, in document order, each URL once."""
    if len(data) > MAX_OPML_BYTES:
        raise OpmlError(f"larger than {MAX_OPML_BYTES} bytes")
    try:
        root = safe_et.fromstring(data, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise OpmlError(f"refused: {type(exc).__name__} (no DTD or entities allowed)") from None
    except ET.ParseError as exc:
        raise OpmlError(f"not well-formed XML ({exc})") from None
    if root.tag != "opml":
        raise OpmlError(f"the root element is <{root.tag[:40]}>, not <opml>")
    body = root.find("body")
    if body is None:
        raise OpmlError("no <body> element")
    feeds: list[OpmlFeed] = []
    seen: set[str] = set()
    for outline in body.iter("outline"):
        url = (outline.get("xmlUrl") or "").strip()
        if not url or url in seen:
            continue
        if len(feeds) == MAX_FEEDS:
            raise OpmlError(f"more than {MAX_FEEDS} feeds")
        seen.add(url)
        name = " ".join((outline.get("text") or outline.get("title") or "").split())
        name = "" if name == url else name  # what `write_opml` writes for a feed without one
        language = (outline.get("language") or "").strip().lower()[:2]
        feeds.append(OpmlFeed(url, name, language if language in LANGUAGES else ""))
    return feeds


def write_opml(feeds: Sequence[OpmlFeed], *, title: str, created: datetime) -> bytes:
    """An OPML 2.0 document listing `feeds` as `type="rss"` outlines, UTF-8 encoded."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    ET.SubElement(head, "dateCreated").text = format_datetime(created, usegmt=True)
    body = ET.SubElement(root, "body")
    for feed in feeds:
        attributes = {"type": "rss", "text": feed.name or feed.url, "xmlUrl": feed.url}
        if feed.name:
            attributes["title"] = feed.name
        if feed.language:
            attributes["language"] = feed.language
        ET.SubElement(body, "outline", attributes)
    ET.indent(root)
    written: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return written + b"\n"
