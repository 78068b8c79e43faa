"""The one clock: utcnow() is aware UTC, freeze() stops it for every caller, unfreeze() lets it run again."""
from datetime import datetime, timedelta, timezone

import pytest

from review_portal import clock as clock_module
from review_portal.clock import utcnow as imported_utcnow
from tests.conftest import frozen_clock

MONDAY = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def _always_unfrozen():
    clock_module.unfreeze()
    yield
    clock_module.unfreeze()


def test_the_running_clock_is_aware_utc_and_moves():
    before = datetime.now(timezone.utc)
    first = clock_module.utcnow()
    second = clock_module.utcnow()
    after = datetime.now(timezone.utc)
    assert first.utcoffset() == timedelta(0)
    assert before <= first <= second <= after


def test_freeze_stops_the_clock_for_every_caller_however_imported():
    clock_module.freeze(MONDAY)
    assert clock_module.utcnow() == MONDAY
    assert imported_utcnow() == MONDAY  # `from review_portal.clock import utcnow` sees the same moment
    assert clock_module.utcnow() == clock_module.utcnow()


def test_freeze_keeps_the_utc_convention():
    paris = timezone(timedelta(hours=1))
    clock_module.freeze(datetime(2026, 11, 23, 10, 0, tzinfo=paris))
    frozen = clock_module.utcnow()
    assert frozen == MONDAY and frozen.tzinfo == timezone.utc


def test_freeze_refuses_a_naive_datetime():
    with pytest.raises(ValueError, match="naive"):
        clock_module.freeze(datetime(2026, 11, 23, 9, 0))
    assert clock_module._frozen is None


def test_unfreeze_lets_the_clock_run_again():
    clock_module.freeze(MONDAY)
    clock_module.unfreeze()
    assert clock_module._frozen is None
    assert abs(clock_module.utcnow() - datetime.now(timezone.utc)) < timedelta(seconds=5)


def test_the_fixture_starts_frozen_at_the_real_time(clock):
    assert clock_module._frozen is not None
    assert abs(clock.now() - datetime.now(timezone.utc)) < timedelta(seconds=5)
    assert clock.now() == clock_module.utcnow() == imported_utcnow()


def test_the_fixture_sets_and_advances(clock):
    assert clock.set(MONDAY) == MONDAY
    assert clock.advance(timedelta(hours=2)) == MONDAY + timedelta(hours=2)
    assert clock.advance(days=1, minutes=30) == MONDAY + timedelta(days=1, hours=2, minutes=30)
    assert clock.now() == imported_utcnow() == MONDAY + timedelta(days=1, hours=2, minutes=30)
    assert clock.advance(minutes=-30) == MONDAY + timedelta(days=1, hours=2)


@pytest.mark.parametrize("args, kwargs", [((), {}), ((timedelta(1),), {"days": 1})])
def test_the_fixture_advances_by_a_timedelta_or_keywords_not_both(clock, args, kwargs):
    clock.set(MONDAY)
    with pytest.raises(TypeError):
        clock.advance(*args, **kwargs)
    assert clock.now() == MONDAY


def test_the_fixture_runs_the_clock_again_afterwards_even_after_a_failure():
    with frozen_clock() as frozen:
        frozen.set(MONDAY)
        assert imported_utcnow() == MONDAY
    assert clock_module._frozen is None
    with pytest.raises(RuntimeError), frozen_clock() as frozen:
        frozen.set(MONDAY)
        raise RuntimeError("the test failed")
    assert clock_module._frozen is None
    assert imported_utcnow() != MONDAY
