"""The case lifecycle: one explicit state machine, the only place a case's status changes.

    submitted → triage (nobody eligible) → assigned (offered) → in review ⇄ awaiting information
              → opinion signed → letter delivered → acknowledged → closed
    withdrawn (by the referring physician) and cancelled (by a coordinator) from any open state.

Each state maps onto a FHIR Task.status (the review is a Task: requester = referring physician,
owner = reviewer); the case stores both, and the portal's own state is the Task's businessStatus.
Every transition writes an audit row saying who moved the case, when, from where to where, and why.
"""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from review_portal.audit.services import record
from review_portal.errors import IllegalTransition


class CaseStatus(StrEnum):
    SUBMITTED = "submitted"
    TRIAGE = "triage"
    ASSIGNED = "assigned"
    IN_REVIEW = "in_review"
    AWAITING_INFORMATION = "awaiting_information"
    OPINION_SIGNED = "opinion_signed"
    LETTER_DELIVERED = "letter_delivered"
    ACKNOWLEDGED = "acknowledged"
    CLOSED = "closed"
    WITHDRAWN = "withdrawn"
    CANCELLED = "cancelled"


STATUS_LABELS = {
    CaseStatus.SUBMITTED: "Submitted",
    CaseStatus.TRIAGE: "Triage",
    CaseStatus.ASSIGNED: "Assigned (offered)",
    CaseStatus.IN_REVIEW: "In review",
    CaseStatus.AWAITING_INFORMATION: "Awaiting information",
    CaseStatus.OPINION_SIGNED: "Opinion signed",
    CaseStatus.LETTER_DELIVERED: "Letter delivered",
    CaseStatus.ACKNOWLEDGED: "Acknowledged",
    CaseStatus.CLOSED: "Closed",
    CaseStatus.WITHDRAWN: "Withdrawn",
    CaseStatus.CANCELLED: "Cancelled",
}

# FHIR R4/R5 Task.status for each of our states. "received": a potential performer (the offered
# reviewer, or the coordinator in triage) holds the task and is deciding; "rejected" is used on the
# individual offer that a reviewer declines (see assignment.models), never for the whole case.
FHIR_TASK_STATUS = {
    CaseStatus.SUBMITTED: "requested",
    CaseStatus.TRIAGE: "received",
    CaseStatus.ASSIGNED: "received",
    CaseStatus.IN_REVIEW: "in-progress",
    CaseStatus.AWAITING_INFORMATION: "on-hold",
    CaseStatus.OPINION_SIGNED: "completed",
    CaseStatus.LETTER_DELIVERED: "completed",
    CaseStatus.ACKNOWLEDGED: "completed",
    CaseStatus.CLOSED: "completed",
    CaseStatus.WITHDRAWN: "cancelled",
    CaseStatus.CANCELLED: "cancelled",
}

# The main path, in order, for progress displays.
MAIN_PATH = (CaseStatus.SUBMITTED, CaseStatus.ASSIGNED, CaseStatus.IN_REVIEW, CaseStatus.OPINION_SIGNED,
             CaseStatus.LETTER_DELIVERED, CaseStatus.ACKNOWLEDGED, CaseStatus.CLOSED)

# In the progress display a state off the main path shows in place of the step it belongs to.
_PROGRESS_STANDINS = {CaseStatus.TRIAGE: CaseStatus.SUBMITTED, CaseStatus.AWAITING_INFORMATION: CaseStatus.IN_REVIEW}
_PROGRESS_LABELS = {**STATUS_LABELS, CaseStatus.ASSIGNED: "Assigned"}


def progress(status: str) -> list[tuple[str, bool]]:
    """The main path as (label, is the current step) for the case page; withdrawn and cancelled mark no step."""
    current = CaseStatus(status)
    step_now = _PROGRESS_STANDINS.get(current, current)
    return [(_PROGRESS_LABELS[current if step == step_now else step], step == step_now) for step in MAIN_PATH]


# Cases a reviewer still has work on: load balancing, deadlines, withdrawal and cancellation.
OPEN_STATUSES = frozenset({CaseStatus.SUBMITTED, CaseStatus.TRIAGE, CaseStatus.ASSIGNED, CaseStatus.IN_REVIEW,
                           CaseStatus.AWAITING_INFORMATION})
# After the letter: follow-up questions may still be asked and answered.
LETTER_OUT_STATUSES = frozenset({CaseStatus.LETTER_DELIVERED, CaseStatus.ACKNOWLEDGED})
TERMINAL_STATUSES = frozenset({CaseStatus.CLOSED, CaseStatus.WITHDRAWN, CaseStatus.CANCELLED})

_ENDINGS = frozenset({CaseStatus.WITHDRAWN, CaseStatus.CANCELLED})

