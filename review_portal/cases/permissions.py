"""Who may see or do what to a case. Used by loaders, views and templates alike."""
from __future__ import annotations

from review_portal.auth.models import Role
from review_portal.auth.permissions import is_staff  # noqa: F401  (re-exported: case rules use it)
from review_portal.cases import emergency
from review_portal.cases.lifecycle import LETTER_OUT_STATUSES, OPEN_STATUSES, CaseStatus
from review_portal.clock import utcnow


def _held_assignments(user, case):
    if user.role != Role.REVIEWER:
        return []
    return [a for a in case.assignments if a.reviewer_id == user.id and a.active]


def is_current_reviewer(user, case) -> bool:
    """The reviewer who holds the case's lead review (offered, accepted or completed)."""
    assignment = case.active_assignment
    return user.role == Role.REVIEWER and assignment is not None and assignment.reviewer_id == user.id


def is_lead_reviewer_at_work(user, case) -> bool:
    """Holds the lead review and has accepted it."""
    assignment = case.active_assignment
    return (user.role == Role.REVIEWER and assignment is not None and assignment.reviewer_id == user.id
            and assignment.is_taken)


def is_reviewer_of(user, case) -> bool:
    """Holds any review of the case (lead or contributing), offered or accepted."""
    return bool(_held_assignments(user, case))


def has_accepted_review(user, case) -> bool:
    return any(a.is_taken for a in _held_assignments(user, case))


def can_view_case(user, case) -> bool:
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    if is_staff(user):
        return staff_may_view(user, case)
    if user.role == Role.REFERRING:
        return case.referring_id == user.id
    if user.role == Role.REVIEWER:
        # An offered reviewer sees the case to decide whether to accept (conflicts, expertise).
        return is_reviewer_of(user, case)
    return False


def staff_may_view(user, case) -> bool:
    """The working queue (open and recently closed cases), or an archived case under emergency access."""

    now = utcnow()
    if emergency.in_staff_scope(case, now):
        return True
    grant = emergency.active_grant(user, case, now)
    if grant is None:
        return False
    emergency.note_in_request(grant)
    return True


def can_submit_referral(user) -> bool:
    return user.role == Role.REFERRING


def can_file_opinion(user, case) -> bool:
    # Drafting may go on while the case waits for information; signing then is refused by the lifecycle.
    return is_lead_reviewer_at_work(user, case) and case.status in (CaseStatus.IN_REVIEW, CaseStatus.AWAITING_INFORMATION)


def can_reassign(user, case) -> bool:
    return is_staff(user) and case.status in (CaseStatus.SUBMITTED, CaseStatus.TRIAGE, CaseStatus.ASSIGNED,
                                              CaseStatus.IN_REVIEW)


def can_add_review(user, case) -> bool:
    return is_staff(user) and case.status in (CaseStatus.TRIAGE, CaseStatus.ASSIGNED, CaseStatus.IN_REVIEW,
                                              CaseStatus.AWAITING_INFORMATION)


def can_release_letter(user, case) -> bool:
    return (is_staff(user) and case.status in OPEN_STATUSES and case.letter_released_at is None
            and any(not r.is_lead and r.is_open for r in case.reviews))


def can_withdraw(user, case) -> bool:
    """The referring physician withdraws their referral (a coordinator may do it on their behalf)."""
    allowed = is_staff(user) or (user.role == Role.REFERRING and case.referring_id == user.id)
    return allowed and case.status in OPEN_STATUSES


def can_cancel(user, case) -> bool:
    """The service cancels a case it cannot or should not answer (duplicate, out of scope)."""
    return is_staff(user) and case.status in OPEN_STATUSES


def can_close(user, case) -> bool:
    if case.status == CaseStatus.ACKNOWLEDGED:
        return is_staff(user) or (user.role == Role.REFERRING and case.referring_id == user.id)
    # Closing without an acknowledgement is a coordinator's call (the referrer never confirmed receipt).
    return case.status == CaseStatus.LETTER_DELIVERED and is_staff(user)


def can_acknowledge(user, case) -> bool:
    return user.role == Role.REFERRING and case.referring_id == user.id and case.status == CaseStatus.LETTER_DELIVERED


def can_resend_letter(user, case) -> bool:
    # Re-notifying the referrer is the coordinators' chase; the letter itself is already in their portal.
    return is_staff(user) and case.status == CaseStatus.LETTER_DELIVERED


def can_view_audit(user, case) -> bool:
    return is_staff(user)


def letter_is_out(case) -> bool:
    return case.status in LETTER_OUT_STATUSES
