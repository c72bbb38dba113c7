"""bot.feeds.body: bounded reading and decoding of response bodies."""

from __future__ import annotations

import gzip
import zlib

import httpx
import pytest

from bot.errors import FetchError
from bot.feeds.body import BodyTooLarge, read_body


def response(content: bytes, **headers: str) -> httpx.Response:
    """A streamed response, as the client hands it over (body not read yet)."""
    named = {name.replace("_", "-"): value for name, value in headers.items()}
    return httpx.Response(200, headers=named, stream=httpx.ByteStream(content))


async def test_identity_body_up_to_the_cap() -> None:
    assert await read_body(response(b"x" * 100), cap=100) == b"x" * 100
    with pytest.raises(BodyTooLarge, match="body larger than 99 bytes"):
        await read_body(response(b"x" * 100), cap=99)


async def test_one_small_gzip_chunk_never_inflates_past_the_cap() -> None:
    bomb = gzip.compress(b"\0" * 20_000_000)  # about 20 KB: one network-sized chunk
    assert len(bomb) < 30_000
    with pytest.raises(BodyTooLarge):
        await read_body(response(bomb, content_encoding="gzip"), cap=1_000)


async def test_gzip_zlib_and_raw_deflate_decode() -> None:
    data = b"<rss>" + b"Bamako " * 1000 + b"</rss>"
    raw = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    cases = [
        ("gzip", gzip.compress(data)),
        ("x-gzip", gzip.compress(data)),
        ("deflate", zlib.compress(data)),
        ("deflate", raw.compress(data) + raw.flush()),
        ("identity", data),
    ]
    for encoding, encoded in cases:
        got = await read_body(response(encoded, content_encoding=encoding), cap=len(data))
        assert got == data, encoding


async def test_trailing_zero_padding_after_gzip_is_ignored() -> None:
    body = gzip.compress(b"feed") + b"\0" * 16
    assert await read_body(response(body, content_encoding="gzip"), cap=100) == b"feed"


async def test_declared_length_over_the_cap_is_refused_before_reading() -> None:
    with pytest.raises(BodyTooLarge):
        await read_body(response(b"tiny", content_length="999999"), cap=1000)


async def test_unknown_or_broken_encodings() -> None:
    with pytest.raises(FetchError, match="unsupported content-encoding 'zstd'"):
        await read_body(response(b"x", content_encoding="zstd"), cap=100)
    with pytest.raises(FetchError, match="cannot decode gzip body"):
        await read_body(response(b"not gzip", content_encoding="gzip"), cap=100)
