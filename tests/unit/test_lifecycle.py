from datetime import datetime, timezone

import pytest

from review_portal.cases.lifecycle import TRANSITIONS, CaseStatus, can_transition, transition
from review_portal.errors import IllegalTransition

NOW = datetime(2026, 11, 23, tzinfo=timezone.utc)


class FakeCase:
    reference = "SO-TEST"

    def __init__(self, status):
        self.status = status.value
        self.closed_at = None


ALLOWED = {(a, b) for a, targets in TRANSITIONS.items() for b in targets}


@pytest.mark.parametrize("current", list(CaseStatus))
@pytest.mark.parametrize("target", list(CaseStatus))
def test_every_pair_is_allowed_or_refused_with_a_message(current, target):
    case = FakeCase(current)
    if (current, target) in ALLOWED:
        transition(case, target, NOW)
        assert case.status == target.value
    else:
        with pytest.raises(IllegalTransition) as err:
            transition(case, target, NOW)
        assert "SO-TEST" in err.value.message and err.value.status_code == 409
        assert case.status == current.value


def test_the_main_path_is_allowed_in_order():
    path = [CaseStatus.SUBMITTED, CaseStatus.ASSIGNED, CaseStatus.IN_REVIEW, CaseStatus.OPINION_SIGNED,
            CaseStatus.LETTER_DELIVERED, CaseStatus.CLOSED]
    for a, b in zip(path, path[1:]):
        assert can_transition(a, b)


def test_terminal_states_and_signed_cases_cannot_be_withdrawn():
    for status in (CaseStatus.OPINION_SIGNED, CaseStatus.LETTER_DELIVERED, CaseStatus.CLOSED, CaseStatus.WITHDRAWN):
        assert not can_transition(status, CaseStatus.WITHDRAWN)


def test_closing_sets_closed_at():
    case = FakeCase(CaseStatus.LETTER_DELIVERED)
    transition(case, CaseStatus.CLOSED, NOW)
    assert case.closed_at == NOW
