"""Is this replica receiving Telegram updates? What getUpdates answers say, and its health.

PTB's long polling retries network and server errors itself (with its own backoff, up to
30 s between tries) but ends for good on a refused token (401, or 404 for an unknown one),
and says nothing to the rest of the program either way. So the getUpdates requests go
through `WatchedRequest`, which tells an `UpdatesWatch` of every answer:

    200                 last_ok = now (the heartbeat)
    401 / 404           refused: the `on_refused` callback runs once (`run` exits non-zero)

The holder of the updates role writes `last_ok` into its lease row (`heartbeat_at`) at
every renewal (bot/role.py), and the reason when the token was refused (`problem`), so
`python -m bot health` in another process can tell (`updates_problem`): unhealthy when
the lease of a process on this host has seen no answer for a whole lease period
(`telegram.updates_lease_seconds`; a long poll answers at least once per quarter of it),
or when the token was refused.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import datetime
from http import HTTPStatus
from typing import Any

from sqlmodel import Session
from telegram.request import BaseRequest, HTTPXRequest, RequestData

from bot.storage.models import Lease, utcnow

UPDATES_LEASE = "telegram-updates"
POLL_TIMEOUT = 10  # seconds a getUpdates long poll waits, at most
REFUSED = (
    "the Bot API refused the bot token on getUpdates (HTTP {status}): check TELEGRAM_BOT_TOKEN"
)


def poll_timeout(lease_seconds: float) -> int:
    """Long-poll seconds: short enough that an answer comes every quarter of the lease."""
    return max(1, min(POLL_TIMEOUT, int(lease_seconds / 4)))


class UpdatesWatch:
    def __init__(self, clock: Callable[[], datetime] = utcnow) -> None:
        self._clock = clock
        self.last_ok: datetime | None = None
        self.refused: str | None = None
        self.on_refused: Callable[[str], None] | None = None

    def started(self) -> None:
        """Polling (re)starts: count from now."""
        self.last_ok = self._clock()

    def answered(self, status: int) -> None:
        if HTTPStatus.OK <= status < HTTPStatus.MULTIPLE_CHOICES:
            self.last_ok = self._clock()
        elif status in (HTTPStatus.UNAUTHORIZED, HTTPStatus.NOT_FOUND) and self.refused is None:
            self.refused = REFUSED.format(status=status)
            if self.on_refused is not None:
                self.on_refused(self.refused)


class WatchedRequest(HTTPXRequest):
    """PTB's HTTP layer for getUpdates, telling `watch` of every answer."""

    def __init__(self, watch: UpdatesWatch, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.watch = watch

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        status, body = await super().do_request(
            url, method, request_data, read_timeout, write_timeout, connect_timeout, pool_timeout
        )
        self.watch.answered(status)
        return status, body


def _on_this_host(owner: str) -> bool:
    return owner.split("|", 1)[0] == socket.gethostname()


def updates_problem(session: Session, *, lease_seconds: float, now: datetime) -> str | None:
    """Why this host's reading of Telegram updates is not working; None if it is (or if
    another host holds the role, or nobody does)."""
    lease = session.get(Lease, UPDATES_LEASE)
    if lease is None:
        return None
    if lease.problem:
        return lease.problem
    if lease.expires_at < now or not _on_this_host(lease.owner):
        return None
    seen = lease.heartbeat_at or lease.acquired_at
    age = (now - seen).total_seconds()
    if age > lease_seconds:
        return (
            f"this replica holds the Telegram updates role but getUpdates has not answered "
            f"for {age:.0f} s (more than telegram.updates_lease_seconds = {lease_seconds:g})"
        )
    return None
