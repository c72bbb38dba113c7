"""When to poll a feed next, and why: a pure function of what the feed has shown.

The rule (`next_interval`), in order of precedence:

1. **Failures back off.** A feed whose last poll failed, or that answered Retry-After, waits
   `backoff_delay` (bot/pacing.py, the one backoff): base·2^(n-1), at least the
   Retry-After, at most `limits.backoff_max_seconds`. Nothing below applies.
2. **The publication rate sets the base.** The interval is `RATE_FRACTION` of the feed's
   mean gap between entries, as its entries' dates have shown it over time (`observe`: an
   exponentially weighted mean, kept in the feed row). A feed silent for longer than
   `QUIET_GAPS` mean gaps counts its silence divided by `QUIET_GAPS` as its gap, so a feed
   that stopped publishing drifts to the maximum (silence runs from its newest entry, or
   from its first poll when it never showed a dated one, e.g. an empty search feed). Before
   any gap is known, the period the feed declares (`sy:updatePeriod` /
   `sy:updateFrequency`) is taken as its gap; with neither, the feed is polled every
   `poll_interval` until its dates (or its silence) say more. Undated entries count as
   published when first seen (the pipeline passes that time).
3. **The publisher's caching instructions are floors.** `<ttl>` (minutes the channel may be
   cached), `Cache-Control: max-age` (less `Age`) and `Expires` say that polling sooner
   fetches nothing new: the largest of them that exceeds the base becomes the interval.
4. **Bounds.** The result lies between `poll_interval` and `max_poll_interval` (default
   6 h: a quiet feed, or one with a day-long `<ttl>`, is still looked at four times a day).

Why these constants (measured in bench/schedule.py on 1,000 simulated feeds):

* `RATE_FRACTION = 1/24`. With an interval I the mean delay from publication to poll is
  I/2, so a fraction f of the gap delays each entry by about f/2 of the gap (2 % here).
  miniflux's entry-frequency scheduler polls at the mean gap itself (f = 1); an alert bot
  wants news within minutes, and at 1/24 a feed publishing hourly stays at a 5-minute
  `poll_interval` even when its estimate runs at twice the true gap, so active feeds keep
  today's freshness while a daily feed is polled hourly (24 requests a day, not 288).
* `GAP_WEIGHT = 0.2`: each new gap moves the estimate a fifth of the way, so about the
  last five gaps count; a feed that speeds up (breaking news) is followed within a few
  entries, and one burst of entries stamped with the same minute does not set the pace.
* `QUIET_GAPS = 3`: a Poisson feed is silent for three mean gaps 5 % of the time; past
  that, the silence is the better evidence.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from bot.pacing import backoff_delay

RATE_FRACTION = 1 / 24
GAP_WEIGHT = 0.2
QUIET_GAPS = 3.0
DAY = 86_400.0

# sy:updatePeriod (RSS 1.0 syndication module); the module's default period is daily.
_PERIODS = {"hourly": 3_600.0, "daily": DAY, "weekly": 7 * DAY, "monthly": 30 * DAY}
_PERIODS["yearly"] = 365 * DAY
_MAX_HINT_SECONDS = 365 * DAY  # hints beyond a year are nonsense; the maximum bounds anyway


@dataclass(frozen=True, slots=True)
class Activity:
    """What a feed's entry dates have shown so far (kept in the feed row).

    `mean_gap`: seconds between two entries, exponentially weighted (None: not known yet);
    `newest`: the latest publication date seen; `since`: the first poll, from which the
    silence of a feed that never showed a dated entry (an empty search feed) is counted.
    """

    mean_gap: float | None = None
    newest: datetime | None = None
    since: datetime | None = None


@dataclass(frozen=True, slots=True)
class Signals:
    """Everything a feed said about its pace. Seconds throughout; None: not said."""

    activity: Activity = Activity()
    ttl: float | None = None  # <ttl>
    update_period: float | None = None  # sy:updatePeriod / sy:updateFrequency
    max_age: float | None = None  # Cache-Control: max-age, less Age
    expires_in: float | None = None  # Expires, less Date
    failures: int = 0  # consecutive failures, this poll included
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class Bounds:
    """`minimum`: poll_interval; `maximum`: max_poll_interval; the backoff's base and cap."""

    minimum: float
    maximum: float
    backoff_base: float
    backoff_max: float


@dataclass(frozen=True, slots=True)
class Interval:
    """Seconds until the next poll, and why (shown by `python -m bot feeds`)."""

    seconds: float
    reason: str


def next_interval(signals: Signals, bounds: Bounds, *, now: datetime) -> Interval:
    """The interval until the next poll and its reason; the rule is the module docstring's."""
    if signals.failures > 0 or signals.retry_after is not None:
        return _backoff(signals, bounds)
    seconds, reason = _base(signals.activity, signals.update_period, bounds.minimum, now)
    for floor, why in (
        (signals.ttl, "ttl"),
        (signals.max_age, "Cache-Control max-age"),
        (signals.expires_in, "Expires"),
    ):
        if floor is not None and floor > seconds and floor > bounds.minimum:
            seconds, reason = floor, f"{why} {duration(floor)}"
    low, high = bounds.minimum, max(bounds.minimum, bounds.maximum)
    if seconds > high:
        return Interval(high, f"{reason}; at most {duration(high)}")
    return Interval(max(low, seconds), reason)


