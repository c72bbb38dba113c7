"""Record what became of a send on its delivery row (bot/outbox.py), by outcome.

The policy for each outcome is described in bot/delivery/worker.py; this is its writing
half, synchronous (the deliverer runs it in a worker thread), raising if the database does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from bot.delivery.sender import Gone, Outcome, Rejected, RetryLater, Sent, Transient, Unconfirmed
from bot.storage import outbox
from bot.storage.outbox import Claimed

if TYPE_CHECKING:
    from bot.delivery.worker import Policy, Tally

log = logging.getLogger("bot.delivery.worker")


@dataclass(frozen=True, slots=True)
class Held:
    """An outcome to record: the claimed row, what Telegram said, and when."""

    job: Claimed
    outcome: Outcome
    at: datetime
    outlets: int = 0  # the story's duplicate items the message was rendered with
    reply_to: int | None = None  # the chat's earlier alert it replied to


class Recorder:
    def __init__(
        self,
        engine: Engine,
        owner: str,
        policy: Policy,
        tally: Tally,
        backoff: Callable[[int], float],
    ) -> None:
        self._engine, self._owner, self._policy, self._tally = engine, owner, policy, tally
        self._backoff = backoff

    def write(self, result: Held) -> None:
        job, outcome, now = result.job, result.outcome, result.at
        if isinstance(outcome, Sent):
            outbox.mark_sent(
                self._engine,
                job.delivery_id,
                message_id=outcome.message_id,
                now=now,
                outlets_shown=result.outlets,
                reply_to=result.reply_to,
            )
        elif isinstance(outcome, RetryLater):
            outbox.retry_later(
                self._engine,
                job.delivery_id,
                owner=self._owner,
                error=outcome.reason,
                at=now + timedelta(seconds=outcome.seconds),
                count_attempt=False,
            )
        elif isinstance(outcome, Gone):
            log.info("chat %s is gone (%s): subscriber turned off", job.chat_id, outcome.reason)
            outbox.mark_gone(
                self._engine,
                job.delivery_id,
                owner=self._owner,
                subscriber_id=job.subscriber_id,
                reason=outcome.reason,
            )
        elif isinstance(outcome, Rejected):
            self._tally.failed += 1
            log.warning("delivery %s rejected by Telegram: %s", job.delivery_id, outcome.reason)
            outbox.mark_failed(
                self._engine, job.delivery_id, owner=self._owner, error=outcome.reason
            )
        elif isinstance(outcome, Unconfirmed):
            self._write_unconfirmed(job, outcome, now)
        elif isinstance(outcome, Transient):
            self._write_transient(job, outcome, now)
        else:  # Moved is followed before an outcome is recorded
            raise TypeError(f"cannot record {outcome!r}")

    def _write_unconfirmed(self, job: Claimed, outcome: Unconfirmed, now: datetime) -> None:
        """Maybe delivered: send again at most `max_unconfirmed - 1` times, then fail."""
        timeouts = job.timeouts + 1
        if (
            timeouts >= self._policy.max_unconfirmed
            or job.attempts + 1 >= self._policy.max_attempts
        ):
            self._tally.failed += 1
            log.warning("delivery %s: %d sends without an answer; not sent again (%s)",
                        job.delivery_id, timeouts, outcome.reason)  # fmt: skip
            outbox.mark_failed(
                self._engine,
                job.delivery_id,
                owner=self._owner,
                error=f"{timeouts} sends without an answer, maybe delivered: {outcome.reason}",
            )
            return
        self._tally.retried += 1
        log.warning("delivery %s: no answer from Telegram; sending once more (%s)",
                    job.delivery_id, outcome.reason)  # fmt: skip
        delay = self._backoff(job.attempts + 1)
        outbox.retry_later(
            self._engine,
            job.delivery_id,
            owner=self._owner,
            error=outcome.reason,
            at=now + timedelta(seconds=delay),
            timed_out=True,
        )

    def _write_transient(self, job: Claimed, outcome: Transient, now: datetime) -> None:
        attempts = job.attempts + 1
        if attempts >= self._policy.max_attempts:
            self._tally.failed += 1
            log.warning(
                "delivery %s failed after %d attempts: %s",
                job.delivery_id,
                attempts,
                outcome.reason,
            )
            outbox.mark_failed(
                self._engine,
                job.delivery_id,
                owner=self._owner,
                error=f"gave up after {attempts} attempts: {outcome.reason}",
            )
            return
        self._tally.retried += 1
        delay = self._backoff(attempts)
        outbox.retry_later(
            self._engine,
            job.delivery_id,
            owner=self._owner,
            error=outcome.reason,
            at=now + timedelta(seconds=delay),
        )
