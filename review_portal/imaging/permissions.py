"""Who may add scans to a case and mark key images. Plain functions, used by services and templates."""
from __future__ import annotations

from review_portal.auth.models import Role
from review_portal.cases.lifecycle import CaseStatus
from review_portal.cases.permissions import can_file_opinion, can_view_case, is_reviewer_of, is_staff

# Scans may still arrive while nobody has signed an opinion on them.
OPEN_STATUSES = (CaseStatus.SUBMITTED, CaseStatus.ASSIGNED, CaseStatus.IN_REVIEW)


def can_add_scans(user, case) -> bool:
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    owner = user.role == Role.REFERRING and case.referring_id == user.id
    return (owner or is_staff(user)) and case.status in OPEN_STATUSES


def can_mark_key_images(user, case) -> bool:
    return user is not None and getattr(user, "is_authenticated", False) and can_file_opinion(user, case)


# The letter is out (or was, for a case closed after it): the referrer sees what the letter shows.
KEY_IMAGES_SHARED_STATUSES = (CaseStatus.LETTER_DELIVERED, CaseStatus.ACKNOWLEDGED, CaseStatus.CLOSED)


def can_see_key_images(user, case) -> bool:
    """Staff and the case's reviewers while they work; the referring physician once the letter is delivered."""
    if not can_view_case(user, case):
        return False
    if is_staff(user) or is_reviewer_of(user, case):
        return True
    return user.role == Role.REFERRING and case.referring_id == user.id and case.status in KEY_IMAGES_SHARED_STATUSES


def key_images_on_case_page(user, case) -> bool:
    """The case page lists the key images once the letter is out (for everyone who may see them)."""
    return case.status in KEY_IMAGES_SHARED_STATUSES and can_see_key_images(user, case)