TRANSITIONS: dict[CaseStatus, frozenset[CaseStatus]] = {
    CaseStatus.SUBMITTED: frozenset({CaseStatus.TRIAGE, CaseStatus.ASSIGNED}) | _ENDINGS,
    CaseStatus.TRIAGE: frozenset({CaseStatus.ASSIGNED}) | _ENDINGS,
    # assigned → assigned: offered to the next reviewer after a decline or a coordinator's reassignment.
    CaseStatus.ASSIGNED: frozenset({CaseStatus.ASSIGNED, CaseStatus.TRIAGE, CaseStatus.IN_REVIEW}) | _ENDINGS,
    # in review → assigned: the coordinator hands the review to somebody else, who must accept it.
    CaseStatus.IN_REVIEW: frozenset({CaseStatus.ASSIGNED, CaseStatus.AWAITING_INFORMATION,
                                     CaseStatus.OPINION_SIGNED}) | _ENDINGS,
    CaseStatus.AWAITING_INFORMATION: frozenset({CaseStatus.IN_REVIEW}) | _ENDINGS,
    CaseStatus.OPINION_SIGNED: frozenset({CaseStatus.LETTER_DELIVERED}),
    # letter delivered → letter delivered / acknowledged → letter delivered: a new letter version
    # (an addendum answering a follow-up question) is delivered and awaits acknowledgement again.
    CaseStatus.LETTER_DELIVERED: frozenset({CaseStatus.LETTER_DELIVERED, CaseStatus.ACKNOWLEDGED, CaseStatus.CLOSED}),
    CaseStatus.ACKNOWLEDGED: frozenset({CaseStatus.LETTER_DELIVERED, CaseStatus.CLOSED}),
    CaseStatus.CLOSED: frozenset(),
    CaseStatus.WITHDRAWN: frozenset(),
    CaseStatus.CANCELLED: frozenset(),
}


def can_transition(current: str, target: str) -> bool:
    return CaseStatus(target) in TRANSITIONS[CaseStatus(current)]


def fhir_status(status: str) -> str:
    return FHIR_TASK_STATUS[CaseStatus(status)]


def _letter_blockers(case) -> list[str]:
    """Contributing reviews (e.g. a radiology re-read) the letter still waits for."""
    if getattr(case, "letter_released_at", None) is not None:
        return []
    return [f"{r.review_type_label.lower()} ({r.reviewer.name if r.reviewer else 'no reviewer yet'})"
            for r in getattr(case, "reviews", ()) if not r.is_lead and r.is_open]


def transition(case, target: CaseStatus, now: datetime, *, by=None, ip: str = "", why: str = "") -> None:
    """Move `case` to `target`, or raise IllegalTransition with a message a clinician understands.

    Writes the audit row (who, when, from → to, FHIR status, why) into the case's own session,
    so callers cannot forget it. `by` is None only for the portal acting by itself.
    """
    current = CaseStatus(case.status)
    target = CaseStatus(target)
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(
            f"Case {case.reference} is {STATUS_LABELS[current].lower()}; "
            f"it cannot be moved to {STATUS_LABELS[target].lower()}."
        )
    if target == CaseStatus.OPINION_SIGNED:
        waiting = _letter_blockers(case)
        if waiting:
            raise IllegalTransition(
                f"Case {case.reference} still waits for: {', '.join(waiting)}. The opinion can be signed once "
                "those reviews are complete, or when a coordinator releases the letter."
            )
    case.status = target.value
    case.fhir_status = FHIR_TASK_STATUS[target]
    case.updated_at = now
    if target in TERMINAL_STATUSES:
        case.closed_at = now
    _sync_reviews(case, target, now)
    _audit(case, current, target, now, by=by, ip=ip, why=why)


def _sync_reviews(case, target: CaseStatus, now: datetime) -> None:
    """Keep each review's own Task status in step with the case where the case decides for them."""
    for review in getattr(case, "reviews", ()):
        if target == CaseStatus.OPINION_SIGNED and review.is_lead and review.is_open:
            review.complete(now)
        elif target in _ENDINGS and review.is_open:
            review.cancel(now)


def _audit(case, current: CaseStatus, target: CaseStatus, now: datetime, *, by, ip: str, why: str) -> None:
    from sqlalchemy.orm import object_session
    from sqlalchemy.orm.exc import UnmappedInstanceError


    try:
        db = object_session(case)
    except UnmappedInstanceError:  # a plain object in a unit test of the table itself
        return
    if db is None:
        return
    detail = f"{current.value} → {target.value} (FHIR {FHIR_TASK_STATUS[target]})"
    if why:
        detail += f"; {why}"
    record(db, action="case.status_changed", by=by, ip=ip, now=now, case=case, object_type="case",
           object_id=case.id, detail=detail)
