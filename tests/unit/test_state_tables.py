"""Every state machine against its hand-written oracle (tests/state_oracle.py). Pure: no database, no app.

For each machine: every allowed move of the oracle is allowed by the table, every listed forbidden move is
refused, the table allows exactly the oracle's moves (a move added to a table alone fails here), every other
pair is refused, and an illegal move raises IllegalTransition with a message a person can read.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from itertools import product
from types import SimpleNamespace

import pytest

from review_portal import jobs
from review_portal.assignment import lifecycle as assignment_lc
from review_portal.cases import emergency
from review_portal.cases import lifecycle as case_lc
from review_portal.errors import IllegalTransition
from review_portal.imaging import lifecycle as ingest_lc
from review_portal.messaging import lifecycle as request_lc
from review_portal.opinions import lifecycle as opinion_lc
from review_portal.opinions import section_lifecycle as section_lc
from tests import state_oracle as oracle

NOW = datetime(2026, 11, 23, tzinfo=timezone.utc)


def _pairs(table) -> set[tuple[str, str]]:
    return {(str(a), str(b)) for a, targets in table.items() for b in targets}


MACHINES = {
    "case": (case_lc.CaseStatus, case_lc.TRANSITIONS, case_lc.can_transition,
             oracle.CASE_STATES, oracle.CASE_ALLOWED, oracle.CASE_FORBIDDEN),
    "review": (assignment_lc.ReviewStatus, assignment_lc.REVIEW_TRANSITIONS, assignment_lc.can_transition_review,
               oracle.REVIEW_STATES, oracle.REVIEW_ALLOWED, oracle.REVIEW_FORBIDDEN),
    "assignment": (assignment_lc.AssignmentStatus, assignment_lc.ASSIGNMENT_TRANSITIONS,
                   assignment_lc.can_transition_assignment,
                   oracle.ASSIGNMENT_STATES, oracle.ASSIGNMENT_ALLOWED, oracle.ASSIGNMENT_FORBIDDEN),
    "opinion": (opinion_lc.OpinionStatus, opinion_lc.TRANSITIONS, opinion_lc.can_transition,
                oracle.OPINION_STATES, oracle.OPINION_ALLOWED, oracle.OPINION_FORBIDDEN),
    "section": (section_lc.SectionStatus, section_lc.SECTION_TRANSITIONS, section_lc.can_transition_section,
                oracle.SECTION_STATES, oracle.SECTION_ALLOWED, oracle.SECTION_FORBIDDEN),
    "information_request": (request_lc.RequestStatus, request_lc.TRANSITIONS, request_lc.can_transition,
                            oracle.REQUEST_STATES, oracle.REQUEST_ALLOWED, oracle.REQUEST_FORBIDDEN),
    "job": (jobs.JobStatus, jobs.JOB_TRANSITIONS, jobs.can_transition,
            oracle.JOB_STATES, oracle.JOB_ALLOWED, oracle.JOB_FORBIDDEN),
    "ingest": (ingest_lc.IngestStatus, ingest_lc.TRANSITIONS, ingest_lc.can_transition,
               oracle.INGEST_STATES, oracle.INGEST_ALLOWED, oracle.INGEST_FORBIDDEN),
}


def _cases(kind: int):
    for name, machine in MACHINES.items():
        for pair in sorted(machine[kind]):
            yield pytest.param(name, pair, id=f"{name}:{pair[0]}->{pair[1]}")


@pytest.mark.parametrize("machine,pair", list(_cases(4)))
def test_every_move_the_oracle_allows_is_allowed(machine, pair):
    can = MACHINES[machine][2]
    assert can(*pair)


@pytest.mark.parametrize("machine,pair", list(_cases(5)))
def test_every_move_the_oracle_forbids_is_refused(machine, pair):
    can = MACHINES[machine][2]
    assert not can(*pair)


@pytest.mark.parametrize("machine", list(MACHINES))
def test_the_table_allows_exactly_the_oracles_moves(machine):
    states, table, can, oracle_states, allowed, forbidden = MACHINES[machine][:6]
    # The oracle is consistent with itself and names the machine's states, stored values and all.
    assert {s.value for s in states} == set(oracle_states)
    assert not allowed & set(forbidden)
    assert {s for pair in allowed | set(forbidden) for s in pair} <= set(oracle_states)
    # Every state has a row; the table's moves are the oracle's, no more, no fewer.
    assert set(table) == set(states)
    assert _pairs(table) == allowed, (
        f"in the table, not the oracle: {sorted(_pairs(table) - allowed)}; "
        f"in the oracle, not the table: {sorted(allowed - _pairs(table))}")
    # And every pair outside the oracle's allowed set is refused by can_transition.
    for pair in product(oracle_states, repeat=2):
        assert can(*pair) == (pair in allowed), pair


def test_terminal_states_have_no_way_out():
    assert {s.value for s in case_lc.TERMINAL_STATUSES} == {"closed", "withdrawn", "cancelled"}
    for name, (states, table, *_rest) in MACHINES.items():
        finished = {s for s in states if not table[s]}
        assert finished, f"{name} has no final state"
    assert {s.value for s in assignment_lc.OPEN_REVIEW_STATUSES} == {"triage", "offered", "in_review"}
    assert {s.value for s in assignment_lc.HELD_ASSIGNMENT_STATUSES} == {"offered", "accepted", "completed"}


# -- illegal moves raise IllegalTransition with a readable message -----------------------------------------

def _readable(message: str, *words: str) -> None:
    assert "Status." not in message and "<" not in message, message  # no enum reprs
    for word in words:
        assert word in message, (word, message)


def test_an_illegal_case_move_names_the_case_and_both_states():
    case = SimpleNamespace(reference="SO-TEST", status="closed", reviews=[])
    with pytest.raises(IllegalTransition) as err:
        case_lc.transition(case, case_lc.CaseStatus.IN_REVIEW, NOW)
    assert err.value.status_code == 409 and case.status == "closed"
    _readable(err.value.message, "SO-TEST", "closed", "in review")


def _review(status: str):
    return SimpleNamespace(status=status, fhir_status="", completed_at=None, review_type="oncology",
                           review_type_label="Oncology opinion", case=SimpleNamespace(reference="SO-TEST"))


def test_an_illegal_review_move_is_refused_and_a_legal_one_keeps_fhir_in_step():
    review = _review("completed")
    with pytest.raises(IllegalTransition) as err:
        assignment_lc.transition_review(review, assignment_lc.ReviewStatus.OFFERED, NOW)
    assert review.status == "completed"
    _readable(err.value.message, "oncology opinion", "SO-TEST", "completed", "offered")

    review = _review("in_review")
    assignment_lc.transition_review(review, assignment_lc.ReviewStatus.COMPLETED, NOW)
    assert (review.status, review.fhir_status, review.completed_at) == ("completed", "completed", NOW)
    assert type(review.status) is str  # the stored value, not the enum


def _assignment(status: str):
    return SimpleNamespace(status=status, fhir_status="", active=True, responded_at=None, ended_at=None,
                           review=SimpleNamespace(case=SimpleNamespace(reference="SO-TEST")))


def test_an_illegal_assignment_move_is_refused_with_the_offers_state():
    assignment = _assignment("declined")
    with pytest.raises(IllegalTransition) as err:
        assignment_lc.transition_assignment(assignment, assignment_lc.AssignmentStatus.ACCEPTED, NOW)
    assert assignment.status == "declined"
    assert err.value.message == "This offer is declined; it can no longer be accepted."

    assignment = _assignment("offered")
    assignment_lc.transition_assignment(assignment, assignment_lc.AssignmentStatus.DECLINED, NOW)
    assert (assignment.status, assignment.fhir_status, assignment.active) == ("declined", "rejected", False)
    assert assignment.responded_at == assignment.ended_at == NOW


def test_a_signed_opinion_cannot_be_signed_or_reopened():
    for target in opinion_lc.OpinionStatus:
        opinion = SimpleNamespace(status="signed", updated_at=None, case=None)
        with pytest.raises(IllegalTransition) as err:
            opinion_lc.transition(opinion, target, NOW)
        assert opinion.status == "signed"
        _readable(err.value.message, "already signed", "addendum")
    draft = SimpleNamespace(status="draft", updated_at=None, case=None)
    opinion_lc.transition(draft, opinion_lc.OpinionStatus.SIGNED, NOW)
    assert (draft.status, draft.updated_at) == ("signed", NOW)


def test_a_signed_section_cannot_be_waived_or_reopened():
    section = SimpleNamespace(status="signed", updated_at=None)
    with pytest.raises(IllegalTransition) as err:
        section_lc.transition_section(section, section_lc.SectionStatus.WAIVED, NOW)
    assert "section addendum" in err.value.message and section.status == "signed"
    waived = SimpleNamespace(status="waived", updated_at=None)
    with pytest.raises(IllegalTransition, match="waived; it can no longer be signed"):
        section_lc.transition_section(waived, section_lc.SectionStatus.SIGNED, NOW)


def test_an_answered_request_cannot_be_answered_again():
    request = SimpleNamespace(status="answered")
    with pytest.raises(IllegalTransition) as err:
        request_lc.transition(request, request_lc.RequestStatus.ANSWERED, NOW)
    assert request.status == "answered"
    _readable(err.value.message, "request for information", "answered")


def test_a_finished_job_cannot_be_requeued():
    job = SimpleNamespace(id=7, name="letters.issue", status="done")
    with pytest.raises(IllegalTransition) as err:
        jobs.set_status(job, jobs.JobStatus.QUEUED)
    assert job.status == "done"
    _readable(err.value.message, "7", "letters.issue", "done", "waiting")
    job.status = "running"
    jobs.set_status(job, jobs.JobStatus.QUEUED)
    assert job.status == "queued" and type(job.status) is str


def test_a_finished_upload_cannot_run_again():
    job = SimpleNamespace(id=3, status="done")
    with pytest.raises(IllegalTransition) as err:
        ingest_lc.set_status(job, ingest_lc.IngestStatus.RUNNING)
    assert job.status == "done"
    _readable(err.value.message, "Upload 3", "finished", "reading the scans")


# -- decisions taken from the table --------------------------------------------------------------------------

@pytest.mark.parametrize("status", ["closed", "withdrawn", "cancelled"])
def test_every_ended_case_leaves_the_staff_working_queue_after_the_archive_period(status):
    """Cancelled used to be forgotten: a cancelled case stayed in the working queue for ever."""
    long_ago = SimpleNamespace(status=status, closed_at=NOW - emergency.DEFAULT_ARCHIVE_AFTER - timedelta(days=1))
    recent = SimpleNamespace(status=status, closed_at=NOW - timedelta(days=1))
    assert not emergency.in_staff_scope(long_ago, NOW)
    assert emergency.in_staff_scope(recent, NOW)


def test_open_cases_stay_in_the_staff_working_queue():
    case = SimpleNamespace(status="in_review", closed_at=None)
    assert emergency.in_staff_scope(case, NOW + timedelta(days=400))
