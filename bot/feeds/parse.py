"""Parse fetched feed bytes into `Entry` records (pure; CPU-bound, run it in a thread).

feedparser reads RSS 0.9x/1.0/2.0 and Atom; a small reader here takes JSON Feed.
Nothing downstream sees a feedparser dict. Before feedparser runs, `xmlsafe` fixes
the encoding and removes DOCTYPE entity declarations (the entity blow-up trap).
feedparser always gets `io.BytesIO(body)`: given bytes it would try them as a path.

Every failure is a `ParseError` with a short reason ("not a feed: got an HTML page");
a feed that is not well-formed but still yields entries is used, with a warning.

News aggregators (Google News and the like) publish headlines only: the entry's outlet
comes from its `<source>`, a " - Outlet" suffix naming it leaves the title, and a
description that only links the headline (and related ones) beside outlet names is no text.

Every string of an `Entry` is storable (`textsafe`: no NUL or other control characters,
no surrogates) and bounded. Links and guids are bounded in UTF-8 bytes, because they are
index keys and PostgreSQL refuses a btree row over 2,704 bytes. A link that is not
http(s), holds control characters or is too long is dropped, never cut (a cut link leads
elsewhere): the entry then has no link (`""`), and does not borrow the feed's URL. A guid
that is too long is replaced by `sha256:` and the hex digest of it: stable across polls,
so the entry is still recognised, and short.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import xml.sax
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import feedparser

from bot.errors import ParseError
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
from bot.feeds.schedule import ttl_seconds, update_period_seconds
from bot.feeds.textsafe import storable
from bot.feeds.xmlsafe import make_safe
from bot.records import Entry, FeedSpec

MAX_TEXT_CHARS = 20_000
MAX_TITLE_CHARS = 500  # at most 2,000 bytes of UTF-8: within an index row
# Index keys: well under PostgreSQL's 2,704-byte btree row limit, with room for the feed id.
MAX_GUID_BYTES = 512  # real guids are URLs or UUIDs; longer ones are hashed
MAX_LINK_BYTES = 2_048  # what browsers and Telegram links handle; render refuses longer hrefs
_FALLBACK_TITLE_CHARS = 120

_HTML_START = re.compile(rb"<(?:!doctype\s+html|html[\s>]|head[\s>]|body[\s>])", re.IGNORECASE)
_LANGUAGE = re.compile(r"[A-Za-z]{2,8}")


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """A feed's entries (document order, bounded), what was odd about it, and its title;
    the pace it declares, in seconds (`<ttl>`, `sy:updatePeriod`/`sy:updateFrequency`)."""

    entries: tuple[Entry, ...]
    warnings: tuple[str, ...]
    title: str
    ttl: float | None = None
    update_period: float | None = None


# -- explaining failures ---------------------------------------------------------------


def _describe(exc: object) -> str:
    if isinstance(exc, xml.sax.SAXParseException):
        return f"line {exc.getLineNumber()}: {exc.getMessage()}"[:120]
    if isinstance(exc, feedparser.NonXMLContentType):
        return f"served as non-XML type ({str(exc).split(' is ', 1)[0][:40]})"
    if isinstance(exc, feedparser.CharacterEncodingOverride):
        return str(exc)[:120]
    return f"{type(exc).__name__}: {exc}"[:120]


def _not_a_feed(result: Mapping[str, Any], body: bytes, headers: Mapping[str, str]) -> str:
    head = body[:4096]
    if "html" in headers.get("content-type", "").lower() or _HTML_START.search(head):
        return "not a feed: got an HTML page"
    if head.lstrip()[:1] in (b"{", b"["):
        return "not a feed: got JSON that is not a JSON Feed"
    if result.get("bozo"):
        return f"not a feed: {_describe(result.get('bozo_exception'))}"
    return "not a feed: no RSS, RDF or Atom root element"


# -- building entries ------------------------------------------------------------------


def _language(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    match = _LANGUAGE.match(value.strip())
    return match.group(0).lower() if match else None


def _when(raw: Mapping[str, Any]) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        parsed = raw.get(key)
        if parsed:
            try:
                year, month, day, hour, minute, second = parsed[:6]
                return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
            except (TypeError, ValueError, OverflowError):
                continue
    return None


def _description(raw: Mapping[str, Any]) -> tuple[str, str]:
    """The longest of content and summary, as HTML and as plain text."""
    best: Mapping[str, Any] | None = None
    candidates: list[Any] = [*raw.get("content", ()), raw.get("summary_detail")]
    for candidate in candidates:
        if (
            isinstance(candidate, Mapping)
            and isinstance(candidate.get("value"), str)
            and (best is None or len(candidate["value"]) > len(best["value"]))
        ):
            best = candidate
    if best is None:
        summary = raw.get("summary")
        value = summary if isinstance(summary, str) else ""
    else:
        value = best["value"]
        if best.get("type") == "text/plain":
            value = value.replace("&", "&amp;").replace("<", "&lt;")
    return value, html_to_text(value, max_chars=MAX_TEXT_CHARS)


def _outlet(raw: Mapping[str, Any], title: str, fonts: tuple[str, ...]) -> str:
    """The publisher's name: the entry's `<source>` (RSS) or `source` feed title (Atom); else
    a trailing " - Outlet" of the title that the description's `<font>` also names (the
    aggregator pattern). A source named like the entry itself (forums give each topic's own
    feed) names no outlet."""
    source = raw.get("source")
    name = source.get("title") if isinstance(source, Mapping) else None
    if isinstance(name, str):
        outlet = clean_title(name, max_chars=MAX_TITLE_CHARS)
        if outlet and not same_words(outlet, title):
            return outlet
    return outlet_suffix(title, fonts)


def headline(raw: Mapping[str, Any]) -> tuple[str, str, str]:
    """Title, outlet and text of an entry, from feedparser's keys (title, summary, content,
    source) or a dict that has some of them.

    The title loses a " - Outlet" suffix naming the outlet; a description that only links
    the headline (and related headlines) followed by outlet names, as news aggregators
    write it, is no text: it would repeat the title and the outlet to the decision.
    """
    markup, text = _description(raw)
    full_title = clean_title(raw.get("title") or "", max_chars=MAX_TITLE_CHARS)
    fonts = element_texts(markup, "font", max_chars=MAX_TITLE_CHARS)
    outlet = _outlet(raw, full_title, fonts)
    title = without_outlet(full_title, outlet)
    if text and title:
        # Related headlines are links each followed by its outlet's name: only with names.
        links = element_texts(markup, "a", max_chars=MAX_TITLE_CHARS) if fonts else ()
        if only_headlines(text, (full_title, title), (outlet, *fonts), links):
            text = ""
    return title, outlet, text


def _web_url(value: object, base: str) -> str | None:
    """An absolute, canonical http(s) link within the bound, or None (dropped, never cut)."""
    if not isinstance(value, str):
        return None
    value = value.strip().replace("\t", "").replace("\n", "").replace("\r", "")  # as browsers
    if not value or storable(value) != value:  # control characters or surrogates
        return None
    try:
        url = canonical_url(urljoin(base, value))
    except ValueError:  # e.g. "http://[not-an-address"
        return None
    if not url.startswith(("http://", "https://")) or len(url.encode()) > MAX_LINK_BYTES:
        return None
    return url


def _entry_link(raw: Mapping[str, Any], base: str) -> str | None:
    link = _web_url(raw.get("link"), base)
    if link:
        return link
    for candidate in raw.get("links", ()):
        if isinstance(candidate, Mapping) and candidate.get("rel", "alternate") == "alternate":
            link = _web_url(candidate.get("href"), base)
            if link:
                return link
    guid = raw.get("id")
    if isinstance(guid, str) and guid.strip().startswith(("http://", "https://")):
        return _web_url(guid, base)
    return None


def _guid(raw: Mapping[str, Any], link: str | None, title: str, text: str) -> str:
    guid = raw.get("id")
    guid = storable(guid, keep_newlines=False).strip() if isinstance(guid, str) else ""
    if guid:
        if len(guid.encode()) <= MAX_GUID_BYTES:
            return guid
        return "sha256:" + hashlib.sha256(guid.encode()).hexdigest()
    if link:
        return link
    digest = hashlib.sha256(f"{title}\n{text}".encode()).hexdigest()
    return "sha256:" + digest[:32]


def _entry(raw: Mapping[str, Any], feed: FeedSpec, language: str) -> Entry | None:
    title, outlet, text = headline(raw)
    link = _entry_link(raw, feed.url)
    if not title:
        title = first_words(text, max_chars=_FALLBACK_TITLE_CHARS) or first_words(
            link or "", max_chars=MAX_TITLE_CHARS
        )
    if not title:
        return None
    detail = (raw.get("content") or [None])[0] or raw.get("summary_detail")
    own_language = _language(detail.get("language")) if isinstance(detail, Mapping) else None
    return Entry(
        feed_url=feed.url,
        feed_name=feed.name,
        guid=_guid(raw, link, title, text),
        title=title,
        text=text,
        link=link or "",  # no link of its own: never the feed's URL
        published=_when(raw),
        language=own_language or language,
        outlet=outlet,
    )


def _entries(
    raws: Sequence[Mapping[str, Any]], feed: FeedSpec, language: str, warnings: list[str]
) -> tuple[Entry, ...]:
    entries: list[Entry] = []
    seen: set[str] = set()
    empty = repeated = broken = 0
    for raw in raws:
        try:
            entry = _entry(raw, feed, language)
        except (TypeError, ValueError, KeyError, AttributeError, IndexError):
            broken += 1
            continue
        if entry is None:
            empty += 1
        elif entry.guid in seen:
            repeated += 1
        else:
            seen.add(entry.guid)
            entries.append(entry)
    for count, what in (
        (empty, "without title, text or link"),
        (repeated, "repeating an earlier id"),
        (broken, "that could not be read"),
    ):
        if count:
            warnings.append(f"skipped {count} entries {what}")
    return tuple(entries)


def _json_feed(body: bytes, feed: FeedSpec, max_entries: int) -> ParsedFeed | None:
    """Read a JSON Feed (jsonfeed.org); None if the body is not one."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or not str(doc.get("version", "")).startswith(
        "https://jsonfeed.org/version/"
    ):
        return None
    items = doc.get("items")
    if not isinstance(items, list):
        raise ParseError("JSON Feed without an items list")
    raws: list[dict[str, Any]] = []
    for item in items[:max_entries]:
        if not isinstance(item, dict):
            continue
        html_part = item.get("content_html") or item.get("summary") or ""
        plain = item.get("content_text")
        detail = (
            {"value": plain, "type": "text/plain"}
            if isinstance(plain, str) and not html_part
            else {"value": html_part if isinstance(html_part, str) else "", "type": "text/html"}
        )
        raws.append(
            {
                "id": str(item["id"]) if item.get("id") is not None else None,
                "title": item.get("title") if isinstance(item.get("title"), str) else "",
                "link": item.get("url") or item.get("external_url"),
                "summary_detail": {**detail, "language": item.get("language")},
                "published_parsed": _iso_time(
                    item.get("date_published") or item.get("date_modified")
                ),
            }
        )
    warnings: list[str] = []
    if len(items) > max_entries:
        warnings.append(f"feed has {len(items)} entries; kept the first {max_entries}")
    language = _language(doc.get("language")) or feed.language
    entries = _entries(raws, feed, language, warnings)
    title = doc.get("title")
    title = clean_title(title, max_chars=MAX_TITLE_CHARS) if isinstance(title, str) else ""
    return ParsedFeed(entries, tuple(warnings), title)


