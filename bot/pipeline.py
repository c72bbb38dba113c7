"""One poll cycle, the only place that calls the stages in order:

    fetch → parse → match → dedup → summarise → store (story + outbox rows)

Fetching is async and concurrent; parsing runs in child processes with a CPU budget;
deciding and storing run in one database transaction per cycle (in a thread), so a cycle's
stories and their delivery rows land together or not at all, and a feed's new cache
validators are only kept when its entries were stored.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from bot import metrics, store
from bot.dedup import (
    Fingerprint,
    SeedPrint,
    fingerprint,
    index_keys,
    judge,
    seed_print,
    title_key,
)
from bot.errors import ParseError
from bot.feeds.bounded import parse_bounded
from bot.feeds.fetch import Fetcher, FetchOutcome, backoff_delay, make_client
from bot.language import detect_language
from bot.match import Matcher, compile_rules, load_rules
from bot.models import utcnow
from bot.owners import make_owner, owner_is_dead
from bot.records import Decision, Entry, Verdict
from bot.seeds import load_seeds
from bot.settings import Settings
from bot.summarise import summarise

log = logging.getLogger(__name__)

IRRELEVANT_TEXT_CHARS = 1_000  # enough to show why; off-topic text is not worth keeping whole


@dataclass(frozen=True, slots=True)
class FeedResult:
    """A fetched feed and what came out of it."""

    feed: store.FeedState
    outcome: FetchOutcome
    entries: tuple[Entry, ...] = ()
    error: str | None = None  # a parse error, when the fetch itself went fine


@dataclass(frozen=True, slots=True)
class CycleReport:
    started: datetime
    finished: datetime
    verdicts: tuple[Verdict, ...] = ()
    feeds_polled: int = 0
    feeds_failed: int = 0
    new_story_ids: tuple[int, ...] = ()
    error: str | None = None  # the database failed: nothing of this cycle was stored
    feed_errors: dict[str, str] = field(default_factory=dict)


class Pipeline:
    """Holds the long-lived parts (HTTP client, compiled rules, seeds) between cycles."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        client: httpx.AsyncClient | None = None,
        owner: str | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.owner = owner or make_owner()  # the lease owner of the feeds it claims
        self._client = client or make_client(settings.limits)
        self._fetcher = Fetcher(self._client, settings.limits)
        self._matcher: Matcher = compile_rules(load_rules(settings.topics))
        self._seeds: list[SeedPrint] = [seed_print(s) for s in load_seeds(Path(settings.seeds_dir))]
        self._specs = settings.feed_specs()
        with Session(engine) as session:
            store.sync_feeds(session, self._specs)
            session.commit()

    @classmethod
    def create(cls, settings: Settings, engine: Engine, *, owner: str | None = None) -> Pipeline:
        return cls(settings, engine, owner=owner)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def run_cycle(self, *, force: bool = False, spacing: float = 0.0) -> CycleReport:
        """Poll every due feed once; `force` ignores per-feed backoff.

        `spacing`: skip feeds that any replica began polling less than that many seconds
        ago (the scheduler passes most of the poll interval, so replicas whose cycles
        interleave share the feeds instead of each polling all of them).
        """
        started = utcnow()
        try:
            feeds = await asyncio.to_thread(self._claim, started, force, spacing)
        except SQLAlchemyError as exc:
            return self._db_failure(started, exc)
        results = await asyncio.gather(*(self._fetch_and_parse(f) for f in feeds))
        try:
            report = await asyncio.to_thread(self._decide_and_store, started, results)
        except SQLAlchemyError as exc:
            await asyncio.to_thread(self._release, [f.id for f in feeds])
            return self._db_failure(started, exc)
        _count(report)
        return report

    # --- stages -------------------------------------------------------------------------

    def _claim(self, now: datetime, force: bool, spacing: float) -> list[store.FeedState]:
        lease = timedelta(
            seconds=max(self.settings.poll_interval, 10 * self.settings.limits.total_timeout)
        )
        urls = [s.url for s in self._specs]
        with Session(self.engine) as session:
            holders = store.feed_lease_owners(session, urls, now=now)
            dead = [o for o in holders if o != self.owner and owner_is_dead(o, me=self.owner)]
            if dead:
                log.info("taking over feeds leased by %d process(es) that died", len(dead))
            claimed = store.claim_due_feeds(
                session,
                urls,
                now=now,
                owner=self.owner,
                lease=lease,
                force=force,
                polled_before=now - timedelta(seconds=spacing) if spacing > 0 else None,
                reclaim_from=dead,
            )
            session.commit()
        return claimed

    async def _fetch_and_parse(self, feed: store.FeedState) -> FeedResult:
        outcome = await self._fetcher.fetch(feed.url, feed.validators)
        if outcome.status != "changed" or outcome.body is None:
            return FeedResult(feed, outcome)
        try:
            parsed = await parse_bounded(
                outcome.body,
                outcome.headers,
                feed.spec(),
                max_entries=self.settings.limits.max_entries_per_feed,
                cpu_seconds=self.settings.limits.parse_cpu_seconds,
            )
        except ParseError as exc:
            log.warning("feed %s: %s", feed.name, exc)
            return FeedResult(feed, outcome, error=str(exc))
        for warning in parsed.warnings:
            log.info("feed %s: %s", feed.name, warning)
        return FeedResult(feed, outcome, entries=parsed.entries)

    def _decide_and_store(self, started: datetime, results: Sequence[FeedResult]) -> CycleReport:
        now = utcnow()
        verdicts: list[Verdict] = []
        new_ids: list[int] = []
        failed = 0
        feed_errors: dict[str, str] = {}
        with Session(self.engine) as session:
            store.lock_for_decisions(session)
            run_id = store.start_run(session, started)
            health = []
            for result in results:
                error = result.error
                if error is None and result.outcome.status == "failed":
                    error = result.outcome.error
                if error:
                    failed += 1
                    feed_errors[result.feed.name] = error
                health.append(
                    store.fetch_result_values(
                        result.feed,
                        result.outcome,
                        now=now,
                        next_poll_at=self._next_poll(result, now) if error else None,
                        error=result.error,
                        polled_at=started,
                    )
                )
            store.record_fetches(session, health)
            for feed_id, entry in _oldest_first(results, now):
                verdict = self._decide(session, feed_id, entry, now)
                verdicts.append(verdict)
                if verdict.decision == "new" and verdict.story_id is not None:
                    new_ids.append(verdict.story_id)
            finished = utcnow()
            store.finish_run(
                session,
                run_id,
                now=finished,
                feeds_polled=len(results),
                feeds_failed=failed,
                entries=len(verdicts),
                new_stories=len(new_ids),
            )
            session.commit()
        return CycleReport(
            started=started,
            finished=finished,
            verdicts=tuple(verdicts),
            feeds_polled=len(results),
            feeds_failed=failed,
            new_story_ids=tuple(new_ids),
            feed_errors=feed_errors,
        )

    def _decide(self, session: Session, feed_id: int, entry: Entry, now: datetime) -> Verdict:
        """Decide one entry and store it (with its story and outbox rows when it is new)."""
        language = detect_language(f"{entry.title}. {entry.text}", entry.language)
        if language != entry.language:
            entry = dataclasses.replace(entry, language=language)
        window = timedelta(days=self.settings.dedup.window_days)
        tkey = title_key(entry.title)
        hit = store.find_exact(session, feed_id, entry, tkey, since=now - window)
        fp: Fingerprint | None = None
        if hit is not None and hit.same_feed_guid:
            return Verdict(entry, "seen", hit.story_id, (f"already stored (same {hit.key})",))
        if hit is not None:
            reasons = (f"same {hit.key} as item {hit.item_id}",)
            decision: Decision = "duplicate" if hit.story_id is not None else "seen"
            verdict = Verdict(entry, decision, hit.story_id, reasons)
        else:
            verdict, fp = self._judge(session, entry, now, window)
        self._record(session, feed_id, verdict, tkey, fp, now)
        return verdict

    def _judge(
        self, session: Session, entry: Entry, now: datetime, window: timedelta
    ) -> tuple[Verdict, Fingerprint | None]:
        """match → dedup → summarise; a new story and its outbox rows are written here."""
        match = self._matcher.match(entry.title, entry.text, entry.language)
        if not match.relevant:
            return Verdict(entry, "irrelevant", None, match.reasons), None
        fp = fingerprint(entry.title, entry.text, entry.language)
        when = min(entry.published or now, now)
        candidates = store.find_candidates(
            session,
            index_keys(fp),
            low=when - window,
            high=when + window,
            limit=self.settings.dedup.max_candidates,
        )
        novelty = judge(fp, self._seeds, candidates)
        reasons: tuple[str, ...] = (*match.reasons, *novelty.reasons)
        if novelty.kind == "seed":
            return Verdict(entry, "seed", None, reasons), fp
        if novelty.kind == "duplicate" and novelty.story_id is not None:
            return Verdict(entry, "duplicate", novelty.story_id, reasons), fp
        stale = self._is_stale(entry, now)
        summary = summarise(entry.title, entry.text, known=[s.fingerprint for s in self._seeds])
        story_id, _ = store.add_story(session, entry, summary=summary, alerted=not stale, now=now)
        if stale:
            reasons = (*reasons, f"published more than {self.settings.max_age_hours:g} h ago")
            return Verdict(entry, "stale", story_id, reasons), fp
        return Verdict(entry, "new", story_id, reasons), fp

    @staticmethod
    def _record(
        session: Session,
        feed_id: int,
        verdict: Verdict,
        tkey: str,
        fp: Fingerprint | None,
        now: datetime,
    ) -> None:
        """Store the item; one that belongs to a story goes into the dedup index too."""
        entry = verdict.entry
        if verdict.decision in ("irrelevant", "seen"):
            entry = dataclasses.replace(entry, text=entry.text[:IRRELEVANT_TEXT_CHARS])
        item_id = store.add_item(
            session,
            feed_id=feed_id,
            entry=entry,
            title_key=tkey,
            decision=verdict.decision,
            reasons=verdict.reasons,
            story_id=verdict.story_id,
            fingerprint=fp.to_json() if fp is not None else "",
            now=now,
        )
        if fp is not None and verdict.story_id is not None:
            when = min(entry.published or now, now)
            store.index_item(session, item_id, verdict.story_id, index_keys(fp), when)

    def _is_stale(self, entry: Entry, now: datetime) -> bool:
        limit = self.settings.max_age_hours
        if limit <= 0 or entry.published is None:
            return False
        return entry.published < now - timedelta(hours=limit)

    def _next_poll(self, result: FeedResult, now: datetime) -> datetime:
        limits = self.settings.limits
        delay = backoff_delay(
            result.feed.consecutive_failures + 1,
            base=limits.backoff_base_seconds,
            maximum=limits.backoff_max_seconds,
            retry_after=result.outcome.retry_after,
        )
        return now + timedelta(seconds=delay)

    def _release(self, feed_ids: list[int]) -> None:
        try:
            with Session(self.engine) as session:
                store.release_feeds(session, feed_ids)
                session.commit()
        except SQLAlchemyError:
            log.debug("could not release feed leases; they expire on their own", exc_info=True)

    @staticmethod
    def _db_failure(started: datetime, exc: SQLAlchemyError) -> CycleReport:
        cause = getattr(exc, "orig", None) or exc
        first_line = (str(cause).splitlines() or [""])[0][:200]
        reason = f"database error: {type(cause).__name__}: {first_line}"
        log.error("poll cycle not stored, will retry next cycle (%s)", reason)
        metrics.POLLS.labels(result="db_error").inc()
        return CycleReport(started=started, finished=utcnow(), error=reason)


def _count(report: CycleReport) -> None:
    """Metrics and one log line per cycle."""
    metrics.POLLS.labels(result="ok").inc()
    for name in report.feed_errors:
        metrics.FETCH_ERRORS.labels(feed=name).inc()
    decisions: dict[str, int] = {}
    for verdict in report.verdicts:
        metrics.ITEMS.labels(decision=verdict.decision).inc()
        decisions[verdict.decision] = decisions.get(verdict.decision, 0) + 1
    log.info(
        "poll cycle: %d feeds polled, %d failed; %s; %.1f s",
        report.feeds_polled,
        report.feeds_failed,
        ", ".join(f"{n} {d}" for d, n in sorted(decisions.items())) or "no new entries",
        (report.finished - report.started).total_seconds(),
    )


def _oldest_first(results: Sequence[FeedResult], now: datetime) -> list[tuple[int, Entry]]:
    """All entries of a cycle, oldest first; undated entries count as seen now."""
    pairs = [(r.feed.id, e) for r in results for e in r.entries]
    pairs.sort(key=lambda pair: pair[1].published or now)
    return pairs
