"""Business-day deadlines around weekends and holidays, and the hold clock (pure functions)."""
from datetime import date, datetime, timedelta, timezone

import pytest

from config import Config
from review_portal.deadlines import (
    SlaPolicy, add_business_days, add_business_seconds, business_seconds_between, describe_time_left, due_date,
    extend_for_hold, parse_holidays, sla_state, time_left,
)

UTC = timezone.utc
XMAS = frozenset({date(2026, 12, 25), date(2026, 12, 28)})  # Friday, and the Monday substitute for Boxing Day
H = 3600
DAY = 24 * H


def at(day, hour=9):
    return datetime(2026, 12, day, hour, tzinfo=UTC)


@pytest.mark.parametrize("start, days, expected", [
    (at(7), 5, at(14)),            # Monday + 5 → next Monday
    (at(10), 2, at(14)),           # Thursday + 2 skips the weekend → Monday
    (at(11), 1, at(14)),           # Friday + 1 → Monday
    (at(12), 1, at(14)),           # submitted on Saturday: Monday is the first business day
    (at(13, 23), 2, at(15, 23)),   # Sunday late evening + 2 → Tuesday
])
def test_business_days_skip_weekends(start, days, expected):
    assert add_business_days(start, days) == expected


def test_business_days_skip_configured_holidays():
    # Wednesday 23 Dec + 2: Thursday 24, (Fri 25 holiday, weekend, Mon 28 holiday) Tuesday 29.
    assert add_business_days(at(23), 2, XMAS) == at(29)
    assert add_business_days(at(23), 2) == at(25)  # without the holidays it would be Christmas Day
    # Priority decides the turnaround: urgent 2 business days, routine 5.
    policy = SlaPolicy({"routine": 5, "urgent": 2}, XMAS)
    assert due_date(at(24), "urgent", policy) == datetime(2026, 12, 30, 9, tzinfo=UTC)
    assert due_date(at(24), "routine", policy) == datetime(2027, 1, 4, 9, tzinfo=UTC)


def test_holidays_come_from_config():
    holidays = parse_holidays(Config.HOLIDAYS)
    assert date(2026, 12, 25) in holidays and all(isinstance(d, date) for d in holidays)


def test_business_seconds_ignore_weekends_and_holidays():
    assert business_seconds_between(at(11, 12), at(14, 12)) == DAY          # Fri noon → Mon noon: 12 h + 12 h
    assert business_seconds_between(at(24, 12), at(29, 12), XMAS) == DAY    # Thu noon → Tue noon over Christmas
    assert business_seconds_between(at(14, 12), at(11, 12)) == -DAY
    assert business_seconds_between(at(12), at(13, 20)) == 0                # all weekend


def test_adding_business_seconds_jumps_over_closed_days():
    assert add_business_seconds(at(11, 18), 12 * H) == at(14, 6)
    assert add_business_seconds(at(24, 18), 12 * H, XMAS) == at(29, 6)
    assert add_business_seconds(at(12, 10), H) == at(14, 1)  # starting on a Saturday


def test_hold_time_is_given_back_to_the_reviewer():
    due = at(16, 9)  # Wednesday
    # On hold from Friday 11 Dec 09:00 to Monday 14 Dec 09:00: one business day (Friday) was lost.
    assert extend_for_hold(due, at(11, 9), at(14, 9)) == at(17, 9)
    # A hold that only spans a weekend costs nothing.
    assert extend_for_hold(due, at(12, 8), at(13, 20)) == due
    # Over Christmas only the business hours count: Thu 24 15:00 → Tue 29 09:00 is 9 h on the 24th + 9 h on the 29th.
    assert extend_for_hold(at(30, 9), at(24, 15), at(29, 9), XMAS) == at(30, 9) + timedelta(hours=18)


def test_time_left_and_state():
    assert time_left(at(14, 9), at(11, 9)) == DAY  # Friday → Monday: one business day
    assert sla_state(DAY, 24) == "on_time"
    assert sla_state(DAY - 1, 24) == "near_due"
    assert sla_state(-1, 24) == "overdue"
    assert describe_time_left(DAY + 4 * H) == "1 business day 4 h left"
    assert describe_time_left(-5 * H) == "overdue by 5 h"
    assert describe_time_left(2 * DAY) == "2 business days left"