def observe(activity: Activity, published: Iterable[datetime], *, now: datetime) -> Activity:
    """`activity` after a poll whose entries carry these publication dates.

    Dates after `now` are not trusted and dates not newer than the newest seen are old
    news. The first time two or more dates are seen, the mean gap is their span over their
    count less one; after that each new date's gap to the one before moves the estimate by
    `GAP_WEIGHT`.
    """
    if activity.since is None:
        activity = dataclasses.replace(activity, since=now)
    dates = sorted(d for d in published if d <= now)
    if not dates:
        return activity
    newest, mean_gap = activity.newest, activity.mean_gap
    fresh = [d for d in dates if newest is None or d > newest]
    if not fresh:
        return activity
    if mean_gap is None:
        known = dates if newest is None else [newest, *fresh]
        if len(known) >= 2:
            mean_gap = (known[-1] - known[0]).total_seconds() / (len(known) - 1)
    else:
        previous = newest
        for date in fresh:
            if previous is not None:
                gap = (date - previous).total_seconds()
                mean_gap += GAP_WEIGHT * (gap - mean_gap)
            previous = date
    return Activity(mean_gap=mean_gap, newest=fresh[-1], since=activity.since)


def ttl_seconds(value: object) -> float | None:
    """`<ttl>` (minutes) as seconds; None when absent, not a positive number or absurd."""
    if not isinstance(value, str):
        return None
    try:
        minutes = float(value.strip())
    except ValueError:
        return None
    return _sane(minutes * 60.0)


def update_period_seconds(period: object, frequency: object) -> float | None:
    """`sy:updatePeriod` / `sy:updateFrequency` as seconds between updates, or None.

    The period defaults to daily and the frequency (updates per period) to 1, as the
    syndication module says; an unknown period or a frequency below 1 is no hint.
    """
    if period is None and frequency is None:
        return None
    name = period.strip().lower() if isinstance(period, str) else "daily"
    length = _PERIODS.get(name or "daily")
    count = 1.0
    if isinstance(frequency, str) and frequency.strip():
        try:
            count = float(frequency.strip())
        except ValueError:
            return None
    if length is None or not count >= 1:
        return None
    return _sane(length / count)


def duration(seconds: float) -> str:
    """A short human duration: "45 s", "5 min", "2 h", "3 days"."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3_600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * DAY:
        return f"{seconds / 3_600:.0f} h"
    return f"{seconds / DAY:.0f} days"


def _sane(seconds: float) -> float | None:
    if not math.isfinite(seconds) or seconds <= 0:
        return None
    return min(seconds, _MAX_HINT_SECONDS)


def _backoff(signals: Signals, bounds: Bounds) -> Interval:
    delay = backoff_delay(
        signals.failures,
        base=bounds.backoff_base,
        maximum=bounds.backoff_max,
        retry_after=signals.retry_after,
    )
    if signals.failures > 0:
        plural = "s" if signals.failures > 1 else ""
        reason = f"backing off after {signals.failures} failure{plural}"
        exponential = backoff_delay(
            signals.failures, base=bounds.backoff_base, maximum=bounds.backoff_max, retry_after=None
        )
        if delay > exponential:
            reason += f" (Retry-After {duration(delay)})"
    else:
        reason = f"Retry-After {duration(delay)}"
    return Interval(delay, reason)


def _base(
    activity: Activity, declared: float | None, minimum: float, now: datetime
) -> tuple[float, str]:
    """The interval the feed's pace asks for (before floors and bounds), and why."""
    if activity.mean_gap is not None:
        gap, reason = activity.mean_gap, _pace(activity.mean_gap)
    elif declared is not None:
        gap, reason = declared, f"sy:updatePeriod every {duration(declared)}"
    else:
        few = "only one dated entry yet" if activity.newest else "no dated entries yet"
        gap, reason = None, few
    last = activity.newest or activity.since
    if last is not None:
        silence = (now - last).total_seconds() / QUIET_GAPS
        if silence > (gap or 0.0) and (gap is not None or RATE_FRACTION * silence > minimum):
            gap, reason = silence, f"no entry for {duration(silence * QUIET_GAPS)}"
    return (minimum, reason) if gap is None else (RATE_FRACTION * gap, reason)


def _pace(gap: float) -> str:
    """'about 3 entries a day', 'about 2 entries a week', 'about 1 entry every 40 days'."""
    if gap < 1:
        return "entries all at once"
    for length, unit in ((DAY, "day"), (7 * DAY, "week")):
        count = length / gap
        if count >= 0.95:
            rounded = round(count)
            return f"about {rounded} entr{'y' if rounded == 1 else 'ies'} a {unit}"
    return f"about 1 entry every {gap / DAY:.0f} days"
