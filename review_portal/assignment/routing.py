"""Routing: which reviewers may take a review, and the best of them: the discipline's specialty first, then
sites (and a radiologist's reading areas), then conflicts, absence and load."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from review_portal.assignment.lifecycle import OPEN_REVIEW_STATUSES, STANDING_ASSIGNMENT_STATUSES
from review_portal.assignment.models import (
    SITE_READING_AREAS,
    Assignment,
    OutOfOffice,
    Review,
    ReviewerProfile,
)
from review_portal.auth.models import Role, Specialty, User
from review_portal.cases.lifecycle import OPEN_STATUSES
from review_portal.cases.models import REVIEW_TYPES, Case, Discipline

# Which specialties may answer a review made before disciplines (or added by review type alone).
SPECIALTIES_FOR_REVIEW = {
    "oncology_opinion": {Specialty.MEDICAL_ONCOLOGY, Specialty.RADIATION_ONCOLOGY, Specialty.SURGICAL_ONCOLOGY},
    "radiology_read": {Specialty.RADIOLOGY},
    "pathology_review": {Specialty.PATHOLOGY},
}


DEFAULT_CAPACITY = 8


@dataclass(frozen=True)
class Need:
    """What a review needs of its reviewer: the specialties that may answer it, and whether a radiologist's
    reading areas must cover the site."""

    label: str  # "medical oncology review", "radiology read"
    specialties: frozenset[str]
    reading_areas: bool

    @classmethod
    def of_discipline(cls, discipline: Discipline) -> Need:
        return cls(f"{discipline.label.lower()} review", frozenset({discipline.specialty}), discipline.specialty == Specialty.RADIOLOGY)

    @classmethod
    def of_review_type(cls, review_type: str) -> Need:
        return cls(REVIEW_TYPES.get(review_type, review_type).lower(),
                   frozenset(SPECIALTIES_FOR_REVIEW.get(review_type, set())), review_type == "radiology_read")


def need_of(db: Session, review: Review) -> Need:
    """The review's discipline decides; a review without one (older data) falls back to its review type."""
    if review.discipline:
        discipline = db.scalar(select(Discipline).where(Discipline.key == review.discipline))
        if discipline is not None:
            return Need.of_discipline(discipline)
    return Need.of_review_type(review.review_type)


def _need(need: Need | str) -> Need:
    return need if isinstance(need, Need) else Need.of_review_type(need)


@dataclass(frozen=True)
class RoutingDecision:
    reviewer: User | None
    reason: str
    # "Dr X: at capacity (8 of 8)" for every active reviewer who was not chosen.
    excluded: list[str] = field(default_factory=list)


def open_case_counts(db: Session) -> dict[int, int]:
    """Open reviews each reviewer holds (offered or accepted): their current load."""
    rows = db.execute(
        select(Assignment.reviewer_id, func.count())
        .join(Review, Review.id == Assignment.review_id)
        .join(Case, Case.id == Assignment.case_id)
        .where(Assignment.status.in_([s.value for s in STANDING_ASSIGNMENT_STATUSES]),
               Review.status.in_([s.value for s in OPEN_REVIEW_STATUSES]),
               Case.status.in_([s.value for s in OPEN_STATUSES]))
        .group_by(Assignment.reviewer_id)
    )
    return {reviewer_id: count for reviewer_id, count in rows}


def profiles_by_user(db: Session) -> dict[int, ReviewerProfile]:
    return {p.user_id: p for p in db.scalars(select(ReviewerProfile))}


def capacity_of(profile: ReviewerProfile | None) -> int:
    return profile.capacity if profile is not None and profile.capacity is not None else DEFAULT_CAPACITY


def absences_overlapping(db: Session, start: date, end: date) -> dict[int, OutOfOffice]:
    rows = db.scalars(select(OutOfOffice).where(OutOfOffice.starts_on <= end, OutOfOffice.ends_on >= start)
                      .order_by(OutOfOffice.starts_on))
    found: dict[int, OutOfOffice] = {}
    for row in rows:
        found.setdefault(row.user_id, row)
    return found


