"""Normalise untrusted feed strings: HTML to plain text, titles, outlets, canonical links.

Pure functions over strings. Every output is plain, storable text (no markup, entities
decoded, control characters and surrogates removed, whitespace folded: see `textsafe`)
and bounded in length; escaping for
Telegram happens later, at the rendering boundary.
"""

from __future__ import annotations

import html
import re
from itertools import islice
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from bot.decide.fold import fold
from bot.decide.textcut import shorten
from bot.feeds.textsafe import join_surrogate_refs, storable

# Elements whose content is never text a reader sees.
_INVISIBLE = re.compile(
    r"<(script|style|noscript|template|head|svg|math|iframe|object|select)\b[^>]*>"
    r".*?(?:</\1\s*>|\Z)",
    re.IGNORECASE | re.DOTALL,
)
_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
_CDATA = re.compile(r"<!\[CDATA\[(.*?)(?:\]\]>|\Z)", re.DOTALL)
_DECLARATION = re.compile(r"<[!?][^>]*>")
_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
_UNFINISHED_TAG = re.compile(r"<[a-zA-Z/!?][^>]*\Z")

_PARAGRAPH_TAG = re.compile(
    r"</?(?:p|div|h[1-6]|blockquote|pre|table|ul|ol|dl|section|article|header|footer|aside"
    r"|figure|figcaption|hr|address|main|nav|details|summary|form|fieldset)\b[^>]*>",
    re.IGNORECASE,
)
_LINE_TAG = re.compile(r"</?(?:br|li|tr|dt|dd|caption|option)\b[^>]*>", re.IGNORECASE)
_CELL_TAG = re.compile(r"</?t[dh]\b[^>]*>", re.IGNORECASE)
# Private-use characters mark breaks while the markup is stripped (removed from input first).
_PARAGRAPH_MARK = "\ue000"
_LINE_MARK = "\ue001"
_MARKS = re.compile("[\ue000\ue001]")
# Control characters (C0 but tab/newline, DEL, C1), zero-width space and BOM: dropped.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b\ufeff]")
_BLANK_LINES = re.compile(r"\n{3,}")

# How aggregators (Google News, Bing News, Yahoo) end a headline with its outlet.
_OUTLET_SEPARATORS = (" - ", " \u2013 ", " \u2014 ", " | ")
# The visible text of an element, for the link and outlet parts of an aggregator's summary.
_ELEMENT = {
    tag: re.compile(rf"<{tag}\b[^>]*>(.*?)</{tag}\s*>", re.IGNORECASE | re.DOTALL)
    for tag in ("a", "font")
}
_MAX_ELEMENTS = 50  # an aggregator lists a handful of related headlines; past this, prose
_WORD = re.compile(r"\w+")

