"""The one clock. Services take `now` as an argument; only request boundaries call utcnow().

Tests stop the clock with freeze(at) and start it again with unfreeze() (tests/conftest.py's `clock`
fixture does both): every caller of utcnow() sees the frozen moment, however it imported the function.
"""
from __future__ import annotations

from datetime import datetime, timezone

_frozen: datetime | None = None


def utcnow() -> datetime:
    """The current moment, timezone-aware in UTC (or the frozen moment while the clock is frozen)."""
    if _frozen is not None:
        return _frozen
    return datetime.now(timezone.utc)


def freeze(at: datetime) -> None:
    """Stop the clock at `at` (timezone-aware; stored in UTC) until unfreeze()."""
    global _frozen
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("naive datetime given to clock.freeze(); pass a timezone-aware one")
    _frozen = at.astimezone(timezone.utc)


def unfreeze() -> None:
    """Let the clock run again."""
    global _frozen
    _frozen = None
