"""The opinion's state machine: a draft the reviewer edits, then signed (frozen; changes are addenda).

    draft → signed

The opinion is created as a draft (a new row, not a move). Signing goes through `transition`: the move is
checked against the table (IllegalTransition with a message a clinician understands otherwise) and the
audit row ("opinion.signed") is written here, so the guard and the record cannot drift apart.
"""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from review_portal.errors import IllegalTransition


class OpinionStatus(StrEnum):
    DRAFT = "draft"
    SIGNED = "signed"


STATUS_LABELS = {
    OpinionStatus.DRAFT: "Draft",
    OpinionStatus.SIGNED: "Signed",
}

TRANSITIONS: dict[OpinionStatus, frozenset[OpinionStatus]] = {
    OpinionStatus.DRAFT: frozenset({OpinionStatus.SIGNED}),
    # A signed opinion is never edited or unsigned: corrections are signed addenda.
    OpinionStatus.SIGNED: frozenset(),
}

AUDIT_ACTIONS = {OpinionStatus.SIGNED: "opinion.signed"}


def can_transition(current: str, target: str) -> bool:
    return OpinionStatus(target) in TRANSITIONS[OpinionStatus(current)]


def transition(opinion, target: OpinionStatus, now: datetime, *, by=None, ip: str = "", case=None,
               detail: str = "") -> None:
    """Move `opinion` to `target` and write the move's audit row (who, when, `detail`)."""
    current, target = OpinionStatus(opinion.status), OpinionStatus(target)
    if target not in TRANSITIONS[current]:
        if current == OpinionStatus.SIGNED:
            raise IllegalTransition("This opinion is already signed; it can no longer be changed. Add an addendum instead.")
        raise IllegalTransition(f"This opinion is {STATUS_LABELS[current].lower()}; "
                                f"it cannot be made {STATUS_LABELS[target].lower()}.")
    opinion.status = target.value
    opinion.updated_at = now
    if target in AUDIT_ACTIONS:
        from review_portal.audit.moves import record_move

        record_move(opinion, action=AUDIT_ACTIONS[target], by=by, ip=ip, now=now,
                    case=case if case is not None else opinion.case, object_type="opinion", detail=detail)
