"""Digests: a digest chat's alerts of a period, in one message (or a few), delivered like an
alert.

The job (`Digests.run_once`, a scheduler job every `DIGEST_SECONDS`) first folds the held
alerts of every chat whose digest is due into a Digest row (bot/storage/digests.py; an
empty period writes nothing and sends nothing), then sends the due digests: each is leased,
rendered once (the parts are stored with the row, so a retry sends the same text), and its
parts go out one by one, each recorded the moment Telegram accepts it; a retry, a restart
or another replica resumes after the last part recorded. Outcomes, as for alerts
(bot/delivery/worker.py): a 429 waits the time asked (no attempt counted); a chat gone
turns the subscriber off; a part Telegram refuses is left out and the rest go on; a network
error is retried with backoff, then the digest fails after `max_attempts`. A part without
an answer within `telegram.send_timeout` may have been delivered, so it follows the alerts'
once-only rule (`max_unconfirmed`, the alerts' own value): sent again once, with backoff
(the row's `timeouts` count survives restarts); unanswered again, it is not sent again and
the rest of the digest goes on, as after a refused part: the reader most likely has it, and
the parts after it are messages of their own that failing the digest would lose. Both are
counted in sahelwatch_unconfirmed_sends_total ("retried", then "failed"), the part given up
is logged once with the reason. A digest due in the chat's quiet hours waits until they end.

Rendering: the period's stories grouped by reader topic (bot/topics.py, in the menu's
order; stories of no known topic last), newest first within a group; every feed string
cleaned and escaped; the text packed into parts of at most 4096 UTF-16 units, cut only
between stories (bot/telegram/render.py `pack`); a part that starts inside a topic repeats
its heading ("Security (continued)").
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine

from bot import metrics, topics
from bot.decide.textcut import shorten
from bot.delivery.sender import (
    Gone,
    Moved,
    Outcome,
    Rejected,
    RetryLater,
    Sender,
    Sent,
    Transient,
    Unconfirmed,
)
from bot.delivery.worker import Policy
from bot.i18n import Voice
from bot.pacing import backoff
from bot.storage import digests, subscribers
from bot.storage.digests import ClaimedDigest, DigestStory
from bot.storage.models import utcnow
from bot.telegram.render import MAX_LENGTH, anchor, clean, pack

log = logging.getLogger(__name__)

DIGEST_SECONDS = 30.0  # how often the job looks for due digests
TITLE_CHARS = 300
SUMMARY_CHARS = 280
OUTLET_CHARS = 80
OTHER = "other"


@dataclass(frozen=True)
class DigestPolicy:
    lease_seconds: float = 60.0
    concurrency: int = 8  # digests sent at once (their parts one after another)
    max_attempts: int = 8
    max_unconfirmed: int = Policy.max_unconfirmed  # the alerts' rule: one more send at most
    backoff_base: float = 2.0
    backoff_max: float = 600.0


@dataclass
class DigestTally:
    folded: int = 0  # digests written
    empty: int = 0  # periods with nothing to send
    sent: int = 0  # digests completed
    parts: int = 0  # messages sent
    failed: int = 0
    unconfirmed: int = 0  # sends Telegram did not answer in time
    by_outcome: dict[str, int] = field(default_factory=dict)


def _story_block(story: DigestStory, voice: Voice, now: datetime) -> str:
    title = shorten(clean(story.title), TITLE_CHARS) or voice.gettext("Untitled")
    outlet = shorten(clean(story.outlet), OUTLET_CHARS)
    stamp = voice.when_ago(story.published, now)
    lines = [
        f"• <b>{anchor(title, story.link)}</b>",
        f"<i>{html.escape(outlet, quote=False)}</i> · {html.escape(stamp)}",
    ]
    summary = shorten(clean(story.summary), SUMMARY_CHARS)
    if summary:
        lines.append(html.escape(summary, quote=False))
    return "\n".join(lines)


def _topic_of(story: DigestStory) -> str:
    found = topics.of_categories(story.topics)
    return next((key for key in topics.KEYS if key in found), OTHER)


def render_digest(
    stories: Sequence[DigestStory],
    voice: Voice,
    *,
    since: datetime,
    now: datetime,
    limit: int = MAX_LENGTH,
) -> list[str]:
    """The digest's parts: a header, then the stories by topic, newest first in each, each
    dated in the chat's language and zone with the time since `now`."""
    if not stories:
        return []
    count = len(stories)
    headline = voice.ngettext("%(count)d new development", "%(count)d new developments", count) % {
        "count": count
    }
    period = voice.gettext("since %(time)s") % {"time": voice.when(since)}
    header = (
        f"<b>{html.escape(voice.gettext('Sahel Watch digest'))}</b>: "
        f"{html.escape(headline)}\n<i>{html.escape(period)}</i>"
    )
    groups: dict[str, list[DigestStory]] = {}
    for story in sorted(stories, key=lambda s: (s.published, s.story_id), reverse=True):
        groups.setdefault(_topic_of(story), []).append(story)
    blocks: list[str] = []
    openers: list[str] = []  # a block that opens a part says which topic it is in
    for key in (*topics.KEYS, OTHER):
        label = (
            voice.gettext(topics.BY_KEY[key].label) if key != OTHER else voice.gettext("Other news")
        )
        again = voice.gettext("%(topic)s (continued)") % {"topic": label}
        for index, story in enumerate(groups.get(key, [])):
            block = _story_block(story, voice, now)
            if index == 0:
                blocks.append(f"<b>{html.escape(label)}</b>\n{block}")
                openers.append(blocks[-1])
            else:
                blocks.append(block)
                openers.append(f"<b>{html.escape(again)}</b>\n{block}")
    return pack(blocks, header=header, limit=limit, openers=openers)


