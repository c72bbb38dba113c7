"""Rows sent under a lease (deliveries and digests): the same columns (`id`, `state`,
`attempts`, `next_attempt_at`, `last_error`, `lease_owner`, `lease_until`), so one way to
give them back, extend their leases and recover them after a crash."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.owners import owner_is_dead
from bot.storage.models import Delivery, Digest, utcnow

Leased = type[Delivery] | type[Digest]


def _held(model: Leased, ids: list[int], owner: str) -> ColumnElement[bool]:
    return and_(
        col(model.id).in_(ids),
        col(model.state) == "sending",
        col(model.lease_owner) == owner,
    )


def _apply(engine: Engine, model: Leased, where: ColumnElement[bool], **values: object) -> int:
    with Session(engine) as session:
        result = session.execute(update(model).where(where).values(**values))
        session.commit()
        return int(result.rowcount)  # type: ignore[attr-defined]


def release(engine: Engine, model: Leased, ids: Iterable[int], *, owner: str) -> int:
    """Give back rows not being sent (shutdown): pending again, no attempt counted."""
    wanted = list(ids)
    if not wanted:
        return 0
    return _apply(
        engine, model, _held(model, wanted, owner),
        state="pending", lease_owner=None, lease_until=None,
    )  # fmt: skip


def renew(
    engine: Engine,
    model: Leased,
    ids: Iterable[int],
    *,
    owner: str,
    lease_seconds: float,
    now: datetime | None = None,
) -> int:
    """Extend this process's leases on the rows it is still working on; how many."""
    wanted = list(ids)
    if not wanted:
        return 0
    until = (now or utcnow()) + timedelta(seconds=lease_seconds)
    return _apply(engine, model, _held(model, wanted, owner), lease_until=until)


def recover(
    engine: Engine,
    model: Leased,
    *,
    me: str,
    max_attempts: int,
    note: str,
    busy: Iterable[int] = (),
    now: datetime | None = None,
    is_dead: Callable[[str], bool] | None = None,
) -> int:
    """Return interrupted rows to pending, an attempt counted (failed once attempts run out).

    Interrupted: `sending` with an expired lease, or owned by a dead local process; never
    a row in `busy` (this process is still working on it).
    """
    now = now or utcnow()
    dead = is_dead or (lambda owner: owner_is_dead(owner, me=me))
    working = list(busy)
    with Session(engine) as session:
        owners = session.exec(
            select(model.lease_owner).where(col(model.state) == "sending").distinct()
        ).all()
        gone = [o for o in owners if o is not None and o != me and dead(o)]
        stale = and_(
            col(model.state) == "sending",
            or_(
                col(model.lease_until) < now,
                col(model.lease_until).is_(None),
                col(model.lease_owner).in_(gone),
            ),
            col(model.id).not_in(working),
        )
        exhausted = session.execute(
            update(model)
            .where(stale, col(model.attempts) + 1 >= max_attempts)
            .values(state="failed", last_error=note, attempts=col(model.attempts) + 1,
                    lease_owner=None, lease_until=None)
        ).rowcount  # type: ignore[attr-defined]  # fmt: skip
        revived = session.execute(
            update(model)
            .where(stale)
            .values(state="pending", last_error=note, attempts=col(model.attempts) + 1,
                    next_attempt_at=now, lease_owner=None, lease_until=None)
        ).rowcount  # type: ignore[attr-defined]  # fmt: skip
        session.commit()
        return int(exhausted) + int(revived)
