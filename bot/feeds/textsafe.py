"""Storable text: what a feed string must be before it may reach the database (pure).

Feeds carry text no database column should see: NUL and other control characters, and
UTF-16 surrogates. A surrogate is not a character; Python keeps a lone one in a `str`
(from a JSON `"\\ud83d"` escape), and encoding it for storage raises `UnicodeEncodeError`.
CMSs often write an emoji as two character references, one per UTF-16 half
(`&#55357;&#56832;` for 😀): those pairs are joined into the character they mean, and
a lone half is removed (feedparser would otherwise fail on the whole feed).
"""

from __future__ import annotations

import re

# A reference to a code point in U+D800..U+DFFF, in decimal (55296..57343) or hex.
_SURROGATE_REF = (
    r"&#(?:0*(?:5529[6-9]|55[3-9][0-9]{2}|56[0-9]{3}|57[0-2][0-9]{2}|573[0-3][0-9]|5734[0-3])"
    r"|[xX]0*[dD][89a-fA-F][0-9a-fA-F]{2});"
)
_REF_STR = re.compile(_SURROGATE_REF)
_REF_BYTES = re.compile(_SURROGATE_REF.encode("ascii"))
# C0 controls but tab and newline, DEL, C1 controls, and surrogates.
_UNSTORABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _code_point(reference: str) -> int:
    number = reference[2:-1]
    return int(number[1:], 16) if number[:1] in "xX" else int(number)


def join_surrogate_refs(text: str) -> str:
    """Join `&#high;&#low;` reference pairs into one reference; drop lone halves.

    Linear: one scan for the (rare) surrogate references; nothing else is touched.
    """
    matches = list(_REF_STR.finditer(text))
    if not matches:
        return text
    pieces: list[str] = []
    position = index = 0
    while index < len(matches):
        match = matches[index]
        pieces.append(text[position : match.start()])
        position = match.end()
        index += 1
        high = _code_point(match.group(0))
        if index < len(matches) and matches[index].start() == position and high <= 0xDBFF:
            low = _code_point(matches[index].group(0))
            if low >= 0xDC00:
                pieces.append(f"&#{0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)};")
                position = matches[index].end()
                index += 1
    pieces.append(text[position:])
    return "".join(pieces)


def join_surrogate_refs_in(body: bytes) -> bytes:
    """`join_surrogate_refs` on bytes in any ASCII-compatible encoding (references are ASCII)."""
    if not _REF_BYTES.search(body):
        return body
    return join_surrogate_refs(body.decode("latin-1")).encode("latin-1")


def storable(text: str, *, keep_newlines: bool = True) -> str:
    """`text` without control characters (tab and newline kept) or surrogates.

    Surrogate pairs (two code points where one character was meant) become that character
    first; what is left of surrogates after that is removed. With `keep_newlines=False`,
    tab and newline go too (for guids and links).
    """
    if _SURROGATE.search(text):
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "ignore")
    text = _UNSTORABLE.sub("", text)
    if not keep_newlines:
        text = text.replace("\t", "").replace("\n", "")
    return text
