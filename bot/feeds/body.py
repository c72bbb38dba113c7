"""Read an HTTP response body within a size cap, decoding gzip/deflate with a bound.

httpx decodes a whole network chunk at once, so a small gzip bomb chunk can inflate
to tens of megabytes before a caller sees it. Here the raw bytes are inflated with
`zlib`'s `max_length`, so at most the cap (plus one byte) is ever produced.
"""

from __future__ import annotations

import zlib

import httpx

from bot.errors import FetchError

DRAIN_BYTES = 64 * 1024


class BodyTooLarge(FetchError):
    """The body (decoded) is over the cap."""


class _Decoder:
    """Content-Encoding decoding with a bound on output (so a gzip bomb stays small)."""

    def __init__(self, encoding: str) -> None:
        self._encoding = encoding
        self._wbits = 32 + zlib.MAX_WBITS  # gzip or zlib header, detected
        self._z = zlib.decompressobj(self._wbits) if encoding else None
        self._started = False
        self._done = False

    def feed(self, data: bytes, room: int) -> bytes:
        """Decode `data`, returning at most `room` bytes (more means: over the cap)."""
        if self._z is None:
            return data
        out: list[bytes] = []
        while data and room > 0 and not self._done:
            try:
                piece = self._z.decompress(data, room)
            except zlib.error as exc:
                if self._encoding == "deflate" and not self._started:
                    self._z = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate
                    self._started = True
                    continue
                raise FetchError(f"cannot decode {self._encoding} body") from exc
            self._started = True
            out.append(piece)
            room -= len(piece)
            if self._z.eof:  # a gzip member ended; another may follow
                data = self._z.unused_data
                if not data.strip(b"\0"):
                    self._done = True
                else:
                    self._z = zlib.decompressobj(self._wbits)
            else:
                data = self._z.unconsumed_tail
        return b"".join(out)

    def flush(self, room: int) -> bytes:
        """What the decompressor still holds, at most `room` bytes."""
        if self._z is None or self._done or room <= 0:
            return b""
        return self._z.flush(room)


async def read_body(response: httpx.Response, cap: int) -> bytes:
    """The decoded body; `BodyTooLarge` as soon as it passes `cap` bytes."""
    declared = response.headers.get("content-length", "")
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if declared.isdigit() and int(declared) > cap:  # compressed is never much larger
        raise BodyTooLarge(f"body larger than {cap} bytes")
    if encoding not in ("", "identity", "gzip", "x-gzip", "deflate"):
        raise FetchError(f"unsupported content-encoding {encoding[:20]!r}")
    decoder = _Decoder("" if encoding == "identity" else encoding)
    chunks: list[bytes] = []
    total = 0
    async for raw in response.aiter_raw():
        piece = decoder.feed(raw, cap - total + 1)
        total += len(piece)
        if total > cap:
            raise BodyTooLarge(f"body larger than {cap} bytes")
        chunks.append(piece)
    tail = decoder.flush(cap - total + 1)
    total += len(tail)
    if total > cap:
        raise BodyTooLarge(f"body larger than {cap} bytes")
    chunks.append(tail)
    return b"".join(chunks)


async def drain(response: httpx.Response) -> None:
    """Read a small unwanted body so the connection can be reused; give up past 64 KB."""
    received = 0
    async for raw in response.aiter_raw():
        received += len(raw)
        if received > DRAIN_BYTES:
            break
