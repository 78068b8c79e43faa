"""The lists and pages that gather a case with its reviews and assignments (what each user may see)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, case as sql_case, func, or_, select
from sqlalchemy.orm import Session, joinedload, selectinload

from review_portal.assignment.models import Assignment, Review
from review_portal.audit.services import record, record_list_view
from review_portal.auth.models import Role, User
from review_portal.cases.lifecycle import OPEN_STATUSES, STATUS_LABELS
from review_portal.cases.models import Case

SEARCH_MAX = 100

# The sort keys a list may ask for (?sort=…&dir=asc|desc); each maps to indexed columns of `cases`.
SORTS = {
    "due": "Due date",
    "reference": "Reference",
    "patient": "Patient",
    "status": "Status",
    "priority": "Priority",
    "submitted": "Submitted",
}


@dataclass(frozen=True)
class CaseSearch:
    """What a case list was asked for: free text, filters and an order. Empty means the plain worklist."""

    q: str = ""
    status: str | None = None
    priority: str | None = None
    sort: str = ""
    direction: str = "asc"

    @property
    def is_search(self) -> bool:
        return bool(self.q or self.status or self.priority)

    def describe(self) -> str:
        """The terms as typed, for the audit row (no patient data beyond what the user typed)."""
        parts = [f"q={self.q!r}"] if self.q else []
        parts += [f"status={self.status}"] if self.status else []
        parts += [f"priority={self.priority}"] if self.priority else []
        parts += [f"sort={self.sort} {self.direction}"] if self.sort else []
        return "; ".join(parts)


def escape_like(text: str) -> str:
    """`text` as a literal inside a LIKE pattern (escape character backslash): % and _ match only themselves."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


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


def _matching(query: Select, search: CaseSearch) -> Select:
    """Narrow an already-scoped list query by the search: the scope (whose cases) is never widened."""
    if search.priority:
        query = query.where(Case.priority == search.priority)
    if not search.q:
        return query
    like = f"%{escape_like(search.q.lower())}%"
    referrers = select(User.id).where(User.name.ilike(like, escape="\\"))
    reviewed_by = (select(Assignment.case_id).join(User, User.id == Assignment.reviewer_id)
                   .where(Assignment.active.is_(True), User.name.ilike(like, escape="\\")))
    return query.where(or_(
        Case.reference.ilike(like, escape="\\"),
        Case.patient_name.ilike(like, escape="\\"),
        Case.patient_mrn.ilike(like, escape="\\"),
        Case.referring_id.in_(referrers),
        Case.id.in_(reviewed_by),
    ))


def _order(search: CaseSearch) -> list:
    if not search.sort:
        # Open work first, then by deadline (the worklist order): what must be done next is at the top.
        open_first = (Case.status.in_([s.value for s in OPEN_STATUSES])).desc()
        urgent_first = (Case.priority == "urgent").desc()
        return [open_first, Case.due_at, urgent_first, Case.id]
    if search.sort == "status":
        # The lifecycle's order (submitted … closed), not the alphabet.
        key = sql_case({s.value: n for n, s in enumerate(STATUS_LABELS)}, value=Case.status, else_=len(STATUS_LABELS))
    elif search.sort == "priority":
        key = sql_case({"urgent": 0}, value=Case.priority, else_=1)  # ascending: urgent first
    else:
        key = {"due": Case.due_at, "reference": Case.reference, "patient": Case.patient_name,
               "submitted": Case.submitted_at}[search.sort]
    descending = search.direction == "desc"
    return [key.desc() if descending else key.asc(), Case.id.desc() if descending else Case.id.asc()]


def page_of_cases(db: Session, user: User, *, status: str | None, page: int, per_page: int,
                  search: CaseSearch | None = None):
    search = search or CaseSearch()
    query = _matching(cases_visible_to(user, status=status), search)
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    # The worklist shows each case's referrer and lead reviewer and offers one-click accept: load those
    # for the whole page in a few statements rather than several per row.
    rows = db.scalars(
        query.order_by(*_order(search)).offset((page - 1) * per_page).limit(per_page)
        .options(selectinload(Case.referring), selectinload(Case.assignments),
                 selectinload(Case.reviews).selectinload(Review.assignments).selectinload(Assignment.reviewer))
    ).all()
    return rows, total


def list_cases_for(db: Session, user: User, *, status: str | None, page: int, per_page: int, ip: str, now: datetime,
                   what: str = "case.listed", detail: str = "",
                   search: CaseSearch | None = None) -> tuple[list[Case], int]:
    """A page of the user's cases, audited: a list of names, dates of birth and MRNs is a read of each patient
    on it (audit.services.record_list_view: one event per case shown, not again within the window). A search
    is also recorded once, with its terms (`cases.searched`): what was looked for, by whom, and how many matched."""
    search = search or CaseSearch(status=status)
    rows, total = page_of_cases(db, user, status=status, page=page, per_page=per_page, search=search)
    if search.is_search:
        record(db, action="cases.searched", by=user, ip=ip, now=now, object_type="case_list",
               detail=f"{detail}: {search.describe()}; {total} matched" if detail else
               f"{search.describe()}; {total} matched")
    record_list_view(db, rows, by=user, ip=ip, now=now, what=what, detail=detail)
    return rows, total
