"""The two state machines under a case: each review, and each offer (assignment) of a review to a reviewer.

    Review:      triage ⇄ offered → in review → completed
                 (in review → offered: a coordinator hands it to somebody else), cancelled from any open state.
    Assignment:  offered → accepted → completed
                 offered → declined;  offered / accepted → ended (reassigned elsewhere, or the case ended).

A review is created in triage and an assignment is created offered (a new row, not a move). Every later
change of status goes through `transition_review` / `transition_assignment`: the move is checked against the
table (IllegalTransition with a message a clinician understands otherwise), the FHIR Task status follows,
and the moves that are steps of their own write their audit row here (AUDIT_ACTIONS). The other moves are
parts of a step audited by its owner: ending the previous offer is part of a new offer ("case.assigned"),
completing the lead review and cancelling the reviews are part of the case's move ("case.status_changed");
those callers pass audit=False.
"""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from review_portal.errors import IllegalTransition


class ReviewStatus(StrEnum):
    TRIAGE = "triage"
    OFFERED = "offered"
    IN_REVIEW = "in_review"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


REVIEW_STATUSES = {
    ReviewStatus.TRIAGE: "Needs a reviewer",
    ReviewStatus.OFFERED: "Offered",
    ReviewStatus.IN_REVIEW: "In review",
    ReviewStatus.COMPLETED: "Completed",
    ReviewStatus.CANCELLED: "Cancelled",
}
REVIEW_FHIR_STATUS = {
    ReviewStatus.TRIAGE: "received",
    ReviewStatus.OFFERED: "requested",
    ReviewStatus.IN_REVIEW: "in-progress",
    ReviewStatus.COMPLETED: "completed",
    ReviewStatus.CANCELLED: "cancelled",
}
OPEN_REVIEW_STATUSES = frozenset({ReviewStatus.TRIAGE, ReviewStatus.OFFERED, ReviewStatus.IN_REVIEW})

REVIEW_TRANSITIONS: dict[ReviewStatus, frozenset[ReviewStatus]] = {
    # triage → triage: a new review starts in triage and routing may find nobody for it.
    ReviewStatus.TRIAGE: frozenset({ReviewStatus.TRIAGE, ReviewStatus.OFFERED, ReviewStatus.CANCELLED}),
    # offered → offered: offered to the next reviewer after a decline, or a coordinator reassigns the offer;
    # offered → triage: declined and nobody else is eligible.
    ReviewStatus.OFFERED: frozenset({ReviewStatus.OFFERED, ReviewStatus.TRIAGE, ReviewStatus.IN_REVIEW,
                                     ReviewStatus.CANCELLED}),
    # in review → offered: a coordinator hands the review to somebody else, who must accept it.
    ReviewStatus.IN_REVIEW: frozenset({ReviewStatus.OFFERED, ReviewStatus.COMPLETED, ReviewStatus.CANCELLED}),
    ReviewStatus.COMPLETED: frozenset(),
    ReviewStatus.CANCELLED: frozenset(),
}

# Review moves that are steps of their own, with the audit action they write.
REVIEW_AUDIT_ACTIONS = {
    ReviewStatus.TRIAGE: "case.routing_failed",
    ReviewStatus.COMPLETED: "review.completed",
}

_REVIEW_VERBS = {
    ReviewStatus.TRIAGE: "put in the triage queue",
    ReviewStatus.OFFERED: "offered to a reviewer",
    ReviewStatus.IN_REVIEW: "taken into review",
    ReviewStatus.COMPLETED: "completed",
    ReviewStatus.CANCELLED: "cancelled",
}


class AssignmentStatus(StrEnum):
    OFFERED = "offered"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    COMPLETED = "completed"
    ENDED = "ended"


ASSIGNMENT_STATUSES = {
    AssignmentStatus.OFFERED: "Offered",
    AssignmentStatus.ACCEPTED: "Accepted",
    AssignmentStatus.DECLINED: "Declined",
    AssignmentStatus.COMPLETED: "Completed",
    AssignmentStatus.ENDED: "Ended",
}
ASSIGNMENT_FHIR_STATUS = {
    AssignmentStatus.OFFERED: "requested",
    AssignmentStatus.ACCEPTED: "accepted",
    AssignmentStatus.DECLINED: "rejected",
    AssignmentStatus.COMPLETED: "completed",
    AssignmentStatus.ENDED: "cancelled",
}
# The reviewer still holds the review (and may see the case).
HELD_ASSIGNMENT_STATUSES = frozenset({AssignmentStatus.OFFERED, AssignmentStatus.ACCEPTED, AssignmentStatus.COMPLETED})
# The reviewer has taken the review on (and works, or worked, on it).
TAKEN_ASSIGNMENT_STATUSES = frozenset({AssignmentStatus.ACCEPTED, AssignmentStatus.COMPLETED})
# An offer still standing or being worked on: ended when the review goes to somebody else or is cancelled.
STANDING_ASSIGNMENT_STATUSES = frozenset({AssignmentStatus.OFFERED, AssignmentStatus.ACCEPTED})

