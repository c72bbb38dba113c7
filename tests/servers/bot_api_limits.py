"""Telegram's flood limits for the Bot API test server, as token buckets.

Overall 30 messages/s, per chat 1/s with a small burst, per group 20/min (Bot FAQ); each
limit is a bucket of `burst` tokens refilled at its rate. A message takes a token from
every bucket that applies, or from none: a refused message costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Limits:
    """Flood limits; `enforce=False` turns them all off."""

    overall_per_second: float = 30.0
    overall_burst: float = 30.0
    chat_per_second: float = 1.0
    chat_burst: float = 3.0
    group_per_minute: float = 20.0
    group_burst: float = 20.0
    enforce: bool = True


class _Bucket:
    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst, self.tokens, self.stamp = rate, burst, burst, now

    def wait(self, now: float) -> float:
        """Seconds until a token is there (0: one is there now)."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate


@dataclass
class FloodControl:
    """Not thread-safe: the server calls it under its lock."""

    limits: Limits = field(default_factory=Limits)
    refused: dict[str, int] = field(default_factory=dict)  # by limit: all | chat | group
    _buckets: dict[tuple[str, int], _Bucket] = field(default_factory=dict)

    def reset(self, limits: Limits) -> None:
        self.limits = limits
        self._buckets.clear()

    def check(self, chat_id: int, now: float) -> float:
        """0 and the tokens taken, or the seconds to wait (and nothing taken)."""
        limits = self.limits
        if not limits.enforce:
            return 0.0
        wanted = [
            ("all", 0, limits.overall_per_second, limits.overall_burst),
            ("chat", chat_id, limits.chat_per_second, limits.chat_burst),
        ]
        if chat_id < 0:
            wanted.append(("group", chat_id, limits.group_per_minute / 60, limits.group_burst))
        buckets = []
        for kind, key, rate, burst in wanted:
            bucket = self._buckets.get((kind, key))
            if bucket is None:
                bucket = self._buckets[(kind, key)] = _Bucket(rate, burst, now)
            buckets.append(bucket)
        waits = [bucket.wait(now) for bucket in buckets]
        longest = max(waits)
        if longest > 0:
            kind = wanted[waits.index(longest)][0]
            self.refused[kind] = self.refused.get(kind, 0) + 1
            return longest
        for bucket in buckets:
            bucket.tokens -= 1
        return 0.0
