"""Who may see or do what to a case. Used by loaders, views and templates alike."""
from __future__ import annotations

from review_portal.auth.models import Role
from review_portal.cases.lifecycle import CaseStatus


def is_staff(user) -> bool:
    return user.role in (Role.COORDINATOR, Role.ADMIN)


def is_current_reviewer(user, case) -> bool:
    assignment = case.active_assignment
    return user.role == Role.REVIEWER and assignment is not None and assignment.reviewer_id == user.id


def can_view_case(user, case) -> bool:
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    if is_staff(user):
        return staff_may_view(user, case)
    if user.role == Role.REFERRING:
        return case.referring_id == user.id
    if user.role == Role.REVIEWER:
        return is_current_reviewer(user, case)
    return False


def staff_may_view(user, case) -> bool:
    """The working queue (open and recently closed cases), or an archived case under emergency access."""
    from review_portal.audit import emergency
    from review_portal.clock import utcnow

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
    return is_current_reviewer(user, case) and case.status in (CaseStatus.ASSIGNED, CaseStatus.IN_REVIEW)


def can_reassign(user, case) -> bool:
    return is_staff(user) and case.status in (CaseStatus.SUBMITTED, CaseStatus.ASSIGNED, CaseStatus.IN_REVIEW)


def can_withdraw(user, case) -> bool:
    allowed = is_staff(user) or (user.role == Role.REFERRING and case.referring_id == user.id)
    return allowed and case.status in (CaseStatus.SUBMITTED, CaseStatus.ASSIGNED, CaseStatus.IN_REVIEW)


def can_acknowledge(user, case) -> bool:
    return user.role == Role.REFERRING and case.referring_id == user.id and case.status == CaseStatus.LETTER_DELIVERED


def can_view_audit(user, case) -> bool:
    return is_staff(user)