class Digests:
    """Folds due periods and delivers the digests (one per process)."""

    def __init__(
        self,
        engine: Engine,
        sender: Sender,
        *,
        owner: str,
        policy: DigestPolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine, self.sender, self.owner = engine, sender, owner
        self.policy = policy or DigestPolicy()
        self.tally = DigestTally()
        self._clock = clock
        self._busy: set[int] = set()

    async def run_once(self) -> DigestTally:
        """Fold what is due, then send every due digest; the running totals."""
        folded = await asyncio.to_thread(digests.fold_due, self.engine, now=self._clock())
        self.tally.folded += len(folded.digests)
        self.tally.empty += folded.empty
        while True:
            claimed = await asyncio.to_thread(
                digests.claim,
                self.engine,
                owner=self.owner,
                limit=self.policy.concurrency,
                lease_seconds=self.policy.lease_seconds,
                now=self._clock(),
            )
            if not claimed:
                return self.tally
            await asyncio.gather(*(self._deliver(job) for job in claimed))

    async def renew(self) -> None:
        await asyncio.to_thread(
            digests.renew,
            self.engine,
            list(self._busy),
            owner=self.owner,
            lease_seconds=self.policy.lease_seconds,
            now=self._clock(),
        )

    async def recover(self) -> int:
        return await asyncio.to_thread(
            digests.recover,
            self.engine,
            me=self.owner,
            max_attempts=self.policy.max_attempts,
            busy=list(self._busy),
            now=self._clock(),
        )

    async def _deliver(self, job: ClaimedDigest) -> None:
        self._busy.add(job.digest_id)
        try:
            await self._deliver_one(job)
        except asyncio.CancelledError:  # shutting down: pending again (a part on the wire
            release = asyncio.to_thread(  # when cancelled may come twice: at least once)
                digests.release, self.engine, [job.digest_id], owner=self.owner
            )
            with contextlib.suppress(Exception):
                await asyncio.shield(release)
            raise
        except Exception as exc:  # a bug or the database: try again later, never strand it
            log.exception("digest %s crashed", job.digest_id)
            await self._retry(job, f"internal error: {type(exc).__name__}", counted=True)
        finally:
            self._busy.discard(job.digest_id)

    async def _parts(self, job: ClaimedDigest) -> tuple[str, ...] | None:
        if job.parts:
            return job.parts
        stories = await asyncio.to_thread(digests.stories_of, self.engine, job.digest_id)
        voice = Voice(job.language, job.timezone)
        parts = render_digest(stories, voice, since=job.period_start, now=self._clock())
        if not await asyncio.to_thread(
            digests.save_parts, self.engine, job.digest_id, parts, owner=self.owner
        ):
            log.warning("digest %s: lease lost before its parts were stored", job.digest_id)
            return None
        return tuple(parts)

    async def _deliver_one(self, job: ClaimedDigest) -> None:
        parts = await self._parts(job)
        if parts is None:
            return
        chat_id = job.chat_id
        timeouts = job.timeouts  # unanswered sends of the first part to go; 0 for the next
        for index in range(job.parts_sent, len(parts)):
            outcome = await self._send(job, chat_id, parts[index])
            if isinstance(outcome, Moved):
                await asyncio.to_thread(
                    subscribers.migrate, self.engine, chat_id, outcome.new_chat_id
                )
                chat_id = outcome.new_chat_id
                outcome = await self._send(job, chat_id, parts[index])
                if isinstance(outcome, Moved):
                    outcome = Transient(f"chat migrated twice (to {outcome.new_chat_id})")
            name = type(outcome).__name__
            self.tally.by_outcome[name] = self.tally.by_outcome.get(name, 0) + 1
            if isinstance(outcome, Unconfirmed):
                timeouts += 1
                if not await self._unconfirmed(job, index, timeouts, outcome):
                    return  # to be sent once more later (or the attempts ran out)
            elif isinstance(outcome, Rejected):  # this part only: the others still go
                log.warning("digest %s part %d refused by Telegram: %s",
                            job.digest_id, index + 1, outcome.reason)  # fmt: skip
            elif isinstance(outcome, Sent):
                self.tally.parts += 1
            else:
                await self._stop(job, chat_id, outcome)
                return
            await asyncio.to_thread(
                digests.part_sent, self.engine, job.digest_id, parts_sent=index + 1
            )
            timeouts = 0
        await asyncio.to_thread(digests.mark_sent, self.engine, job.digest_id, now=self._clock())
        self.tally.sent += 1

    async def _stop(self, job: ClaimedDigest, chat_id: int, outcome: Outcome) -> None:
        """The digest cannot go on now: a 429, a chat gone, or an error to retry."""
        if isinstance(outcome, RetryLater):
            await self._retry(job, outcome.reason, counted=False, after=outcome.seconds)
        elif isinstance(outcome, Gone):
            log.info("chat %s is gone (%s): subscriber turned off", chat_id, outcome.reason)
            await asyncio.to_thread(
                digests.mark_gone,
                self.engine,
                job.digest_id,
                owner=self.owner,
                subscriber_id=job.subscriber_id,
                reason=outcome.reason,
            )
        elif isinstance(outcome, Transient):  # backoff, then give up after max_attempts
            await self._retry(job, outcome.reason, counted=True)
        else:  # Sent, Rejected and Unconfirmed go on; Moved is followed before
            raise TypeError(f"a digest does not stop on {outcome!r}")

    async def _unconfirmed(
        self, job: ClaimedDigest, index: int, timeouts: int, outcome: Unconfirmed
    ) -> bool:
        """Part `index` went `timeouts` times without an answer (maybe delivered): True when
        it is not to be sent again; else it is sent once more later (or attempts ran out)."""
        self.tally.unconfirmed += 1
        last = timeouts >= self.policy.max_unconfirmed
        out_of_attempts = job.attempts + 1 >= self.policy.max_attempts
        then = "failed" if last or out_of_attempts else "retried"
        metrics.UNCONFIRMED_SENDS.labels(then=then).inc()
        if last:
            log.warning("digest %s part %d: %d sends without an answer, maybe delivered; not "
                        "sent again (%s)", job.digest_id, index + 1, timeouts,
                        outcome.reason)  # fmt: skip
            return True
        log.warning("digest %s part %d: no answer from Telegram; sending once more (%s)",
                    job.digest_id, index + 1, outcome.reason)  # fmt: skip
        await self._retry(job, outcome.reason, counted=True, timed_out=True)
        return False

    async def _send(self, job: ClaimedDigest, chat_id: int, text: str) -> Outcome:
        return await self.sender.send(
            chat_id, job.thread_id, text, silent=job.silent, previews=False
        )

    async def _retry(
        self,
        job: ClaimedDigest,
        reason: str,
        *,
        counted: bool,
        after: float | None = None,
        timed_out: bool = False,
    ) -> None:
        attempts = job.attempts + (1 if counted else 0)
        if counted and attempts >= self.policy.max_attempts:
            self.tally.failed += 1
            log.warning("digest %s failed after %d attempts: %s", job.digest_id, attempts, reason)
            await asyncio.to_thread(
                digests.mark_failed,
                self.engine,
                job.digest_id,
                owner=self.owner,
                error=f"gave up after {attempts} attempts: {reason}",
            )
            return
        delay = (
            after
            if after is not None
            else backoff(attempts, base=self.policy.backoff_base, cap=self.policy.backoff_max)
        )
        await asyncio.to_thread(
            digests.retry_later,
            self.engine,
            job.digest_id,
            owner=self.owner,
            at=self._clock() + timedelta(seconds=delay),
            error=reason,
            count_attempt=counted,
            timed_out=timed_out,
        )
