"""Make fetched feed bytes safe and unambiguous before feedparser reads them (pure).

* Encoding: UTF-16/32 is re-encoded as UTF-8, and a body that is valid UTF-8 is read
  as UTF-8 whatever it declares (a wrong declared charset is the commonest fault).
* Entities: a DOCTYPE internal subset (`<!DOCTYPE x [ <!ENTITY ...> ]>`) is removed.
  feedparser keeps "safe" entity declarations and its lenient parser expands them, so
  one large entity referenced many times turns kilobytes into hundreds of megabytes.
  Entity declarations that cannot be placed in a well-formed prolog are refused.
* Surrogate references: `&#55357;&#56832;` (an emoji as two UTF-16 halves, common from
  CMSs) becomes `&#128512;`, and a lone half is removed; feedparser fails on them.
* Crowded elements: an element with more than `MAX_ATTRIBUTES` attributes is refused.
  The strict parser looks each attribute up by a linear scan (`getValueByQName`), so n
  attributes cost n² steps: 40,000 of them (429 KB) took 22 s of CPU. Real feeds have at
  most about 50 (the 207 captured feeds: 49). The check is one regular-expression search,
  linear in the body; the CPU budget of `bounded` stays the backstop for what it misses.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping

from bot.errors import ParseError
from bot.feeds.textsafe import join_surrogate_refs_in

MAX_ATTRIBUTES = 500  # 10x the most seen in real feeds; 500² lookups take milliseconds

_XML_DECL = re.compile(rb"^(\s*<\?xml[^>]*?encoding\s*=\s*)([\"'])[^\"']*\2")
_CHARSET = re.compile(r";\s*charset\s*=\s*[^;]*", re.IGNORECASE)
_FIRST_ELEMENT = re.compile(rb"<\w")
_ENTITY_DECL = re.compile(rb"<!ENTITY", re.IGNORECASE)
_PROLOG_ITEM = re.compile(rb"\s+|<\?.*?\?>|<!--.*?-->", re.DOTALL)
_DOCTYPE_SCAN = re.compile(rb"\"[^\"]*\"|'[^']*'|(?P<mark>[\[>])")
_SUBSET_SCAN = re.compile(rb"\"[^\"]*\"|'[^']*'|<!--.*?-->|(?P<mark>\])", re.DOTALL)
# An element start with MAX_ATTRIBUTES `name=value` pairs; no two ways to split any of it,
# so a failed attempt backtracks linearly.
_CROWDED_ELEMENT = re.compile(
    rb"<[A-Za-z_:][^\s<>/]*(?:\s+[^\s=<>/]+\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s<>\"']*)){%d}"
    % MAX_ATTRIBUTES
)
_UTF16_32 = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _with_utf8(headers: Mapping[str, str], body: bytes) -> tuple[bytes, dict[str, str]]:
    """Declare UTF-8 in both the XML declaration and the Content-Type."""
    fixed = dict(headers)
    media = _CHARSET.sub("", fixed.get("content-type", "")).strip() or "application/xml"
    fixed["content-type"] = f"{media}; charset=utf-8"
    return _XML_DECL.sub(rb"\1\2utf-8\2", body, count=1), fixed


def _declared(headers: Mapping[str, str], body: bytes) -> str:
    match = re.search(r"charset\s*=\s*[\"']?([\w.:-]+)", headers.get("content-type", ""), re.I)
    if match:
        return match.group(1).lower()
    decl = re.match(rb"\s*<\?xml[^>]*?encoding\s*=\s*[\"']([\w.:-]+)", body)
    return decl.group(1).decode("ascii").lower() if decl else ""


def _fix_encoding(
    body: bytes, headers: Mapping[str, str], warnings: list[str]
) -> tuple[bytes, dict[str, str]]:
    """Re-encode UTF-16/32 as UTF-8; trust valid UTF-8 over a declared legacy charset."""
    codec = next((codec for mark, codec in _UTF16_32 if body.startswith(mark)), None)
    if codec is None and len(body) >= 4 and body[1] == body[3] == 0 and body[0] and body[2]:
        codec = "utf-16-le"  # no BOM: "<\0?\0", "<\0r\0" ...
    elif codec is None and len(body) >= 4 and body[0] == body[2] == 0 and body[1] and body[3]:
        codec = "utf-16-be"
    if codec is not None:
        text = body.decode(codec, errors="replace").lstrip("\ufeff")
        return _with_utf8(headers, text.encode("utf-8"))
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return body, dict(headers)  # feedparser's own detection and fallbacks
    declared = _declared(headers, body)
    plain = declared.replace("-", "").replace("_", "")
    if declared and plain not in ("utf8", "usascii", "ascii") and not body.isascii():
        warnings.append(f"declared {declared[:30]} but the body is UTF-8; read as UTF-8")
    return _with_utf8(headers, body)


def _strip_internal_subset(body: bytes) -> tuple[bytes, bool]:
    """Remove the `[ ... ]` part of a DOCTYPE in the prolog; True if one was removed."""
    index = 3 if body.startswith(codecs.BOM_UTF8) else 0
    while True:  # skip whitespace, processing instructions and comments
        match = _PROLOG_ITEM.match(body, index)
        if not match:
            break
        index = match.end()
    if body[index : index + 9].upper() != b"<!DOCTYPE":
        return body, False
    opening = _first_unquoted(_DOCTYPE_SCAN, body, index + 9)
    if opening < 0:
        raise ParseError("refused: unterminated DOCTYPE")
    if body[opening] == ord(">"):
        return body, False
    closing = _first_unquoted(_SUBSET_SCAN, body, opening + 1)
    end = body.find(b">", closing) if closing >= 0 else -1
    if end < 0:
        raise ParseError("refused: unterminated DOCTYPE with entity declarations")
    head = body[index:opening].rstrip()
    return body[:index] + head + b">" + body[end + 1 :], True


def _first_unquoted(scan: re.Pattern[bytes], body: bytes, start: int) -> int:
    """Start of the first match of `scan` that is a bare mark (not a quoted string)."""
    for match in scan.finditer(body, start):
        if match.lastgroup == "mark":
            return match.start()
    return -1


def make_safe(
    body: bytes, headers: Mapping[str, str], warnings: list[str]
) -> tuple[bytes, dict[str, str]]:
    """The body and headers to give feedparser; notes what was changed in `warnings`.

    Raises `ParseError` for entity declarations it cannot remove cleanly.
    """
    body, fixed = _fix_encoding(body, headers, warnings)
    if _CROWDED_ELEMENT.search(body):
        raise ParseError(f"refused: an element with more than {MAX_ATTRIBUTES} attributes")
    body = join_surrogate_refs_in(body.lstrip(b" \t\r\n"))  # whitespace before <?xml: fails
    body, stripped = _strip_internal_subset(body)
    if stripped:
        warnings.append("removed a DOCTYPE with entity declarations (entities are not expanded)")
    first = _FIRST_ELEMENT.search(body)
    prolog = body[: first.start()] if first else body
    if _ENTITY_DECL.search(prolog):
        raise ParseError("refused: XML entity declarations outside a well-formed DOCTYPE")
    return body, fixed
