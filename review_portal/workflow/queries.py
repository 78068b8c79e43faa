"""The lists and pages that gather a case with its reviews and assignments (what each user may see)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, joinedload, selectinload

from review_portal.assignment.models import Assignment, Review
from review_portal.audit.services import record_list_view
from review_portal.auth.models import Role, User
from review_portal.cases.lifecycle import OPEN_STATUSES
from review_portal.cases.models import Case


def case_page_load():
    """Loader options for the case page: everything it shows about the case itself, a few statements in all."""

    return (joinedload(Case.referring).joinedload(User.institution), selectinload(Case.assignments),
            selectinload(Case.history), selectinload(Case.documents),
            selectinload(Case.reviews).selectinload(Review.assignments).selectinload(Assignment.reviewer))


def cases_visible_to(user: User, *, status: str | None = None) -> Select:
    """The list query for a user's home page: own referrals, own worklist, or everything."""
    query = select(Case)
    if user.role == Role.REFERRING:
        query = query.where(Case.referring_id == user.id)
    elif user.role == Role.REVIEWER:
        held = select(Assignment.case_id).where(Assignment.reviewer_id == user.id, Assignment.active.is_(True))
        query = query.where(Case.id.in_(held))
    elif user.role not in (Role.COORDINATOR, Role.ADMIN):
        query = query.where(False)
    if status:
        query = query.where(Case.status == status)
    return query


def page_of_cases(db: Session, user: User, *, status: str | None, page: int, per_page: int):
    query = cases_visible_to(user, status=status)
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    # Open work first, then by deadline (the worklist order): what must be done next is at the top.
    open_first = (Case.status.in_([s.value for s in OPEN_STATUSES])).desc()
    urgent_first = (Case.priority == "urgent").desc()
    # The worklist shows each case's referrer and lead reviewer and offers one-click accept: load those
    # for the whole page in a few statements rather than several per row.

    rows = db.scalars(
        query.order_by(open_first, Case.due_at, urgent_first, Case.id).offset((page - 1) * per_page).limit(per_page)
        .options(selectinload(Case.referring), selectinload(Case.assignments),
                 selectinload(Case.reviews).selectinload(Review.assignments).selectinload(Assignment.reviewer))
    ).all()
    return rows, total


def list_cases_for(db: Session, user: User, *, status: str | None, page: int, per_page: int, ip: str, now: datetime,
                   what: str = "case.listed", detail: str = "") -> tuple[list[Case], int]:
    """A page of the user's cases, audited: a list of names, dates of birth and MRNs is a read of each patient
    on it (audit.services.record_list_view: one event per case shown, not again within the window)."""
    rows, total = page_of_cases(db, user, status=status, page=page, per_page=per_page)
    record_list_view(db, rows, by=user, ip=ip, now=now, what=what, detail=detail)
    return rows, total
