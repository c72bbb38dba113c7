"""One poll cycle, the only place that calls the stages in order:

    fetch → parse → match → dedup → summarise → store (story + outbox rows)

Fetching is async and concurrent; parsing runs in child processes with a CPU budget;
deciding and storing run in one database transaction per cycle (in a thread), so a cycle's
stories and their delivery rows land together or not at all, and a feed's new cache
validators are only kept when its entries were stored.

Faults stay where they start. Whatever one feed or one entry raises (fetch, parse,
normalise, decide, store: any exception, not only database errors) fails that feed alone:
entries are decided in batches (`BATCH_ENTRIES`: one model call, one exact-key query and one
item insert each), each batch in a savepoint; should a batch raise, it is rolled back and
its entries are decided again one at a time, each in its own savepoint, so a row the
database refuses is rolled back without the rest of the cycle, and the feed records the
reason, backs off and keeps its old cache validators (its entries come again next time;
those stored are "seen"). The feeds' leases are released whatever happens, cancellation
included. A cycle that fails as a whole is recorded as failed, which `health` reports.

A publication date more than `FUTURE_TOLERANCE` ahead is not trusted: the entry counts as
undated (first seen = published), so a bogus date neither sorts it last nor reaches the
alert.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from bot import metrics
from bot.decide.core import build_context, decide, prepare
from bot.decide.dedup import Fingerprint, title_key
from bot.decide.embed import from_bytes, load_embedder
from bot.decide.evidence import StoredItem
from bot.decide.policy import DEFAULT
from bot.errors import ParseError
from bot.feeds import catalog
from bot.feeds.bounded import parse_bounded, start_fork_server
from bot.feeds.fetch import Fetcher, FetchOutcome, expires_in, make_client, max_age
from bot.feeds.guard import AddressPolicy, is_public_address
from bot.feeds.lanes import in_lanes, origin
from bot.feeds.schedule import Bounds, Signals, next_interval, observe
from bot.memory import give_back_free_memory, limit_arenas
from bot.owners import make_owner, owner_is_dead
from bot.records import Decision, Entry, FeedSpec, Verdict
from bot.seeds import load_seeds
from bot.settings import Settings
from bot.spool import EntrySpool
from bot.storage import feeds as feed_store
from bot.storage import items as item_store
from bot.storage import runs as run_store
from bot.storage.db import create_schema, make_engine
from bot.storage.errors import StorageError
from bot.storage.models import utcnow

log = logging.getLogger(__name__)

IRRELEVANT_TEXT_CHARS = 1_000  # enough to show why; off-topic text is not worth keeping whole
FUTURE_TOLERANCE = timedelta(hours=1)  # clock skew and a mislabelled time zone, no more
REASON_CHARS = 300  # of an exception message kept as a feed's or a cycle's reason
BATCH_ENTRIES = 500  # entries decided and written together: memory and statements per batch


@dataclass(frozen=True, slots=True)
class FeedResult:
    """A fetched feed and what came out of it."""

    feed: feed_store.FeedState
    outcome: FetchOutcome
    entries: tuple[Entry, ...] = ()
    error: str | None = None  # a parse error, when the fetch itself went fine
    declared: tuple[float | None, float | None] | None = None  # a parsed body's ttl, sy: period
    dates: tuple[datetime, ...] = ()  # of the entries it sent to the cycle's spool


@dataclass(frozen=True, slots=True)
class CycleReport:
    started: datetime
    finished: datetime
    verdicts: tuple[Verdict, ...] = ()  # empty when the cycle was not asked for them
    feeds_polled: int = 0
    feeds_failed: int = 0
    new_story_ids: tuple[int, ...] = ()
    error: str | None = None  # the cycle failed as a whole: nothing of it was stored
    feed_errors: dict[str, str] = field(default_factory=dict)
    decisions: dict[str, int] = field(default_factory=dict)  # entries decided, by decision


class Pipeline:
    """Holds the long-lived parts (HTTP client, compiled rules, seeds) between cycles."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine | Connection,  # a Connection: sessions join its transaction (dry run)
        *,
        client: httpx.AsyncClient | None = None,
        owner: str | None = None,
        address_policy: AddressPolicy = is_public_address,
        batch_size: int = BATCH_ENTRIES,
    ) -> None:
        start_fork_server()  # it imports the parser while the rest is built (bounded.py)
        self.settings = settings
        self.batch_size = max(1, batch_size)
        self._batch: item_store.ItemBatch | None = None  # while a batch is decided: its items
        self.engine = engine
        self.owner = owner or make_owner()  # the lease owner of the feeds it claims
        self._client = client or make_client(settings.limits)
        # the strict policy: for every feed when allow_private_addresses is false, chat feeds always
        self._fetcher = Fetcher(self._client, settings.limits, address_policy=address_policy)
        self._context = build_context(
            settings.topics or {},
            load_seeds(Path(settings.seeds_dir)),
            load_embedder(),
            now=utcnow(),
            max_age_hours=settings.max_age_hours,
            policy=dataclasses.replace(
                DEFAULT,
                window_days=settings.dedup.window_days,
                max_candidates=settings.dedup.max_candidates,
            ),
        )
        self._specs = settings.feed_specs()
        self._chat_urls: frozenset[str] = frozenset()  # fetched strictly (bot/feeds/catalog.py)
        self._nothing_answers = False  # the last cycle's feeds all failed, and that was said
        with Session(engine) as session:
            feed_store.sync_feeds(session, self._specs)
            session.commit()
        _freeze_long_lived()

    @classmethod
    def create(
        cls, settings: Settings, engine: Engine | Connection, *, owner: str | None = None
    ) -> Pipeline:
        return cls(settings, engine, owner=owner)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def run_cycle(
        self, *, force: bool = False, spacing: float = 0.0, verdicts: bool = True
    ) -> CycleReport:
        """Poll every due feed once; `force` ignores per-feed backoff.

        `spacing`: skip feeds that any replica began polling less than that many seconds
        ago (the scheduler passes most of the poll interval, so replicas whose cycles
        interleave share the feeds instead of each polling all of them).
        `verdicts`: the report lists every entry's verdict (what `poll-once` prints); else
        only their counts, so a cycle's memory does not grow with its entries (`run`).
        """
        started = utcnow()
        try:
            feeds = await asyncio.to_thread(self._claim, started, force, spacing)
        except StorageError as exc:
            return await self._failed(started, exc)
        stored = False
        spool = EntrySpool()  # the entries wait on disk, not in memory, for the last feed
        limits = self.settings.limits
        try:
            # a lane stays with its host, on the connection its last answer left open; its
            # body waits for a parser while it holds its place: parsing is slower than
            # fetching, and bodies queued for the parsers made a cycle's memory grow
            results = await in_lanes(
                feeds,
                lambda feed: origin(feed.url),
                lambda feed: self._poll_feed(feed, spool),
                lanes=limits.concurrency,
                per_key=limits.per_host_concurrency,
            )
            report = await asyncio.to_thread(
                self._decide_and_store, started, results, spool, verdicts=verdicts
            )
            stored = True  # the feeds' rows were written, leases released with them
        except Exception as exc:
            return await self._failed(started, exc)
        finally:
            spool.close()
            if not stored and feeds:  # failed or cancelled: free the feeds at once
                await asyncio.shield(asyncio.to_thread(self._release, [f.id for f in feeds]))
        _count(report)
        self._explain_if_nothing_answers(report, feeds)
        give_back_free_memory()  # what the cycle's batches freed, before the process idles
        return report

    def _explain_if_nothing_answers(
        self, report: CycleReport, feeds: Sequence[feed_store.FeedState]
    ) -> None:
        """Every feed polled failed (no network, a proxy, a typo in every URL): say why for
        each feed, one line each, once until some feed answers again."""
        if report.feeds_failed < report.feeds_polled:
            self._nothing_answers = False
        if not report.feeds_polled or not report.feeds_failed or self._nothing_answers:
            return
        self._nothing_answers = True
        from bot.telegram.replies import feed_address  # the URL without its secrets

        for feed in feeds:
            error = report.feed_errors.get(feed.name, "failed")
            log.warning("feed %r at %s: %s", feed.name, feed_address(feed.url, full=True), error)
        log.warning(
            "every feed failed (%d of %d); `python -m bot feeds` shows each feed's health",
            report.feeds_failed,
            report.feeds_polled,
        )

    # --- stages -------------------------------------------------------------------------

    def _claim(self, now: datetime, force: bool, spacing: float) -> list[feed_store.FeedState]:
        lease = timedelta(
            seconds=max(self.settings.poll_interval, 10 * self.settings.limits.total_timeout)
        )
        with Session(self.engine) as session:
            listing = catalog.listing(session, self._specs)  # config + added feeds
            urls = [feed.spec.url for feed in listing]
            self._chat_urls = frozenset(f.spec.url for f in listing if f.source == "chat")
            holders = feed_store.feed_lease_owners(session, urls, now=now)
            dead = [o for o in holders if o != self.owner and owner_is_dead(o, me=self.owner)]
            if dead:
                log.info("taking over feeds leased by %d process(es) that died", len(dead))
            claimed = feed_store.claim_due_feeds(
                session,
                urls,
                now=now,
                owner=self.owner,
                lease=lease,
                force=force,
                polled_before=now - timedelta(seconds=spacing) if spacing > 0 else None,
                reclaim_from=dead,
                # a scheduled cycle (spacing) also takes the feeds due before the part of the
                # interval that spacing leaves: cycles come up to 10 % early (jitter), and a
                # feed due just after one would otherwise wait a whole cycle more
                due_by=now + timedelta(seconds=self.settings.poll_interval - spacing)
                if 0 < spacing < self.settings.poll_interval
                else None,
            )
            session.commit()
        return claimed

    async def _poll_feed(
        self, feed: feed_store.FeedState, spool: EntrySpool | None = None
    ) -> FeedResult:
        """Fetch and parse one feed; whatever goes wrong is this feed's error alone."""
        try:
            return await self._fetch_and_parse(feed, spool)
        except Exception as exc:
            reason = _reason(exc)
            log.warning("feed %s: not polled: %s", feed.name, reason, exc_info=True)
            outcome = FetchOutcome(
                url=feed.url,
                status="failed",
                body=None,
                headers={},
                http_status=None,
                validators=feed.validators,
                error=reason,
                retry_after=None,
                elapsed=0.0,
            )
            return FeedResult(feed, outcome, error=reason)

    async def _fetch_and_parse(
        self, feed: feed_store.FeedState, spool: EntrySpool | None = None
    ) -> FeedResult:
        """`spool`: where the entries go (the result keeps their dates), else the result."""
        private = catalog.allow_private("chat" if feed.url in self._chat_urls else "config")
        outcome = await self._fetcher.fetch(feed.url, feed.validators, allow_private=private)
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
            # the result waits for the whole cycle: it keeps the answer, not the body
            return FeedResult(feed, dataclasses.replace(outcome, body=None), error=str(exc))
        for warning in parsed.warnings:
            log.info("feed %s: %s", feed.name, warning)
        declared = (parsed.ttl, parsed.update_period)
        outcome = dataclasses.replace(outcome, body=None)  # parsed: the cycle keeps no bodies
        if spool is None:
            return FeedResult(feed, outcome, entries=parsed.entries, declared=declared)
        spool.add(feed.id, parsed.entries)
        dates = tuple(e.published for e in parsed.entries if e.published)
        return FeedResult(feed, outcome, declared=declared, dates=dates)

    def _decide_and_store(
        self,
        started: datetime,
        results: Sequence[FeedResult],
        spool: EntrySpool | None = None,
        *,
        verdicts: bool = True,
    ) -> CycleReport:
        """Decide and store the entries of `results` and of `spool`, oldest first, in batches;
        then every feed's health and next poll, in one transaction. `verdicts`: as
        `run_cycle`'s."""
        with nullcontext(spool) if spool is not None else EntrySpool() as entries:
            for result in results:
                entries.add(result.feed.id, result.entries)
            return self._store_cycle(started, results, entries, keep=verdicts)

    def _store_cycle(
        self,
        started: datetime,
        results: Sequence[FeedResult],
        entries: EntrySpool,
        *,
        keep: bool = True,
    ) -> CycleReport:
        now = utcnow()
        verdicts: list[Verdict] = []  # when `keep`
        decisions: dict[str, int] = {}
        undated: set[str] = set()  # feeds with new entries without a date
        new_ids: list[int] = []
        failed = 0
        feed_errors: dict[str, str] = {}
        entry_errors: dict[int, str] = {}  # feed id: the first entry that failed, and why
        with Session(self.engine) as session:
            item_store.lock_for_decisions(session)
            run_id = run_store.start_run(session, started)  # also opens the write transaction
            self._refresh_stories(session, now)
            cycle_mark = self._context.stories.mark()
            try:
                feeds = {result.feed.id: result.feed for result in results}
                for spooled in entries.batches(self.batch_size, lambda p: _when(p, now)):
                    batch = [(feeds[feed_id], _trusted(entry, now)) for feed_id, entry in spooled]
                    for verdict in self._decide_batch(session, batch, now, entry_errors):
                        decisions[verdict.decision] = decisions.get(verdict.decision, 0) + 1
                        if keep:
                            verdicts.append(_reported(verdict))
                        if verdict.decision == "new" and verdict.story_id is not None:
                            new_ids.append(verdict.story_id)
                        # an undated entry counts as published when first seen
                        # (bot/feeds/schedule.py)
                        if verdict.entry.published is None and verdict.decision != "seen":
                            undated.add(verdict.entry.feed_url)
                health = []
                for result in results:
                    error = result.error or entry_errors.get(result.feed.id)
                    if error is None and result.outcome.status == "failed":
                        error = result.outcome.error
                    if error:
                        failed += 1
                        feed_errors[result.feed.name] = error
                    health.append(
                        feed_store.fetch_result_values(
                            result.feed,
                            result.outcome,
                            now=now,
                            next_poll_at=None,
                            error=result.error or entry_errors.get(result.feed.id),
                            polled_at=started,
                            plan=self._next_poll(
                                result,
                                started if not error else now,
                                error,
                                undated=result.feed.url in undated,
                            ),
                        )
                    )
                feed_store.record_fetches(session, health)
                finished = utcnow()
                run_store.finish_run(
                    session,
                    run_id,
                    now=finished,
                    feeds_polled=len(results),
                    feeds_failed=failed,
                    entries=sum(decisions.values()),
                    new_stories=len(new_ids),
                )
                session.commit()
            except BaseException:  # nothing of the cycle was stored: the index forgets it
                self._context.stories.rollback(cycle_mark)
                self._context.prepared.clear()
                raise
        return CycleReport(
            started=started,
            finished=finished,
            verdicts=tuple(verdicts),
            feeds_polled=len(results),
            feeds_failed=failed,
            new_story_ids=tuple(new_ids),
            feed_errors=feed_errors,
            decisions=decisions,
        )

    def _decide_batch(
        self,
        session: Session,
        batch: Sequence[tuple[feed_store.FeedState, Entry]],
        now: datetime,
        errors: dict[int, str],
    ) -> list[Verdict]:
        """Decide and store a batch of entries together, in a savepoint: one query for their
        exact keys, one model call, one executemany for their items. Should anything of it
        raise, the batch is rolled back and its entries are decided again one at a time, each
        in its own savepoint (`_decide_isolated`), so a fault stays with its feed."""
        entries = [entry for _feed, entry in batch]
        savepoint = session.begin_nested()
        mark = self._context.stories.mark()
        try:
            verdicts = self._decide_together(session, batch, now)
            savepoint.commit()
        except Exception as exc:
            self._context.stories.rollback(mark)
            if savepoint.is_active:
                savepoint.rollback()
            log.info("%d entries not stored together (%s): one at a time", len(batch), _reason(exc))
            self._context.prepared.clear()
            self._prepare(entries)
            verdicts = []
            for feed, entry in batch:
                verdict = self._decide_isolated(session, feed, entry, now, errors)
                if verdict is not None:
                    verdicts.append(verdict)
        finally:
            self._context.prepared.clear()  # entries that an exact key decided
        return verdicts

    def _decide_together(
        self, session: Session, batch: Sequence[tuple[feed_store.FeedState, Entry]], now: datetime
    ) -> list[Verdict]:
        """`_decide` for a batch: the entries' exact keys are looked up at once, and an entry
        finds those of the batch's earlier entries as it would have found them stored."""
        window = timedelta(days=self._context.policy.window_days)
        keyed = [(feed.id, entry, title_key(entry.title)) for feed, entry in batch]
        probes = [item_store.ExactKeys.of(feed_id, entry, tkey) for feed_id, entry, tkey in keyed]
        stored = item_store.find_exact_many(session, probes, since=now - window)
        # the model reads only what no stored item already decides (a feed's old entries)
        unknown = [e for (_f, e, _t), k in zip(keyed, probes, strict=True) if not stored.first(k)]
        self._prepare(unknown)
        items = item_store.ItemBatch(item_store.reserve_item_ids(session, len(batch)))
        self._batch = items
        try:
            verdicts = [
                self._settle(session, feed_id, entry, tkey, stored.first(keys, items.hits), now)
                for (feed_id, entry, tkey), keys in zip(keyed, probes, strict=True)
            ]
            items.write(session)
        finally:
            self._batch = None
        return verdicts

    def _decide_isolated(
        self,
        session: Session,
        feed: feed_store.FeedState,
        entry: Entry,
        now: datetime,
        errors: dict[int, str],
    ) -> Verdict | None:
        """`_decide` in a savepoint: an entry that raises is rolled back alone and noted
        against its feed in `errors`. A failing rollback (the connection is gone) raises."""
        savepoint = session.begin_nested()
        mark = self._context.stories.mark()
        try:
            verdict = self._decide(session, feed.id, entry, now)
            savepoint.commit()
        except Exception as exc:
            self._context.stories.rollback(mark)
            if savepoint.is_active:
                savepoint.rollback()
            reason = f"entry {entry.guid[:80]!r} not stored: {_reason(exc)}"
            first = feed.id not in errors
            errors.setdefault(feed.id, reason)
            log.warning("feed %s: %s", feed.name, reason, exc_info=first)
            return None
        return verdict

    def _decide(self, session: Session, feed_id: int, entry: Entry, now: datetime) -> Verdict:
        """Decide one entry and store it (with its story and outbox rows when it is new)."""
        window = timedelta(days=self._context.policy.window_days)
        tkey = title_key(entry.title)
        hit = item_store.find_exact(session, feed_id, entry, tkey, since=now - window)
        return self._settle(session, feed_id, entry, tkey, hit, now)

    def _settle(
        self,
        session: Session,
        feed_id: int,
        entry: Entry,
        tkey: str,
        hit: item_store.ExactHit | None,
        now: datetime,
    ) -> Verdict:
        """Decide an entry whose exact-key hit is known, and store it."""
        if hit is not None and hit.same_feed_guid:
            return Verdict(entry, "seen", hit.story_id, (f"already stored (same {hit.key})",))
        if hit is not None:
            reasons = (f"same {hit.key} as item {hit.item_id}",)
            decision: Decision = "duplicate" if hit.story_id is not None else "seen"
            verdict = Verdict(entry, decision, hit.story_id, reasons)
        else:
            verdict = decide(entry, dataclasses.replace(self._context, now=now))
        if verdict.decision in ("new", "stale"):
            story_id, _ = item_store.add_story(
                session,
                verdict.entry,
                summary=verdict.summary,
                alerted=verdict.decision == "new",
                now=now,
                topics=verdict.topics,
                follows=verdict.follows,
            )
            verdict = dataclasses.replace(verdict, story_id=story_id)
        self._record(session, feed_id, verdict, tkey, now)
        return verdict

    def _record(
        self, session: Session, feed_id: int, verdict: Verdict, tkey: str, now: datetime
    ) -> None:
        """Store the item; one that belongs to a story joins the story index too."""
        entry = verdict.entry
        if verdict.decision in ("irrelevant", "seen"):
            entry = dataclasses.replace(entry, text=entry.text[:IRRELEVANT_TEXT_CHARS])
        values = item_store.item_values(
            feed_id=feed_id,
            entry=entry,
            title_key=tkey,
            decision=verdict.decision,
            reasons=verdict.reasons,
            story_id=verdict.story_id,
            fingerprint=verdict.fingerprint,
            vector=verdict.vector or None,
            now=now,
        )
        batch = self._batch  # a batch writes its items together, at its end
        item_id = (
            batch.add(values) if batch is not None else item_store.insert_item(session, values)
        )
        if verdict.story_id is not None and verdict.fingerprint:
            when = min(entry.published or now, now)
            row = item_store.StoryItemRow(
                item_id, verdict.story_id, verdict.fingerprint, verdict.vector or None, when
            )
            self._context.stories.add(_stored_item(row))

    def _prepare(self, entries: Sequence[Entry]) -> None:
        """The batch's model call, for all its entries at once. Should it fail, each entry is
        prepared again alone inside its own savepoint, where a fault stays with its feed."""
        try:
            prepare(entries, self._context)
        except Exception as exc:
            self._context.prepared.clear()
            log.warning("preparing the batch's entries together failed (%s)", _reason(exc))

    def _refresh_stories(self, session: Session, now: datetime) -> None:
        """Bring the story index up to date with what any replica stored since."""
        stories = self._context.stories
        since = now - 2 * stories.window
        for row in item_store.story_items_since(
            session, after_id=stories.last_item_id, since=since
        ):
            stories.add(_stored_item(row))
        stories.prune(now)

    def _next_poll(
        self, result: FeedResult, since: datetime, error: str | None, *, undated: bool = False
    ) -> feed_store.PollPlan:
        """When to poll this feed again, from what it showed (bot/feeds/schedule.py).

        `undated`: the poll found new entries without a date; they count as published now.
        """
        feed, outcome, limits = result.feed, result.outcome, self.settings.limits
        ttl, period = result.declared or (feed.ttl, feed.update_period)
        dates = [entry.published for entry in result.entries if entry.published]
        dates += result.dates
        if undated:
            dates.append(since)
        activity = observe(feed.activity, dates, now=since)
        signals = Signals(
            activity=activity,
            ttl=ttl,
            update_period=period,
            max_age=None if error else max_age(outcome.headers),
            expires_in=None if error else expires_in(outcome.headers),
            failures=feed.consecutive_failures + 1 if error else 0,
            retry_after=outcome.retry_after,
        )
        bounds = Bounds(
            minimum=self.settings.poll_interval,
            maximum=self.settings.max_poll_interval,
            backoff_base=limits.backoff_base_seconds,
            backoff_max=limits.backoff_max_seconds,
        )
        interval = next_interval(signals, bounds, now=since)
        return feed_store.PollPlan(
            since + timedelta(seconds=interval.seconds), interval, activity, ttl, period
        )

    def _release(self, feed_ids: list[int]) -> None:
        try:
            with Session(self.engine) as session:
                feed_store.release_feeds(session, feed_ids)
                session.commit()
        except StorageError:
            log.warning("could not release feed leases; they expire on their own")

    async def _failed(self, started: datetime, exc: Exception) -> CycleReport:
        """A cycle that failed as a whole: one log line, and a failed run for `health`."""
        if isinstance(exc, StorageError):
            reason = f"database error: {_reason(exc)}"
            metrics.POLLS.labels(result="db_error").inc()
            log.error("poll cycle not stored, will retry next cycle (%s)", reason)
        else:  # a bug: keep the traceback
            reason = _reason(exc)
            metrics.POLLS.labels(result="error").inc()
            log.error("poll cycle failed, will retry next cycle (%s)", reason, exc_info=exc)
        finished = utcnow()
        await asyncio.shield(asyncio.to_thread(self._record_failure, started, finished, reason))
        return CycleReport(started=started, finished=finished, error=reason)

    def _record_failure(self, started: datetime, finished: datetime, reason: str) -> None:
        try:
            with Session(self.engine) as session:
                run_store.record_failed_run(session, started, now=finished, error=reason)
                session.commit()
        except StorageError:
            log.warning("could not record the failed poll cycle (database error)")


