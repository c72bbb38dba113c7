"""bot.feeds.xmlsafe: encodings and DOCTYPE entity declarations, before feedparser."""

from __future__ import annotations

import pytest

from bot.errors import ParseError
from bot.feeds.xmlsafe import make_safe

XML = {"content-type": "application/rss+xml"}
DOC = (
    '<?xml version="1.0" encoding="{enc}"?>'
    '<rss version="2.0"><channel><title>Ségou</title></channel></rss>'
)


def safe(
    body: bytes, headers: dict[str, str] | None = None
) -> tuple[bytes, dict[str, str], list[str]]:
    warnings: list[str] = []
    fixed, fixed_headers = make_safe(body, XML if headers is None else headers, warnings)
    return fixed, fixed_headers, warnings


def test_valid_utf8_is_declared_utf8_whatever_was_declared() -> None:
    body, headers, warnings = safe(
        DOC.format(enc="iso-8859-1").encode("utf-8"),
        {"content-type": "text/xml; charset=ISO-8859-1"},
    )
    assert body.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    assert headers["content-type"] == "text/xml; charset=utf-8"
    assert warnings == ["declared iso-8859-1 but the body is UTF-8; read as UTF-8"]


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_are_reencoded(codec: str) -> None:
    body, headers, _ = safe(DOC.format(enc=codec).encode(codec))
    assert body.decode("utf-8").startswith('<?xml version="1.0" encoding="utf-8"?>')
    assert "Ségou" in body.decode("utf-8")
    assert headers["content-type"].endswith("charset=utf-8")


def test_utf16_entity_declarations_are_found_too() -> None:
    doc = '<!DOCTYPE rss [<!ENTITY big "BBBB">]><rss>&big;</rss>'.encode("utf-16-le")
    body, _, warnings = safe(doc)
    assert b"ENTITY" not in body and warnings


def test_a_legacy_body_is_left_to_feedparser() -> None:
    original = DOC.format(enc="windows-1252").encode("cp1252")
    body, headers, warnings = safe(original)
    assert body == original and headers == XML and warnings == []


def test_leading_whitespace_is_removed() -> None:
    body, _, _ = safe(b"\n\n  " + DOC.format(enc="utf-8").encode())
    assert body.startswith(b"<?xml")


def test_an_external_doctype_is_kept() -> None:
    doc = (
        b'<?xml version="1.0"?>\n'
        b'<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" '
        b'"http://my.netscape.com/publish/formats/rss-0.91.dtd">\n<rss version="0.91"/>'
    )
    body, _, warnings = safe(doc)
    assert body == doc and warnings == []


def test_the_internal_subset_is_removed_and_the_doctype_kept() -> None:
    doc = (
        b'<?xml version="1.0"?><!-- hi --><!DOCTYPE rss SYSTEM "x.dtd" [\n'
        b"<!ENTITY a \"]>\"> <!-- ]> --> <!ENTITY b '&a;&a;'>\n]>\n<rss>&b;</rss>"
    )
    body, _, warnings = safe(doc)
    assert body == b'<?xml version="1.0"?><!-- hi --><!DOCTYPE rss SYSTEM "x.dtd">\n<rss>&b;</rss>'
    assert warnings == ["removed a DOCTYPE with entity declarations (entities are not expanded)"]


@pytest.mark.parametrize(
    "doc",
    [
        b'<!DOCTYPE rss [<!ENTITY a "x">',  # never closed
        b'<!DOCTYPE rss [<!ENTITY a "x">]',  # no final >
        b'<!DOCTYPE rss "unterminated',
        b'text first <!DOCTYPE rss [<!ENTITY a "x">]><rss/>',  # not in a prolog
        b'<?xml version="1.0"?><!ENTITY a "x"><rss/>',  # no DOCTYPE at all
    ],
)
def test_entity_declarations_that_cannot_be_removed_cleanly_are_refused(doc: bytes) -> None:
    with pytest.raises(ParseError, match="refused"):
        safe(doc)


def test_entity_text_inside_content_is_not_refused() -> None:
    doc = (
        b"<rss><item><description>"
        b'<![CDATA[ write <!ENTITY x "y"> in a DTD ]]>'
        b"</description></item></rss>"
    )
    body, _, _ = safe(doc)
    assert body == doc
