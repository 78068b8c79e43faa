"""The state machine of a patient-identity mismatch (IdentityMismatch.status).

    open → same_patient   (the referrer or a coordinator confirms it is this patient, with a reason)
    open → wrong_study    (it is another patient's study: removed from the case and purged)

Both ends are final: a confirmed study is not re-opened, a removed one is gone. A second resolution of the
same mismatch (two people acting at once, a form sent twice) is an IllegalTransition, answered 409.
"""
from __future__ import annotations

from enum import StrEnum

from review_portal.errors import IllegalTransition


class MismatchStatus(StrEnum):
    OPEN = "open"
    SAME_PATIENT = "same_patient"
    WRONG_STUDY = "wrong_study"


STATUS_LABELS = {
    MismatchStatus.OPEN: "Not yet resolved",
    MismatchStatus.SAME_PATIENT: "Confirmed same patient",
    MismatchStatus.WRONG_STUDY: "Wrong study, removed",
}

TRANSITIONS: dict[MismatchStatus, frozenset[MismatchStatus]] = {
    MismatchStatus.OPEN: frozenset({MismatchStatus.SAME_PATIENT, MismatchStatus.WRONG_STUDY}),
    MismatchStatus.SAME_PATIENT: frozenset(),
    MismatchStatus.WRONG_STUDY: frozenset(),
}


def can_transition(current: str, target: str) -> bool:
    return MismatchStatus(target) in TRANSITIONS[MismatchStatus(current)]


def set_status(mismatch, target: MismatchStatus) -> None:
    current, target = MismatchStatus(mismatch.status), MismatchStatus(target)
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(f"This identity question is already resolved ({STATUS_LABELS[current].lower()}); "
                                f"it cannot be marked {STATUS_LABELS[target].lower()}.")
    mismatch.status = target.value