def decide_offline(
    settings: Settings, database_url: str, entries: Sequence[Entry]
) -> list[Verdict]:
    """Decide and store `entries` in order, each as if it arrived when it was published, on
    the database at `database_url` (`python -m bot evaluate` gives it a fresh one). Nothing is
    fetched; labelled items are old by design, so nothing is stale."""
    settings = settings.model_copy(update={"max_age_hours": 0.0})
    engine = make_engine(database_url)
    try:
        create_schema(engine)
        pipeline = Pipeline(settings, engine)
        specs = {e.feed_url: FeedSpec(e.feed_url, e.feed_name, e.language) for e in entries}
        with Session(engine) as session:
            feed_store.sync_feeds(session, list(specs.values()))
            session.commit()
            ids = feed_store.feed_ids(session, list(specs))
        verdicts = []
        pipeline._prepare(entries)
        with Session(engine) as session:
            for entry in entries:
                now = entry.published or utcnow()
                verdicts.append(pipeline._decide(session, ids[entry.feed_url], entry, now))
            session.commit()
        asyncio.run(pipeline.aclose())
    finally:
        engine.dispose()
    return verdicts


def _freeze_long_lived() -> None:
    """Once per process, after a collection: what the process holds by now (imports, the
    embedding model's vocabulary, the lexicon, compiled rules: ~150,000 objects) leaves the
    cyclic collector's sight for good (`gc.freeze`). Every full collection walked them all:
    0.15-0.25 s of CPU in a cycle over 1,000 unchanged feeds. Their memory is still freed by
    reference counting; only a cycle among them would stay."""
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()
        limit_arenas()  # before the cycle's threads allocate (bot/memory.py)
        give_back_free_memory()


