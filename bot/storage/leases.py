"""Named leases in the database: one replica holds a role, another takes over when it lapses.

A holder renews well before expiry; a replica that dies stops renewing, and after
`ttl` another replica's `acquire` succeeds. One conditional UPDATE (or INSERT) decides, so
two replicas can never both believe they hold a lease.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlmodel import Session, col

from bot.storage.errors import StorageConflict
from bot.storage.models import Lease, utcnow


def acquire(
    session: Session,
    name: str,
    owner: str,
    ttl: timedelta,
    *,
    now: datetime | None = None,
    evict: Collection[str] = (),
) -> bool:
    """Take or renew lease `name` for `owner`; True when `owner` holds it afterwards.

    `evict`: holders known to be dead (a crashed process on this host): their lease is
    taken at once instead of after it expires.
    """
    now = now or utcnow()
    free = (col(Lease.owner) == owner) | (col(Lease.expires_at) < now)
    if evict:
        free = free | col(Lease.owner).in_(list(evict))
    renewed = session.execute(
        update(Lease)
        .where(col(Lease.name) == name)
        .where(free)
        .values(owner=owner, expires_at=now + ttl)
        .execution_options(synchronize_session=False)
    )
    if renewed.rowcount:  # type: ignore[attr-defined]
        session.commit()
        return True
    try:
        session.add(Lease(name=name, owner=owner, acquired_at=now, expires_at=now + ttl))
        session.commit()
    except StorageConflict:  # someone else holds it
        session.rollback()
        return False
    return True


def release(session: Session, name: str, owner: str) -> None:
    """Give the lease up at once (clean shutdown), if `owner` still holds it."""
    session.execute(delete(Lease).where(col(Lease.name) == name, col(Lease.owner) == owner))
    session.commit()


def beat(session: Session, name: str, owner: str, *, at: datetime, problem: str | None) -> None:
    """The holder's word on its role: when it last saw it working, and what stops it."""
    session.execute(
        update(Lease)
        .where(col(Lease.name) == name, col(Lease.owner) == owner)
        .values(heartbeat_at=at, problem=problem)
        .execution_options(synchronize_session=False)
    )
    session.commit()


def holder(session: Session, name: str, *, now: datetime | None = None) -> str | None:
    now = now or utcnow()
    lease = session.get(Lease, name)
    if lease is None or lease.expires_at < now:
        return None
    return lease.owner
