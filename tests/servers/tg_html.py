"""Telegram's HTML parse mode, as the Bot API test server checks it.

`parse_html(text)` returns the plain text a Telegram client would show, or raises
`HTMLParseError` with a description worded like Telegram's ("can't parse entities: ...").
The rules follow the Bot API documentation of the HTML style:

- only these tags: b, strong, i, em, u, ins, s, strike, del, a (href), code, pre,
  blockquote, tg-spoiler, span class="tg-spoiler", tg-emoji; they must nest and close;
- `<` and `&` that are not part of a tag or an entity are errors; the named entities
  are only &lt; &gt; &amp; &quot;, numeric ones (&#39; &#x27;) are all accepted;
- a bare `>` in text is accepted, as the real server does.

The length limit (4096) is counted on the returned plain text, in UTF-16 code units.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ALLOWED_TAGS = frozenset(
    {
        "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre",
        "blockquote", "tg-spoiler", "span", "tg-emoji",
    }
)  # fmt: skip
NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY = re.compile(r"&(?:#([0-9]{1,7})|#[xX]([0-9a-fA-F]{1,6})|([A-Za-z][A-Za-z0-9]{0,31}));")
_TAG_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
_ATTR = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_-]*)\s*(?:=\s*(\"[^\"]*\"|'[^']*'|[^\s\"'>]+))?")


class HTMLParseError(ValueError):
    """The text is not valid Telegram HTML; str() is the API's description."""


@dataclass(frozen=True, slots=True)
class Link:
    text: str
    href: str


def utf16_len(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _fail(problem: str, text: str, index: int) -> HTMLParseError:
    offset = len(text[:index].encode("utf-8", "surrogatepass"))
    return HTMLParseError(f"Bad Request: can't parse entities: {problem} at byte offset {offset}")


def _decode_entity(text: str, index: int) -> tuple[str, int]:
    match = _ENTITY.match(text, index)
    if match is None:
        raise _fail("Character '&' is reserved and must be escaped as &amp;", text, index)
    decimal, hexadecimal, name = match.groups()
    if name is not None:
        if name not in NAMED_ENTITIES:
            raise _fail(f'Unsupported HTML entity "&{name};"', text, index)
        return NAMED_ENTITIES[name], match.end()
    code = int(decimal) if decimal is not None else int(hexadecimal, 16)
    if code > 0x10FFFF:
        raise _fail("Invalid numeric HTML entity", text, index)
    return chr(code), match.end()


def _decode_value(raw: str) -> str:
    if raw[:1] in {'"', "'"}:
        raw = raw[1:-1]
    out: list[str] = []
    i = 0
    while i < len(raw):
        if raw[i] == "&":
            char, i = _decode_entity(raw, i)
            out.append(char)
        else:
            out.append(raw[i])
            i += 1
    return "".join(out)


def _parse_attrs(body: str, text: str, index: int) -> dict[str, str]:
    attrs: dict[str, str] = {}
    pos = 0
    while pos < len(body):
        match = _ATTR.match(body, pos)
        if match is None or match.end() == pos:
            if body[pos:].strip() in {"", "/"}:
                break
            raise _fail("Unexpected character in start tag", text, index)
        name, value = match.group(1).lower(), match.group(2)
        attrs[name] = _decode_value(value) if value is not None else ""
        pos = match.end()
    return attrs


def parse(text: str) -> tuple[str, list[Link]]:
    """Plain text and links of a Telegram-HTML message, or HTMLParseError."""
    out: list[str] = []
    links: list[Link] = []
    stack: list[tuple[str, int, str | None]] = []  # tag, index in `out`, href
    i = 0
    while i < len(text):
        char = text[i]
        if char == "&":
            decoded, i = _decode_entity(text, i)
            out.append(decoded)
            continue
        if char != "<":
            out.append(char)
            i += 1
            continue
        end = text.find(">", i)
        if end < 0:
            raise _fail("Unclosed start tag", text, i)
        inner = text[i + 1 : end]
        if inner.startswith("/"):
            name = inner[1:].strip().lower()
            if not stack:
                raise _fail(f'Unexpected end tag "{name}"', text, i)
            open_name, start, href = stack.pop()
            if name != open_name:
                raise _fail(
                    f'Unmatched end tag, expected "</{open_name}>", found "</{name}>"', text, i
                )
            if open_name == "a" and href is not None:
                links.append(Link("".join(out[start:]), href))
            i = end + 1
            continue
        match = _TAG_NAME.match(inner)
        if match is None:
            raise _fail('Unsupported start tag ""', text, i)
        name = match.group(0).lower()
        if name not in ALLOWED_TAGS:
            raise _fail(f'Unsupported start tag "{name}"', text, i)
        attrs = _parse_attrs(inner[match.end() :], text, i)
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise _fail('Unsupported start tag "span"', text, i)
        if name == "a" and "href" not in attrs:
            raise _fail('Tag "a" must have attribute "href"', text, i)
        stack.append((name, len(out), attrs.get("href") if name == "a" else None))
        i = end + 1
    if stack:
        raise _fail(
            f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"', text, len(text)
        )
    return "".join(out), links


def parse_html(text: str) -> str:
    """The plain text of a Telegram-HTML message, or HTMLParseError."""
    return parse(text)[0]