def _stored_item(row: item_store.StoryItemRow) -> StoredItem:
    return StoredItem(
        story_id=row.story_id,
        item_id=row.item_id,
        fingerprint=Fingerprint.from_json(row.fingerprint),
        vector=from_bytes(row.vector) if row.vector else None,
        published=row.published,
    )


def _reported(verdict: Verdict) -> Verdict:
    """The verdict as the cycle's report keeps it (what `poll-once` shows): without the
    text, summary, fingerprint and vector the store holds, so the report stays small."""
    entry = dataclasses.replace(verdict.entry, text="")
    return dataclasses.replace(verdict, entry=entry, summary="", fingerprint="", vector=b"")


def _reason(exc: BaseException) -> str:
    """`Type: first line of the message`, bounded; a database error by its driver's cause."""
    cause = getattr(exc, "orig", None) or exc
    first_line = (str(cause).strip().splitlines() or [""])[0]
    return f"{type(cause).__name__}: {first_line}"[:REASON_CHARS]


def _count(report: CycleReport) -> None:
    """Metrics and one log line per cycle."""
    metrics.POLLS.labels(result="ok").inc()
    for name in report.feed_errors:
        metrics.FETCH_ERRORS.labels(feed=name).inc()
    decisions = report.decisions
    for decision, n in decisions.items():
        metrics.ITEMS.labels(decision=decision).inc(n)
    log.info(
        "poll cycle: %d feeds polled, %d failed; %s; %.1f s",
        report.feeds_polled,
        report.feeds_failed,
        ", ".join(f"{n} {d}" for d, n in sorted(decisions.items())) or "no new entries",
        (report.finished - report.started).total_seconds(),
    )


def _when(published: datetime | None, now: datetime) -> datetime:
    """When an entry counts as published: undated and future-dated ones count as now."""
    if published is None or published > now + FUTURE_TOLERANCE:
        return now
    return published


def _trusted(entry: Entry, now: datetime) -> Entry:
    """The entry, undated if its date is further in the future than `FUTURE_TOLERANCE`."""
    if entry.published is not None and entry.published > now + FUTURE_TOLERANCE:
        return dataclasses.replace(entry, published=None)
    return entry
