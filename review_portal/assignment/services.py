"""Routing a case to the right reviewer, and reassignment by a coordinator."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from review_portal.assignment.models import Assignment
from review_portal.audit.services import record
from review_portal.auth.models import Role, Specialty, User
from review_portal.cases.lifecycle import OPEN_STATUSES, CaseStatus, transition
from review_portal.cases.models import Case
from review_portal.errors import InvalidInput

# Which specialties may answer which kind of review.
SPECIALTIES_FOR_REVIEW = {
    "oncology_opinion": {Specialty.MEDICAL_ONCOLOGY, Specialty.RADIATION_ONCOLOGY, Specialty.SURGICAL_ONCOLOGY},
    "radiology_read": {Specialty.RADIOLOGY},
}


@dataclass(frozen=True)
class RoutingDecision:
    reviewer: User | None
    reason: str


def open_case_counts(db: Session) -> dict[int, int]:
    rows = db.execute(
        select(Assignment.reviewer_id, func.count())
        .join(Case, Case.id == Assignment.case_id)
        .where(Assignment.active.is_(True), Case.status.in_([s.value for s in OPEN_STATUSES]))
        .group_by(Assignment.reviewer_id)
    )
    return {reviewer_id: count for reviewer_id, count in rows}


def ineligibility(reviewer: User, case: Case) -> str | None:
    """Why `reviewer` may not review `case`, or None when they may."""
    if reviewer.role != Role.REVIEWER or not reviewer.active:
        return "not an active reviewer"
    if reviewer.specialty not in SPECIALTIES_FOR_REVIEW.get(case.review_type, set()):
        return "specialty does not match the review type"
    if case.cancer_site not in (reviewer.sites or []):
        return "does not cover this cancer site"
    if reviewer.id == case.referring_id:
        return "is the referring physician"
    referring = case.referring
    if referring is not None and referring.institution_id and reviewer.institution_id == referring.institution_id:
        return "works at the referring institution"
    return None


def eligible_reviewers(db: Session, case: Case) -> list[User]:
    candidates = db.scalars(select(User).where(User.role == Role.REVIEWER, User.active.is_(True)))
    return [r for r in candidates if ineligibility(r, case) is None]


def choose_reviewer(db: Session, case: Case) -> RoutingDecision:
    """Pick the eligible reviewer with the fewest open cases; ties go to the longest-standing account."""
    eligible = eligible_reviewers(db, case)
    if not eligible:
        return RoutingDecision(None, f"No active {case.review_type_label.lower()} reviewer covers "
                                     f"{case.cancer_site_label.lower()} outside the referring institution.")
    load = open_case_counts(db)
    chosen = min(eligible, key=lambda r: (load.get(r.id, 0), r.id))
    return RoutingDecision(
        chosen,
        f"Automatic: {chosen.specialty_label}, covers {case.cancer_site_label.lower()}, "
        f"{load.get(chosen.id, 0)} open case(s), lowest of {len(eligible)} eligible.",
    )


def _end_active_assignments(case: Case, now: datetime) -> None:
    for assignment in case.assignments:
        if assignment.active:
            assignment.active = False
            assignment.ended_at = now


def route_case(db: Session, case: Case, *, by, ip: str, now: datetime) -> Assignment | None:
    """Assign a newly submitted case automatically; leave it submitted (in triage) when nobody fits."""
    decision = choose_reviewer(db, case)
    if decision.reviewer is None:
        record(db, action="case.routing_failed", by=by, ip=ip, now=now, case=case, detail=decision.reason)
        return None
    return _assign(db, case, decision.reviewer, reason=decision.reason, assigned_by=None, by=by, ip=ip, now=now)


def reassign_case(db: Session, case: Case, reviewer: User, *, by, ip: str, now: datetime, note: str = "") -> Assignment:
    problem = ineligibility(reviewer, case)
    if problem:
        raise InvalidInput(f"{reviewer.name} cannot review this case: {problem}.")
    current = case.active_assignment
    if current is not None and current.reviewer_id == reviewer.id:
        raise InvalidInput(f"{reviewer.name} is already the reviewer of this case.")
    reason = f"Reassigned by {by.name}" + (f": {note}" if note else "")
    return _assign(db, case, reviewer, reason=reason, assigned_by=by, by=by, ip=ip, now=now)


def _assign(db: Session, case: Case, reviewer: User, *, reason: str, assigned_by, by, ip: str, now: datetime) -> Assignment:
    transition(case, CaseStatus.ASSIGNED, now)
    _end_active_assignments(case, now)
    assignment = Assignment(
        case_id=case.id, reviewer_id=reviewer.id, assigned_at=now,
        assigned_by_id=getattr(assigned_by, "id", None), reason=reason[:500], active=True,
    )
    db.add(assignment)
    db.flush()
    db.expire(case, ["assignments"])
    record(db, action="case.assigned", by=by, ip=ip, now=now, case=case,
           object_type="assignment", object_id=assignment.id, detail=f"reviewer={reviewer.email}; {reason}")
    return assignment