ASSIGNMENT_TRANSITIONS: dict[AssignmentStatus, frozenset[AssignmentStatus]] = {
    AssignmentStatus.OFFERED: frozenset({AssignmentStatus.ACCEPTED, AssignmentStatus.DECLINED, AssignmentStatus.ENDED}),
    AssignmentStatus.ACCEPTED: frozenset({AssignmentStatus.COMPLETED, AssignmentStatus.ENDED}),
    AssignmentStatus.DECLINED: frozenset(),
    AssignmentStatus.COMPLETED: frozenset(),
    AssignmentStatus.ENDED: frozenset(),
}

ASSIGNMENT_AUDIT_ACTIONS = {
    AssignmentStatus.ACCEPTED: "assignment.accepted",
    AssignmentStatus.DECLINED: "assignment.declined",
}

_ASSIGNMENT_VERBS = {
    AssignmentStatus.OFFERED: "offered again",
    AssignmentStatus.ACCEPTED: "accepted",
    AssignmentStatus.DECLINED: "declined",
    AssignmentStatus.COMPLETED: "completed",
    AssignmentStatus.ENDED: "ended",
}


def can_transition_review(current: str, target: str) -> bool:
    return ReviewStatus(target) in REVIEW_TRANSITIONS[ReviewStatus(current)]


def can_transition_assignment(current: str, target: str) -> bool:
    return AssignmentStatus(target) in ASSIGNMENT_TRANSITIONS[AssignmentStatus(current)]


def check_review(review, target: ReviewStatus) -> None:
    """Raise IllegalTransition unless the table allows moving `review` to `target`."""
    current, target = ReviewStatus(review.status), ReviewStatus(target)
    if target not in REVIEW_TRANSITIONS[current]:
        what = review.review_type_label.lower() if getattr(review, "review_type", None) else "review"
        case = getattr(review, "case", None)
        of_case = f" of case {case.reference}" if case is not None else ""
        raise IllegalTransition(f"The {what}{of_case} is {REVIEW_STATUSES[current].lower()}; "
                                f"it can no longer be {_REVIEW_VERBS[target]}.")


def check_assignment(assignment, target: AssignmentStatus) -> None:
    """Raise IllegalTransition unless the table allows moving `assignment` to `target`."""
    current, target = AssignmentStatus(assignment.status), AssignmentStatus(target)
    if target not in ASSIGNMENT_TRANSITIONS[current]:
        raise IllegalTransition(f"This offer is {ASSIGNMENT_STATUSES[current].lower()}; "
                                f"it can no longer be {_ASSIGNMENT_VERBS[target]}.")


def transition_review(review, target: ReviewStatus, now: datetime, *, by=None, ip: str = "", detail: str = "",
                      audit: bool = True) -> None:
    """Move `review` to `target` (FHIR status along), writing its audit row if the move is a step of its own."""
    check_review(review, target)
    target = ReviewStatus(target)
    review.status = target.value
    review.fhir_status = REVIEW_FHIR_STATUS[target]
    if target in (ReviewStatus.COMPLETED, ReviewStatus.CANCELLED):
        review.completed_at = now
    if audit and target in REVIEW_AUDIT_ACTIONS:
        from review_portal.audit.moves import record_move

        record_move(review, action=REVIEW_AUDIT_ACTIONS[target], by=by, ip=ip, now=now, case=review.case,
                    object_type="review", detail=detail)


def transition_assignment(assignment, target: AssignmentStatus, now: datetime, *, by=None, ip: str = "",
                          detail: str = "", audit: bool = True) -> None:
    """Move `assignment` to `target`: FHIR status, whether the reviewer still holds the review, when they
    answered or it ended, and the audit row if the move is a step of its own."""
    check_assignment(assignment, target)
    target = AssignmentStatus(target)
    assignment.status = target.value
    assignment.fhir_status = ASSIGNMENT_FHIR_STATUS[target]
    assignment.active = target in HELD_ASSIGNMENT_STATUSES
    if target in (AssignmentStatus.ACCEPTED, AssignmentStatus.DECLINED):
        assignment.responded_at = now
    if target in (AssignmentStatus.DECLINED, AssignmentStatus.ENDED):
        assignment.ended_at = now
    if audit and target in ASSIGNMENT_AUDIT_ACTIONS:
        from review_portal.audit.moves import record_move

        record_move(assignment, action=ASSIGNMENT_AUDIT_ACTIONS[target], by=by, ip=ip, now=now,
                    case=assignment.review.case, object_type="assignment", detail=detail)
