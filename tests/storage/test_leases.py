from __future__ import annotations

from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.storage.leases import acquire, holder, release
from bot.storage.models import utcnow

TTL = timedelta(seconds=45)


def test_one_holder_at_a_time_and_takeover_after_expiry(engine: Engine) -> None:
    now = utcnow()
    with Session(engine) as a, Session(engine) as b:
        assert acquire(a, "updates", "replica-a", TTL, now=now)
        assert not acquire(b, "updates", "replica-b", TTL, now=now + timedelta(seconds=10))
        assert acquire(a, "updates", "replica-a", TTL, now=now + timedelta(seconds=20))  # renew
        assert holder(b, "updates", now=now + timedelta(seconds=30)) == "replica-a"
        # replica-a dies: no renewal; 45 s after its last renewal replica-b takes over
        assert not acquire(b, "updates", "replica-b", TTL, now=now + timedelta(seconds=60))
        assert acquire(b, "updates", "replica-b", TTL, now=now + timedelta(seconds=66))
        assert not acquire(a, "updates", "replica-a", TTL, now=now + timedelta(seconds=70))
        assert holder(a, "updates", now=now + timedelta(seconds=70)) == "replica-b"


def test_release_frees_the_lease_at_once(engine: Engine) -> None:
    with Session(engine) as a, Session(engine) as b:
        assert acquire(a, "updates", "replica-a", TTL)
        release(b, "updates", "replica-b")  # not the holder: nothing happens
        assert holder(b, "updates") == "replica-a"
        release(a, "updates", "replica-a")
        assert holder(b, "updates") is None
        assert acquire(b, "updates", "replica-b", TTL)
