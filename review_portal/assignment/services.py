"""Reviewers' profiles and availability, and who holds which review of a case.

Routing is in `routing`, deadlines in `sla`; offering and reassigning (which also move the case) are
workflow steps. Every change flushes and audits in the caller's transaction; nothing here commits.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from review_portal.assignment.models import (
    MAX_CAPACITY,
    READING_AREAS,
    Assignment,
    OutOfOffice,
    Review,
    ReviewerProfile,
)
from review_portal.assignment.routing import capacity_of, open_case_counts, profiles_by_user
from review_portal.audit.services import record
from review_portal.auth.models import Institution, Role, Specialty, User
from review_portal.cases.models import CANCER_SITES, Case
from review_portal.errors import InvalidInput, NotFound, PermissionDenied

# --- reviewer profiles (administrators) -------------------------------------------------------------------

def update_reviewer_profile(db: Session, reviewer: User, *, specialty: str, sites: list[str], reading_areas: list[str],
                            institution_id: int | None, capacity: int | None, by, ip: str, now: datetime) -> list[str]:
    """Set what a reviewer is routed (specialty, sites, reading areas, institution, capacity).

    Validated here, not only in the form: routing trusts these values. Returns the changes in words
    (also audited); an unchanged profile records nothing. Open offers stay where they are; the next
    routing decision uses the new values.
    """
    if by.role != Role.ADMIN:
        raise PermissionDenied("Only an administrator can change a reviewer's profile.")
    if reviewer.role != Role.REVIEWER:
        raise InvalidInput(f"{reviewer.name} is not a reviewer.")
    if specialty not in {s.value for s in Specialty}:
        raise InvalidInput("Choose a specialty from the list.")
    sites = sorted(set(sites or []))
    if not sites:
        raise InvalidInput("Choose at least one cancer site: a reviewer with none is never routed a case.")
    unknown = [s for s in sites if s not in CANCER_SITES]
    if unknown:
        raise InvalidInput(f"Unknown cancer site: {', '.join(unknown)}.")
    areas = sorted(set(reading_areas or []))
    unknown = [a for a in areas if a not in READING_AREAS]
    if unknown:
        raise InvalidInput(f"Unknown reading area: {', '.join(unknown)}.")
    if specialty == Specialty.RADIOLOGY and not areas:
        raise InvalidInput("A radiologist needs at least one reading area to be routed radiology re-reads.")
    if specialty != Specialty.RADIOLOGY and areas:
        raise InvalidInput("Reading areas apply to radiologists only: clear them or choose radiology.")
    institution = db.get(Institution, institution_id) if institution_id else None
    if institution is None:
        raise InvalidInput("Choose the reviewer's institution (conflicts of interest are checked against it).")
    if capacity is not None and not (0 <= capacity <= MAX_CAPACITY):
        raise InvalidInput(f"Capacity is a whole number from 0 to {MAX_CAPACITY}.")

    profile = db.get(ReviewerProfile, reviewer.id)
    if profile is None:
        profile = ReviewerProfile(user_id=reviewer.id, reading_areas=[], capacity=None)
        db.add(profile)
    old_institution = reviewer.institution.name if reviewer.institution else "none"
    before = {"specialty": reviewer.specialty or "", "sites": ",".join(sorted(reviewer.sites or [])),
              "reading areas": ",".join(sorted(profile.reading_areas or [])), "institution": old_institution,
              "capacity": str(capacity_of(profile)) + ("" if profile.capacity is not None else " (default)")}
    reviewer.specialty = specialty
    reviewer.sites = sites
    reviewer.institution_id = institution.id
    profile.reading_areas = areas
    profile.capacity = capacity
    after = {"specialty": specialty, "sites": ",".join(sites), "reading areas": ",".join(areas),
             "institution": institution.name,
             "capacity": str(capacity_of(profile)) + ("" if capacity is not None else " (default)")}
    changes = [f"{k}: {before[k] or 'none'} → {after[k] or 'none'}" for k in before if before[k] != after[k]]
    db.flush()
    if changes:
        record(db, action="reviewer.profile_updated", by=by, ip=ip, now=now, object_type="user", object_id=reviewer.id,
               detail=f"{reviewer.email}: " + "; ".join(changes))
    return changes


def reviewer_overview(db: Session) -> list[tuple[User, ReviewerProfile | None, int]]:
    """Every reviewer (active or not) with their profile and current load, for the administrator's list."""
    profiles, load = profiles_by_user(db), open_case_counts(db)
    reviewers = db.scalars(select(User).where(User.role == Role.REVIEWER).order_by(User.name, User.id))
    return [(r, profiles.get(r.id), load.get(r.id, 0)) for r in reviewers]


# --- creating and routing reviews ----------------------------------------------------------------------


# --- holds ---------------------------------------------------------------------------------------------


# --- dashboard and deadline checks ----------------------------------------------------------------------


def offer_for(db: Session, case: Case, user) -> Assignment | None:
    """The user's open offer on this case, if any (shown as accept/decline on the case page)."""
    return next((a for a in case.assignments if a.reviewer_id == user.id and a.is_offered), None)


def reviews_held_by(case: Case, user) -> list[Review]:
    return [r for r in case.reviews for a in r.assignments if a.reviewer_id == user.id and a.active]



# --- availability (reviewers) -------------------------------------------------------------------------------

def absences_of(db: Session, reviewer: User, *, today: date) -> list[OutOfOffice]:
    """The reviewer's current and future out-of-office periods, soonest first."""
    return list(db.scalars(select(OutOfOffice).where(OutOfOffice.user_id == reviewer.id, OutOfOffice.ends_on >= today)
                           .order_by(OutOfOffice.starts_on)))


def add_absence(db: Session, *, starts_on: date, ends_on: date, note: str, by: User, ip: str,
                now: datetime) -> OutOfOffice:
    """A period in which routing offers the reviewer nothing new (open reviews stay theirs)."""
    if by.role != Role.REVIEWER:
        raise PermissionDenied("Only reviewers record out-of-office periods.")
    if ends_on < starts_on:
        raise InvalidInput("The last day away is before the first.")
    if ends_on - starts_on > timedelta(days=366):
        raise InvalidInput("Out-of-office periods are at most a year; add another period for longer.")
    period = OutOfOffice(user_id=by.id, starts_on=starts_on, ends_on=ends_on, note=note.strip())
    db.add(period)
    db.flush()
    record(db, action="reviewer.out_of_office", by=by, ip=ip, now=now, object_type="out_of_office",
           object_id=period.id, detail=f"{period.starts_on} – {period.ends_on}")
    return period


def remove_absence(db: Session, period_id: int, *, by: User, ip: str, now: datetime) -> None:
    period = db.get(OutOfOffice, period_id)
    if period is None or period.user_id != by.id:
        raise NotFound("No such out-of-office period.")
    db.delete(period)
    record(db, action="reviewer.out_of_office_removed", by=by, ip=ip, now=now, object_type="out_of_office",
           object_id=period_id)
