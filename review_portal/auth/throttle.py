"""Brute-force throttling per account and per source address, with exponential back-off.

Never a permanent lock-out: the longest wait is MAX_DELAY, so an attacker can slow a real user
down but cannot shut them out for good; and a password reset by e-mail always works.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.orm import Session

from review_portal.auth.models import LoginThrottle
from review_portal.errors import DomainError

FREE_FAILURES = {"account": 5, "address": 20}
BASE_DELAY = timedelta(seconds=30)
MAX_DELAY = timedelta(minutes=15)
# Failures older than this are forgotten.
WINDOW = timedelta(hours=1)


class LoginThrottled(DomainError):
    status_code = 429

    def __init__(self, wait: timedelta):
        minutes = max(1, int(wait.total_seconds() + 59) // 60)
        super().__init__(f"Too many attempts. Wait {minutes} minute{'s' if minutes != 1 else ''} and try again, "
                         "or reset your password by e-mail.")
        self.wait = wait


def _key(key: str) -> str:
    return (key or "").strip().lower()[:255]


def _ensure(db: Session, scope: str, key: str) -> None:
    """The counter row exists afterwards, even when a parallel request creates it at the same moment."""
    dialect = db.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - the portal runs on PostgreSQL or SQLite
        if _row(db, scope, key) is None:
            db.add(LoginThrottle(scope=scope, key=_key(key), failures=0))
            db.flush()
        return
    db.execute(insert(LoginThrottle).values(scope=scope, key=_key(key), failures=0)
               .on_conflict_do_nothing(index_elements=["scope", "key"]))


def _row(db: Session, scope: str, key: str, *, lock: bool = False) -> LoginThrottle | None:
    query = select(LoginThrottle).where(LoginThrottle.scope == scope, LoginThrottle.key == _key(key))
    if lock:
        query = query.with_for_update()  # PostgreSQL: SELECT ... FOR UPDATE; SQLite locks the whole database anyway
    # Always the database's numbers, never a copy an earlier statement of this request loaded.
    return db.scalar(query.execution_options(populate_existing=True))


def blocked_for(db: Session, *, email: str, ip: str, now: datetime) -> timedelta | None:
    """How long this attempt must wait, or None if it may go ahead.

    The account's counter row is locked (SELECT ... FOR UPDATE) until the attempt's transaction ends, so parallel
    attempts on one account are checked one after another rather than all against the same old count."""
    waits = []
    _ensure(db, "account", email)
    for scope, key in (("account", email), ("address", ip)):
        row = _row(db, scope, key, lock=scope == "account")
        if row is not None and row.blocked_until is not None and row.blocked_until > now:
            waits.append(row.blocked_until - now)
    return max(waits) if waits else None


def delay_after(failures: int, scope: str) -> timedelta | None:
    over = failures - FREE_FAILURES[scope]
    if over < 0:
        return None
    return min(BASE_DELAY * (2 ** min(over, 10)), MAX_DELAY)


def failed(db: Session, *, email: str, ip: str, now: datetime) -> None:
    """Count a failure, atomically (failures = failures + 1 in the database, never a number read earlier), so
    parallel failures are each counted."""
    for scope, key in (("account", email), ("address", ip)):
        _ensure(db, scope, key)
        where = (LoginThrottle.scope == scope, LoginThrottle.key == _key(key))
        stale = LoginThrottle.last_failed_at.is_not(None) & (LoginThrottle.last_failed_at < now - WINDOW)
        failures = db.execute(
            update(LoginThrottle).where(*where)
            .values(failures=case((stale, 1), else_=func.coalesce(LoginThrottle.failures, 0) + 1), last_failed_at=now)
            .returning(LoginThrottle.failures).execution_options(synchronize_session=False)
        ).scalar_one()
        delay = delay_after(failures, scope)
        blocked = now + delay if delay else None
        # Of two failures racing, the later count sets the longer block: never shorten one already set.
        db.execute(update(LoginThrottle).where(*where, or_(LoginThrottle.blocked_until.is_(None),
                                                             LoginThrottle.failures == failures))
                   .values(blocked_until=blocked).execution_options(synchronize_session=False))
    db.flush()


def succeeded(db: Session, *, email: str) -> None:
    """A full login (password and second factor) clears the account's count; the address keeps its own."""
    db.execute(update(LoginThrottle).where(LoginThrottle.scope == "account", LoginThrottle.key == _key(email))
               .values(failures=0, blocked_until=None).execution_options(synchronize_session=False))
