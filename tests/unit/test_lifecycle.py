from datetime import datetime, timezone

import pytest

from review_portal.cases.lifecycle import (
    FHIR_TASK_STATUS, OPEN_STATUSES, TERMINAL_STATUSES, CaseStatus, can_transition, progress, transition,
)
from review_portal.errors import IllegalTransition
from tests.state_oracle import CASE_ALLOWED

NOW = datetime(2026, 11, 23, tzinfo=timezone.utc)


class FakeCase:
    reference = "SO-TEST"

    def __init__(self, status):
        self.status = status.value
        self.closed_at = None
        self.reviews = []


# The hand-written oracle (tests/state_oracle.py), not the table under test.
ALLOWED = {(CaseStatus(a), CaseStatus(b)) for a, b in CASE_ALLOWED}


@pytest.mark.parametrize("current", list(CaseStatus))
@pytest.mark.parametrize("target", list(CaseStatus))
def test_every_pair_is_allowed_or_refused_with_a_message(current, target):
    case = FakeCase(current)
    if (current, target) in ALLOWED:
        transition(case, target, NOW)
        assert case.status == target.value
        assert case.fhir_status == FHIR_TASK_STATUS[target]
    else:
        with pytest.raises(IllegalTransition) as err:
            transition(case, target, NOW)
        assert "SO-TEST" in err.value.message and err.value.status_code == 409
        assert case.status == current.value


def test_the_main_path_is_allowed_in_order():
    path = [CaseStatus.SUBMITTED, CaseStatus.ASSIGNED, CaseStatus.IN_REVIEW, CaseStatus.AWAITING_INFORMATION,
            CaseStatus.IN_REVIEW, CaseStatus.OPINION_SIGNED, CaseStatus.LETTER_DELIVERED, CaseStatus.ACKNOWLEDGED,
            CaseStatus.CLOSED]
    for a, b in zip(path, path[1:]):
        assert can_transition(a, b), (a, b)
    assert can_transition(CaseStatus.SUBMITTED, CaseStatus.TRIAGE) and can_transition(CaseStatus.TRIAGE, CaseStatus.ASSIGNED)


@pytest.mark.parametrize("status", sorted(OPEN_STATUSES))
def test_withdrawn_and_cancelled_from_every_open_state(status):
    assert can_transition(status, CaseStatus.WITHDRAWN) and can_transition(status, CaseStatus.CANCELLED)


def test_signed_and_terminal_cases_cannot_be_withdrawn_or_cancelled():
    for status in set(CaseStatus) - OPEN_STATUSES:
        assert not can_transition(status, CaseStatus.WITHDRAWN)
        assert not can_transition(status, CaseStatus.CANCELLED)


def test_every_state_has_a_fhir_task_status_from_the_standard_value_set():
    standard = {"draft", "requested", "received", "accepted", "rejected", "ready", "cancelled", "in-progress",
                "on-hold", "failed", "completed", "entered-in-error"}
    assert set(FHIR_TASK_STATUS) == set(CaseStatus)
    assert set(FHIR_TASK_STATUS.values()) <= standard
    assert FHIR_TASK_STATUS[CaseStatus.AWAITING_INFORMATION] == "on-hold"
    assert FHIR_TASK_STATUS[CaseStatus.IN_REVIEW] == "in-progress"


def test_the_progress_display_shows_triage_and_awaiting_information_in_place_of_their_step():
    steps = ["Submitted", "Assigned", "In review", "Opinion signed", "Letter delivered", "Acknowledged", "Closed"]
    assert progress("assigned") == [(label, label == "Assigned") for label in steps]
    assert progress("triage")[0] == ("Triage", True)
    assert progress("awaiting_information")[2] == ("Awaiting information", True)
    assert not any(current for _, current in progress("cancelled"))


@pytest.mark.parametrize("status", sorted(TERMINAL_STATUSES))
def test_ending_sets_closed_at(status):
    case = FakeCase(CaseStatus.ACKNOWLEDGED if status == CaseStatus.CLOSED else CaseStatus.IN_REVIEW)
    transition(case, status, NOW)
    assert case.closed_at == NOW
