"""The state machine of a request for more information (a FHIR CommunicationRequest).

    open → answered       (the referrer answered; the case resumes)
    open → cancelled      (declared by the model for a request that will not be answered; no step makes
                           this move yet: a request left open on a withdrawn case simply stays open)

A request is created open (a new row, not a move). Answering goes through `transition`: the move is checked
against the table (IllegalTransition with a message a clinician understands otherwise) and the audit row
("information.answered") is written here.
"""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from review_portal.errors import IllegalTransition


class RequestStatus(StrEnum):
    OPEN = "open"
    ANSWERED = "answered"
    CANCELLED = "cancelled"


STATUS_LABELS = {
    RequestStatus.OPEN: "Open",
    RequestStatus.ANSWERED: "Answered",
    RequestStatus.CANCELLED: "Cancelled",
}

TRANSITIONS: dict[RequestStatus, frozenset[RequestStatus]] = {
    RequestStatus.OPEN: frozenset({RequestStatus.ANSWERED, RequestStatus.CANCELLED}),
    RequestStatus.ANSWERED: frozenset(),
    RequestStatus.CANCELLED: frozenset(),
}

AUDIT_ACTIONS = {RequestStatus.ANSWERED: "information.answered"}


def can_transition(current: str, target: str) -> bool:
    return RequestStatus(target) in TRANSITIONS[RequestStatus(current)]


def transition(request, target: RequestStatus, now: datetime, *, by=None, ip: str = "", case=None,
               detail: str = "") -> None:
    """Move `request` to `target` and write the move's audit row (who, when, `detail`) on `case`."""
    current, target = RequestStatus(request.status), RequestStatus(target)
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(f"This request for information is {STATUS_LABELS[current].lower()}; "
                                f"it can no longer be {STATUS_LABELS[target].lower()}.")
    request.status = target.value
    if target in AUDIT_ACTIONS:
        from review_portal.audit.moves import record_move

        record_move(request, action=AUDIT_ACTIONS[target], by=by, ip=ip, now=now, case=case,
                    object_type="information_request", detail=detail)
