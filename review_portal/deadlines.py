"""Business-day arithmetic for review deadlines: pure functions, no database, no clock.

A business day is a weekday that is not a configured holiday. Times are UTC. Durations are
"business seconds": only time falling on business days counts, so a hold from Friday
afternoon to Monday morning costs the reviewer only the Friday afternoon and Monday morning.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

DAY = 24 * 3600


@dataclass(frozen=True)
class SlaPolicy:
    """Everything the deadline rules need, taken from config once (see policy_from_config)."""

    turnaround_days: dict[str, int]
    holidays: frozenset[date] = field(default_factory=frozenset)
    near_due_hours: int = 24
    # Business hours an offer may wait unanswered before the reviewer is reminded (and again before escalation).
    offer_reminder_hours: int = 24


def parse_holidays(values) -> frozenset[date]:
    return frozenset(v if isinstance(v, date) else date.fromisoformat(str(v)) for v in values or ())


def policy_from_config(config) -> SlaPolicy:
    return SlaPolicy(
        turnaround_days=dict(config["TURNAROUND_DAYS"]),
        holidays=parse_holidays(config.get("HOLIDAYS", ())),
        near_due_hours=int(config.get("SLA_NEAR_DUE_HOURS", 24)),
        offer_reminder_hours=int(config.get("OFFER_REMINDER_HOURS", 24)),
    )


def is_business_day(day: date, holidays: frozenset[date] = frozenset()) -> bool:
    return day.weekday() < 5 and day not in holidays


def add_business_days(start: datetime, days: int, holidays: frozenset[date] = frozenset()) -> datetime:
    """The same time of day, `days` business days later. Starting on a weekend counts from the next business day."""
    current = start
    remaining = days
    while remaining > 0:
        current += timedelta(days=1)
        if is_business_day(current.date(), holidays):
            remaining -= 1
    return current


def due_date(start: datetime, priority: str, policy: SlaPolicy) -> datetime:
    return add_business_days(start, policy.turnaround_days[priority], policy.holidays)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=timezone.utc)


def business_seconds_between(start: datetime, end: datetime, holidays: frozenset[date] = frozenset()) -> int:
    """Seconds from start to end that fall on business days; negative when end is before start."""
    if end < start:
        return -business_seconds_between(end, start, holidays)
    total = 0
    cursor = start
    while cursor < end:
        next_midnight = _midnight(cursor.date() + timedelta(days=1))
        segment_end = min(end, next_midnight)
        if is_business_day(cursor.date(), holidays):
            total += int((segment_end - cursor).total_seconds())
        cursor = segment_end
    return total


def add_business_seconds(start: datetime, seconds: int, holidays: frozenset[date] = frozenset()) -> datetime:
    """The moment `seconds` of business time after `start` (weekends and holidays pass for free)."""
    cursor = start
    remaining = seconds
    while remaining > 0:
        if not is_business_day(cursor.date(), holidays):
            cursor = _midnight(cursor.date() + timedelta(days=1))
            continue
        available = int((_midnight(cursor.date() + timedelta(days=1)) - cursor).total_seconds())
        if remaining <= available:
            return cursor + timedelta(seconds=remaining)
        remaining -= available
        cursor = _midnight(cursor.date() + timedelta(days=1))
    return cursor


def extend_for_hold(due_at: datetime, hold_started_at: datetime, resumed_at: datetime,
                    holidays: frozenset[date] = frozenset()) -> datetime:
    """The deadline after a hold: pushed back by the business time spent waiting on the referrer."""
    held = business_seconds_between(hold_started_at, resumed_at, holidays)
    if held <= 0:
        return due_at
    return add_business_seconds(due_at, held, holidays)


def time_left(due_at: datetime, now: datetime, holidays: frozenset[date] = frozenset()) -> int:
    """Business seconds until the deadline; negative once it has passed."""
    return business_seconds_between(now, due_at, holidays)


def sla_state(seconds_left: int, near_due_hours: int) -> str:
    if seconds_left < 0:
        return "overdue"
    if seconds_left < near_due_hours * 3600:
        return "near_due"
    return "on_time"


SLA_LABELS = {"overdue": "Overdue", "near_due": "Due soon", "on_time": "On time", "on_hold": "On hold"}


def describe_time_left(seconds_left: int) -> str:
    """'2 business days 4 h left' or 'overdue by 5 h', for busy people scanning a table."""
    amount = abs(seconds_left)
    days, rest = divmod(amount, DAY)
    hours = rest // 3600
    if days:
        text = f"{days} business day{'s' if days != 1 else ''}" + (f" {hours} h" if hours else "")
    elif hours:
        text = f"{hours} h"
    else:
        text = f"{max(1, rest // 60)} min"
    return f"overdue by {text}" if seconds_left < 0 else f"{text} left"