def _iso_time(value: object) -> tuple[int, ...] | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return tuple(when.astimezone(UTC).timetuple())[:6]


# -- the entry point -------------------------------------------------------------------


def parse_feed(
    body: bytes, headers: Mapping[str, str], feed: FeedSpec, *, max_entries: int = 200
) -> ParsedFeed:
    """Entries of one fetched feed body; raises `ParseError` with a short reason.

    In-process and unbounded in CPU time: the pipeline calls `bounded.parse_bounded`.
    """
    try:
        return _parse(body, headers, feed, max_entries)
    except ParseError:
        raise
    except Exception as exc:  # hostile input found a path nobody foresaw: still one reason
        raise ParseError(f"could not read the feed ({type(exc).__name__})") from exc


def _parse(body: bytes, headers: Mapping[str, str], feed: FeedSpec, max_entries: int) -> ParsedFeed:
    if not body.strip():
        raise ParseError("empty body")
    headers = {k.lower(): v for k, v in headers.items()}
    if body.lstrip(b" \t\r\n\xef\xbb\xbf")[:1] == b"{":
        parsed = _json_feed(body, feed, max_entries)
        if parsed is not None:
            return parsed
    warnings: list[str] = []
    safe_body, safe_headers = make_safe(body, headers, warnings)
    try:
        result = feedparser.parse(
            io.BytesIO(safe_body),
            response_headers=safe_headers,
            sanitize_html=False,
            resolve_relative_uris=False,
        )
    except Exception as exc:  # feedparser on hostile input: never let it escape
        raise ParseError(f"feed parser failed ({type(exc).__name__})") from exc
    raws = result.get("entries") or []
    if not raws and not result.get("version"):
        raise ParseError(_not_a_feed(result, safe_body, headers))
    if result.get("bozo"):
        warnings.append(f"read leniently: {_describe(result.get('bozo_exception'))}")
    if not raws:
        warnings.append("feed has no entries")
    if len(raws) > max_entries:
        warnings.append(f"feed has {len(raws)} entries; kept the first {max_entries}")
    meta = result.get("feed") or {}
    language = _language(meta.get("language")) or feed.language
    entries = _entries(raws[:max_entries], feed, language, warnings)
    title = clean_title(meta.get("title") or "", max_chars=MAX_TITLE_CHARS)
    return ParsedFeed(
        entries=entries,
        warnings=tuple(warnings),
        title=title,
        ttl=ttl_seconds(meta.get("ttl")),
        update_period=update_period_seconds(
            meta.get("sy_updateperiod"), meta.get("sy_updatefrequency")
        ),
    )
