"""Who may add scans to a case and mark key images. Plain functions, used by services and templates."""
from __future__ import annotations

from review_portal.auth.models import Role
from review_portal.cases.lifecycle import CaseStatus
from review_portal.cases.permissions import can_file_opinion, is_staff

# Scans may still arrive while nobody has signed an opinion on them.
OPEN_STATUSES = (CaseStatus.SUBMITTED, CaseStatus.ASSIGNED, CaseStatus.IN_REVIEW)


def can_add_scans(user, case) -> bool:
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    owner = user.role == Role.REFERRING and case.referring_id == user.id
    return (owner or is_staff(user)) and case.status in OPEN_STATUSES


def can_mark_key_images(user, case) -> bool:
    return user is not None and getattr(user, "is_authenticated", False) and can_file_opinion(user, case)