@dataclass
class RoutingFacts:
    """What routing needs to know beyond the reviewer and the case, loaded once per decision."""

    load: dict[int, int]
    profiles: dict[int, ReviewerProfile]
    absences: dict[int, OutOfOffice]
    excluded: set[int] = field(default_factory=set)  # declined this review already
    busy_on_case: set[int] = field(default_factory=set)  # already hold another review of this case
    need: Need | None = None  # the review's discipline, when the facts were loaded for one review


def conflict_of_interest(reviewer: User, case: Case) -> str | None:
    """The hard stop that no coordinator can override: an inactive account, the referrer, the referring institution."""
    if reviewer.role != Role.REVIEWER or not reviewer.active:
        return "not an active reviewer"
    if reviewer.id == case.referring_id:
        return "is the referring physician"
    referring = case.referring
    if referring is not None and referring.institution_id and reviewer.institution_id == referring.institution_id:
        return "works at the referring institution (conflict of interest)"
    return None


def expertise_mismatch(reviewer: User, case: Case, need: Need | str, profile: ReviewerProfile | None) -> str | None:
    """The discipline (its specialty), then sites and reading areas: automatic routing requires them; a
    coordinator may override with a reason. `need` is a Need, or a bare review type for older reviews."""
    need = _need(need)
    if reviewer.specialty not in need.specialties:
        return f"specialty ({reviewer.specialty_label or 'none'}) does not match {_article(need.label)} {need.label}"
    if case.cancer_site not in (reviewer.sites or []):
        return f"does not cover {case.cancer_site_label.lower()}"
    if need.reading_areas:
        needed = SITE_READING_AREAS.get(case.cancer_site, set())
        if not needed & set(profile.reading_areas if profile else []):
            return "reading areas do not include this site's imaging"
    return None


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def hard_ineligibility(reviewer: User, case: Case, need: Need | str, profile: ReviewerProfile | None) -> str | None:
    """Why automatic routing may never pick `reviewer`: a conflict of interest or a mismatch of expertise."""
    return conflict_of_interest(reviewer, case) or expertise_mismatch(reviewer, case, need, profile)


def reviewer_concerns(reviewer: User, case: Case, need: Need | str, facts: RoutingFacts) -> list[str]:
    """Everything that keeps automatic routing from `reviewer` and that a coordinator may override with a
    reason: expertise, an earlier decline, another review of the case, absence, capacity."""
    profile = facts.profiles.get(reviewer.id)
    concerns = []
    mismatch = expertise_mismatch(reviewer, case, need, profile)
    if mismatch:
        concerns.append(mismatch)
    if reviewer.id in facts.excluded:
        concerns.append("declined this review")
    if reviewer.id in facts.busy_on_case:
        concerns.append("already reviews this case")
    away = facts.absences.get(reviewer.id)
    if away is not None:
        concerns.append(f"out of office {away.starts_on:%d %b} – {away.ends_on:%d %b}")
    load, capacity = facts.load.get(reviewer.id, 0), capacity_of(profile)
    if load >= capacity:
        concerns.append(f"at capacity ({load} of {capacity} open)")
    return concerns


def ineligibility(reviewer: User, case: Case, need: Need | str, facts: RoutingFacts) -> str | None:
    """Why `reviewer` may not be routed this review automatically (the first reason), or None when they may."""
    return conflict_of_interest(reviewer, case) or next(iter(reviewer_concerns(reviewer, case, need, facts)), None)


def routing_facts(db: Session, review: Review, now: datetime) -> RoutingFacts:
    # Someone away at any point before the deadline cannot be counted on for it.
    end = max(review.due_at, now).date()
    busy = {a.reviewer_id for r in review.case.reviews if r.id != review.id for a in r.assignments if a.active}
    return RoutingFacts(load=open_case_counts(db), profiles=profiles_by_user(db),
                        absences=absences_overlapping(db, now.date(), end),
                        excluded=review.declined_reviewer_ids, busy_on_case=busy, need=need_of(db, review))


