"""bot.feeds.textsafe: storable text, and surrogate pairs written as two references."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.feeds.textsafe import join_surrogate_refs, join_surrogate_refs_in, storable


def test_pairs_of_references_are_joined_in_decimal_hex_and_mixed() -> None:
    assert join_surrogate_refs("&#55357;&#56832;") == "&#128512;"
    assert join_surrogate_refs("&#xD83D;&#xde00;|&#55357;&#x0DE00;") == "&#128512;|&#128512;"


def test_lone_halves_are_dropped_and_a_repeated_high_half_pairs_with_the_low() -> None:
    assert join_surrogate_refs("a&#55357;b&#56832;c") == "abc"
    assert join_surrogate_refs("&#56832;&#55357;") == ""  # low then high: both lone
    assert join_surrogate_refs("&#55357;&#55357;&#56832;") == "&#128512;"


def test_other_references_are_untouched() -> None:
    text = "&#233; &#8217; &#55295; &#57344; &#x1F600; &amp;#55357;"
    assert join_surrogate_refs(text) == text


def test_bytes_in_a_legacy_encoding_keep_their_other_bytes() -> None:
    body = "Algérie &#55357;&#56832;".encode("latin-1")
    assert join_surrogate_refs_in(body) == "Algérie &#128512;".encode("latin-1")
    plain = b"no references \xff\xfe"
    assert join_surrogate_refs_in(plain) is plain


def test_storable_removes_controls_and_surrogates_and_joins_pairs() -> None:
    assert storable("a\x00b\x1b[31m\x7f\x85c\td\ne\r") == "ab[31mc\td\ne"
    assert storable("\ud83d\ude00 \ud83d alone \ude00") == "😀  alone "
    assert storable("guid\t1\n", keep_newlines=False) == "guid1"


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(), max_size=200))  # surrogates included
def test_any_text_becomes_storable(text: str) -> None:
    out = storable(text)
    out.encode("utf-8")
    assert not any(ord(c) < 32 and c not in "\t\n" for c in out)
    assert storable(out) == out


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0xD700, 0xE100) | st.sampled_from(["x", "&#", ";"]), max_size=12))
def test_any_reference_soup_leaves_no_surrogate_reference(parts: list[int | str]) -> None:
    text = "".join(p if isinstance(p, str) else f"&#{p};" for p in parts)
    out = join_surrogate_refs(text)
    assert join_surrogate_refs(out) == out
    assert not any(f"&#{n};" in out for n in range(0xD800, 0xE000))