_TRACKING_PARAMS = frozenset(
    (
        "fbclid",
        "gclid",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "twclid",
        "igshid",
        "mc_cid",
        "mc_eid",
        "_hsenc",
        "_hsmi",
        "mkt_tok",
        "vero_id",
        "oly_enc_id",
        "oly_anon_id",
        "rb_clickid",
    )
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _strip_markup(fragment: str, input_limit: int) -> str:
    """Drop markup but keep block boundaries as private marks; entities still encoded."""
    if len(fragment) > input_limit:
        fragment = _UNFINISHED_TAG.sub("", fragment[:input_limit])
    if _PARAGRAPH_MARK in fragment or _LINE_MARK in fragment:
        fragment = _MARKS.sub("", fragment)
    if "<" not in fragment:
        return fragment
    text = _COMMENT.sub(" ", fragment)
    text = _CDATA.sub(r"\1", text)
    text = _INVISIBLE.sub(" ", text)
    text = _PARAGRAPH_TAG.sub(_PARAGRAPH_MARK, text)
    text = _LINE_TAG.sub(_LINE_MARK, text)
    text = _CELL_TAG.sub(" ", text)
    text = _TAG.sub("", text)
    return _DECLARATION.sub(" ", text)


def _clean_chars(text: str) -> str:
    """Entities decoded (a surrogate pair written as two references becomes its character),
    then control characters, zero-width spaces and surrogates removed."""
    return _CONTROL.sub("", storable(html.unescape(join_surrogate_refs(text))))


def html_to_text(fragment: str, *, max_chars: int = 20_000) -> str:
    """Plain text of an HTML fragment: paragraphs separated by a blank line, bounded.

    Scripts, styles and comments are dropped, block elements become paragraph or line
    breaks, entities (named, decimal, hex) are decoded, whitespace is folded and the
    result is cut at a word boundary with an ellipsis past `max_chars`.
    """
    if not fragment:
        return ""
    text = _clean_chars(_strip_markup(fragment, input_limit=max(8 * max_chars, 4096)))
    text = " ".join(text.split())  # str.split() knows every Unicode space
    if _PARAGRAPH_MARK in text or _LINE_MARK in text:
        text = text.replace(_PARAGRAPH_MARK, "\n\n").replace(_LINE_MARK, "\n")
        text = text.replace(" \n", "\n").replace("\n ", "\n")
        text = _BLANK_LINES.sub("\n\n", text).strip()
    return shorten(text, max_chars)


def clean_title(raw: str, *, max_chars: int = 500) -> str:
    """A title as one line of plain text: tags dropped, entities decoded, bounded."""
    if not raw:
        return ""
    text = _strip_markup(raw, input_limit=max(8 * max_chars, 4096))
    text = text.replace(_PARAGRAPH_MARK, " ").replace(_LINE_MARK, " ")
    return shorten(" ".join(_clean_chars(text).split()), max_chars)


def first_words(text: str, *, max_chars: int = 120) -> str:
    """A stand-in title: the start of the text on one line, cut at a word boundary."""
    return shorten(" ".join(text.split()), max_chars)


def element_texts(fragment: str, tag: str, *, max_chars: int = 500) -> tuple[str, ...]:
    """The plain text of each `<a>` or `<font>` element of an HTML fragment, in order.

    Reads the first 64,000 characters and at most 50 elements; each text is a clean title.
    """
    matches = islice(_ELEMENT[tag].finditer(fragment[:64_000]), _MAX_ELEMENTS)
    texts = (clean_title(match.group(1), max_chars=max_chars) for match in matches)
    return tuple(text for text in texts if text)


def _words(text: str) -> str:
    """Case, accent, punctuation and space insensitive form, padded for whole-word search."""
    return " " + " ".join(_WORD.findall(fold(text))) + " "


def same_words(a: str, b: str) -> bool:
    """Whether two strings say the same words (case, accents, punctuation and spaces aside)."""
    return _words(a) == _words(b)


def without_outlet(title: str, outlet: str) -> str:
    """`title` without a trailing " - Outlet" (or " – ", " — ", " | ") naming `outlet`.

    Only the outlet's own name goes (compared folded); any other suffix stays, and so does a
    title that would be left empty ("Mali - Algeria: talks resume" is kept whole).
    """
    if not outlet:
        return title
    name = _words(outlet)
    if name == "  ":
        return title
    cut = len(title)
    for separator in _OUTLET_SEPARATORS:
        at = title.find(separator)
        while at > 0:
            if _words(title[at + len(separator) :]) == name:
                cut = min(cut, at)
                break
            at = title.find(separator, at + 1)
    head = title[:cut].rstrip()
    return head if _WORD.search(head) else title


def outlet_suffix(title: str, names: tuple[str, ...]) -> str:
    """The outlet a title ends with (" - Outlet"), when it is one of `names`; else ""."""
    for name in names:
        if without_outlet(title, name) != title:
            return name
    return ""


def only_headlines(
    text: str, headlines: tuple[str, ...], names: tuple[str, ...], links: tuple[str, ...] = ()
) -> bool:
    """Whether `text` says nothing but the headline and outlet names (an aggregator's summary).

    Google News and others describe an entry by linking its headline, followed by the
    outlet's name, sometimes with a list of related headlines, each followed by its outlet.
    `text` is that description as plain text; `headlines` the entry's title (with and
    without its outlet suffix); `names` the outlets; `links` the texts of the description's
    links. The other links count as headlines only when one of `headlines` is there too.
    Compared case, accent, punctuation and space insensitive, word by word.
    """
    if not _WORD.search(text):
        return True
    if len(text) > 2 * sum(map(len, (*headlines, *names, *links))):  # prose: no need to look
        return False
    rest = _words(text)
    own = [_words(h) for h in headlines if _WORD.search(h)]
    if not any(h in rest for h in own):
        return False
    pieces = own + [_words(n) for n in (*names, *links) if _WORD.search(n)]
    for piece in sorted(set(pieces), key=len, reverse=True):
        while piece in rest:  # padded pieces: whole words only; a loop for adjacent repeats
            rest = rest.replace(piece, " ")
    return not _WORD.search(rest)


def _is_tracking(raw_key: str) -> bool:
    key = unquote_plus(raw_key).strip().lower()
    return key.startswith("utm_") or key in _TRACKING_PARAMS


def canonical_url(url: str) -> str:
    """The link used for dedup: no tracking parameters or fragment, lower-case host.

    Drops `utm_*`, `fbclid`, `gclid`, `mc_cid`/`mc_eid` and similar click ids, the
    fragment and a default port; lower-cases scheme and host; keeps the other query
    parameters in their order and encoding; strips a trailing slash from the path
    (an empty path becomes "/"). Anything that is not an absolute http(s) URL comes
    back stripped of surrounding whitespace, otherwise unchanged.
    """
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return url
    host = parts.hostname.lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{host}" if userinfo else host
    path = parts.path or "/"
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    kept = [
        pair for pair in parts.query.split("&") if pair and not _is_tracking(pair.partition("=")[0])
    ]
    canonical = urlunsplit((scheme, netloc, path, "&".join(kept), ""))
    if canonical != canonical.strip():  # dropping a fragment or parameter bared a space
        return canonical_url(canonical)  # shorter each time: ends; keeps this idempotent
    return canonical
