"""Brute-force throttling per account and per source address, with exponential back-off.

Never a permanent lock-out: the longest wait is MAX_DELAY, so an attacker can slow a real user
down but cannot shut them out for good; and a password reset by e-mail always works.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from review_portal.auth.models import LoginThrottle

FREE_FAILURES = {"account": 5, "address": 20}
BASE_DELAY = timedelta(seconds=30)
MAX_DELAY = timedelta(minutes=15)
# Failures older than this are forgotten.
WINDOW = timedelta(hours=1)


def _row(db: Session, scope: str, key: str, create: bool = False) -> LoginThrottle | None:
    key = key.strip().lower()[:255]
    row = db.scalar(select(LoginThrottle).where(LoginThrottle.scope == scope, LoginThrottle.key == key))
    if row is None and create:
        row = LoginThrottle(scope=scope, key=key, failures=0)
        db.add(row)
    return row


def blocked_for(db: Session, *, email: str, ip: str, now: datetime) -> timedelta | None:
    """How long this attempt must wait, or None if it may go ahead."""
    waits = []
    for scope, key in (("account", email), ("address", ip)):
        row = _row(db, scope, key)
        if row is not None and row.blocked_until is not None and row.blocked_until > now:
            waits.append(row.blocked_until - now)
    return max(waits) if waits else None


def delay_after(failures: int, scope: str) -> timedelta | None:
    over = failures - FREE_FAILURES[scope]
    if over < 0:
        return None
    return min(BASE_DELAY * (2 ** min(over, 10)), MAX_DELAY)


def failed(db: Session, *, email: str, ip: str, now: datetime) -> None:
    for scope, key in (("account", email), ("address", ip)):
        row = _row(db, scope, key, create=True)
        if row.last_failed_at is not None and now - row.last_failed_at > WINDOW:
            row.failures = 0
        row.failures = (row.failures or 0) + 1
        row.last_failed_at = now
        delay = delay_after(row.failures, scope)
        row.blocked_until = now + delay if delay else None
    db.flush()


def succeeded(db: Session, *, email: str) -> None:
    """A full login (password and second factor) clears the account's count; the address keeps its own."""
    row = _row(db, "account", email)
    if row is not None:
        row.failures = 0
        row.blocked_until = None