def all_reviewers(db: Session) -> list[User]:
    return list(db.scalars(select(User).where(User.role == Role.REVIEWER, User.active.is_(True)).order_by(User.id)))


def choose_reviewer(db: Session, review: Review, now: datetime) -> RoutingDecision:
    """Among eligible reviewers, the one with the lowest load; ties go to the lowest account id.

    Returns the reason in words for the coordinator, including who else was considered and why not.
    """
    case = review.case
    facts = routing_facts(db, review, now)
    eligible, excluded = [], []
    for reviewer in all_reviewers(db):
        problem = ineligibility(reviewer, case, facts.need, facts)
        if problem:
            excluded.append(f"{reviewer.name}: {problem}")
        else:
            eligible.append(reviewer)
    label = facts.need.label
    if not eligible:
        detail = "; ".join(excluded) if excluded else "no active reviewers"
        return RoutingDecision(None, f"No eligible reviewer for {_article(label)} {label} of a {case.cancer_site_label.lower()} case. "
                                     f"Considered: {detail}.", excluded)
    chosen = min(eligible, key=lambda r: (facts.load.get(r.id, 0), r.id))
    load = facts.load.get(chosen.id, 0)
    tied = [r for r in eligible if r is not chosen and facts.load.get(r.id, 0) == load]
    others = ", ".join(f"{r.name} {facts.load.get(r.id, 0)}" for r in eligible if r is not chosen)
    reason = (f"Automatic: {chosen.specialty_label}, covers {case.cancer_site_label.lower()}, lowest load "
              f"({load} open of {capacity_of(facts.profiles.get(chosen.id))}) among {len(eligible)} eligible")
    reason += f" (others: {others})" if others else ""
    if tied:
        reason += f"; tie with {', '.join(r.name for r in tied)} broken by the longest-standing account"
    if facts.excluded:
        reason += f"; excluded {len(facts.excluded)} who declined"
    return RoutingDecision(chosen, reason + ".", excluded)


def eligible_reviewers(db: Session, review: Review) -> list[User]:
    """Reviewers a coordinator may pick by hand (expertise and conflicts checked; load shown, not enforced)."""
    profiles, need = profiles_by_user(db), need_of(db, review)
    return [r for r in all_reviewers(db) if hard_ineligibility(r, review.case, need, profiles.get(r.id)) is None]


@dataclass(frozen=True)
class ReviewerFit:
    """How well one reviewer fits a review, for the coordinator choosing by hand."""

    reviewer: User
    load: int
    capacity: int
    conflict: str | None  # a hard stop: cannot be chosen
    concerns: tuple[str, ...]  # may be overridden, with a reason

    @property
    def matches(self) -> bool:
        return self.conflict is None and not self.concerns


def reviewer_fits(db: Session, review: Review, now: datetime) -> list[ReviewerFit]:
    """Every active reviewer except the current holder, best fit first: matching ones by load, then those a
    coordinator may choose with an override reason, then those a conflict of interest rules out."""
    case = review.case
    facts = routing_facts(db, review, now)
    current = review.active_assignment
    fits = []
    for reviewer in all_reviewers(db):
        if current is not None and reviewer.id == current.reviewer_id:
            continue
        load, capacity = facts.load.get(reviewer.id, 0), capacity_of(facts.profiles.get(reviewer.id))
        fits.append(ReviewerFit(reviewer, load, capacity, conflict_of_interest(reviewer, case),
                                tuple(reviewer_concerns(reviewer, case, facts.need, facts))))
    fits.sort(key=lambda f: (f.conflict is not None, len(f.concerns), f.load, f.reviewer.id))
    return fits
