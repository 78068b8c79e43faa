"""The case lifecycle: one explicit state machine.

submitted → assigned → in review → opinion signed → letter delivered → closed,
and withdrawn from any state before the opinion is signed. Reassignment moves an
assigned or in-review case back to assigned (to the new reviewer).
"""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from review_portal.errors import IllegalTransition


class CaseStatus(StrEnum):
    SUBMITTED = "submitted"
    ASSIGNED = "assigned"
    IN_REVIEW = "in_review"
    OPINION_SIGNED = "opinion_signed"
    LETTER_DELIVERED = "letter_delivered"
    CLOSED = "closed"
    WITHDRAWN = "withdrawn"


STATUS_LABELS = {
    CaseStatus.SUBMITTED: "Submitted",
    CaseStatus.ASSIGNED: "Assigned",
    CaseStatus.IN_REVIEW: "In review",
    CaseStatus.OPINION_SIGNED: "Opinion signed",
    CaseStatus.LETTER_DELIVERED: "Letter delivered",
    CaseStatus.CLOSED: "Closed",
    CaseStatus.WITHDRAWN: "Withdrawn",
}

TRANSITIONS: dict[CaseStatus, frozenset[CaseStatus]] = {
    CaseStatus.SUBMITTED: frozenset({CaseStatus.ASSIGNED, CaseStatus.WITHDRAWN}),
    CaseStatus.ASSIGNED: frozenset({CaseStatus.ASSIGNED, CaseStatus.IN_REVIEW, CaseStatus.WITHDRAWN}),
    CaseStatus.IN_REVIEW: frozenset({CaseStatus.ASSIGNED, CaseStatus.OPINION_SIGNED, CaseStatus.WITHDRAWN}),
    CaseStatus.OPINION_SIGNED: frozenset({CaseStatus.LETTER_DELIVERED}),
    CaseStatus.LETTER_DELIVERED: frozenset({CaseStatus.CLOSED}),
    CaseStatus.CLOSED: frozenset(),
    CaseStatus.WITHDRAWN: frozenset(),
}

# Cases a reviewer still has work on; used for load balancing and worklists.
OPEN_STATUSES = frozenset({CaseStatus.SUBMITTED, CaseStatus.ASSIGNED, CaseStatus.IN_REVIEW})


def can_transition(current: str, target: str) -> bool:
    return CaseStatus(target) in TRANSITIONS[CaseStatus(current)]


def transition(case, target: CaseStatus, now: datetime) -> None:
    """Move `case` to `target` or raise IllegalTransition with a message a clinician understands."""
    current = CaseStatus(case.status)
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(
            f"Case {case.reference} is {STATUS_LABELS[current].lower()}; "
            f"it cannot be moved to {STATUS_LABELS[target].lower()}."
        )
    case.status = target.value
    case.updated_at = now
    if target in (CaseStatus.CLOSED, CaseStatus.WITHDRAWN):
        case.closed_at = now
