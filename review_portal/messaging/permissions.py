"""Who may take part in a case's conversation."""
from __future__ import annotations

from review_portal.auth.models import Role
from review_portal.cases.lifecycle import LETTER_OUT_STATUSES, TERMINAL_STATUSES, CaseStatus
from review_portal.cases.permissions import can_view_case, has_accepted_review, is_staff


def can_post_message(user, case) -> bool:
    return can_view_case(user, case) and case.status not in TERMINAL_STATUSES


def can_request_information(user, case) -> bool:
    return case.status == CaseStatus.IN_REVIEW and (has_accepted_review(user, case) or is_staff(user))


def can_answer_information(user, case) -> bool:
    return case.status == CaseStatus.AWAITING_INFORMATION and (
        (user.role == Role.REFERRING and case.referring_id == user.id) or is_staff(user))


def can_ask_follow_up(user, case) -> bool:
    return user.role == Role.REFERRING and case.referring_id == user.id and case.status in LETTER_OUT_STATUSES


def can_answer_follow_up(user, case) -> bool:
    """The reviewer who signed the opinion answers questions about it."""
    reviewer = case.reviewer
    return (user.role == Role.REVIEWER and reviewer is not None and reviewer.id == user.id
            and case.status in LETTER_OUT_STATUSES | {CaseStatus.CLOSED})
