"""Routing reviews to reviewers, offers and their answers, reassignment, holds and deadline checks.

Every change flushes and audits in the caller's transaction; nothing here commits.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from review_portal import deadlines
from review_portal.assignment.models import (
    DECLINE_REASONS, MAX_CAPACITY, OPEN_REVIEW_STATUSES, READING_AREAS, SITE_READING_AREAS, Assignment, Escalation,
    OutOfOffice, Review, ReviewerProfile,
)
from review_portal.audit.services import record
from review_portal.auth.models import Institution, Role, Specialty, User
from review_portal.cases.lifecycle import OPEN_STATUSES, CaseStatus, transition
from review_portal.cases.models import CANCER_SITES, REVIEW_TYPES, Case
from review_portal.errors import IllegalTransition, InvalidInput, PermissionDenied
from review_portal.notifications.services import notify, notify_staff

# Which specialties may answer which kind of review.
SPECIALTIES_FOR_REVIEW = {
    "oncology_opinion": {Specialty.MEDICAL_ONCOLOGY, Specialty.RADIATION_ONCOLOGY, Specialty.SURGICAL_ONCOLOGY},
    "radiology_read": {Specialty.RADIOLOGY},
    "pathology_review": {Specialty.PATHOLOGY},
}
DEFAULT_CAPACITY = 8


@dataclass(frozen=True)
class RoutingDecision:
    reviewer: User | None
    reason: str
    # "Dr X: at capacity (8 of 8)" for every active reviewer who was not chosen.
    excluded: list[str] = field(default_factory=list)


# --- who may review what -----------------------------------------------------------------------------

def open_case_counts(db: Session) -> dict[int, int]:
    """Open reviews each reviewer holds (offered or accepted): their current load."""
    rows = db.execute(
        select(Assignment.reviewer_id, func.count())
        .join(Review, Review.id == Assignment.review_id)
        .join(Case, Case.id == Assignment.case_id)
        .where(Assignment.status.in_(["offered", "accepted"]), Review.status.in_(list(OPEN_REVIEW_STATUSES)),
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


def hard_ineligibility(reviewer: User, case: Case, review_type: str, profile: ReviewerProfile | None) -> str | None:
    """Rules a coordinator cannot override: expertise and conflicts of interest."""
    if reviewer.role != Role.REVIEWER or not reviewer.active:
        return "not an active reviewer"
    if reviewer.specialty not in SPECIALTIES_FOR_REVIEW.get(review_type, set()):
        return f"specialty ({reviewer.specialty_label or 'none'}) does not match a {REVIEW_TYPES.get(review_type, review_type).lower()}"
    if case.cancer_site not in (reviewer.sites or []):
        return f"does not cover {case.cancer_site_label.lower()}"
    if review_type == "radiology_read":
        needed = SITE_READING_AREAS.get(case.cancer_site, set())
        if not needed & set(profile.reading_areas if profile else []):
            return "reading areas do not include this site's imaging"
    if reviewer.id == case.referring_id:
        return "is the referring physician"
    referring = case.referring
    if referring is not None and referring.institution_id and reviewer.institution_id == referring.institution_id:
        return "works at the referring institution (conflict of interest)"
    return None


def ineligibility(reviewer: User, case: Case, review_type: str, facts: RoutingFacts) -> str | None:
    """Why `reviewer` may not be routed this review automatically, or None when they may."""
    profile = facts.profiles.get(reviewer.id)
    problem = hard_ineligibility(reviewer, case, review_type, profile)
    if problem:
        return problem
    if reviewer.id in facts.excluded:
        return "declined this review"
    if reviewer.id in facts.busy_on_case:
        return "already reviews this case"
    away = facts.absences.get(reviewer.id)
    if away is not None:
        return f"out of office {away.starts_on:%d %b} – {away.ends_on:%d %b}"
    capacity = capacity_of(profile)
    if facts.load.get(reviewer.id, 0) >= capacity:
        return f"at capacity ({facts.load.get(reviewer.id, 0)} of {capacity} open)"
    return None


def _facts_for(db: Session, review: Review, now: datetime) -> RoutingFacts:
    # Someone away at any point before the deadline cannot be counted on for it.
    end = max(review.due_at, now).date()
    busy = {a.reviewer_id for r in review.case.reviews if r.id != review.id for a in r.assignments if a.active}
    return RoutingFacts(load=open_case_counts(db), profiles=profiles_by_user(db),
                        absences=absences_overlapping(db, now.date(), end),
                        excluded=review.declined_reviewer_ids, busy_on_case=busy)


def _reviewers(db: Session) -> list[User]:
    return list(db.scalars(select(User).where(User.role == Role.REVIEWER, User.active.is_(True)).order_by(User.id)))


def choose_reviewer(db: Session, review: Review, now: datetime) -> RoutingDecision:
    """Among eligible reviewers, the one with the lowest load; ties go to the lowest account id.

    Returns the reason in words for the coordinator, including who else was considered and why not.
    """
    case = review.case
    facts = _facts_for(db, review, now)
    eligible, excluded = [], []
    for reviewer in _reviewers(db):
        problem = ineligibility(reviewer, case, review.review_type, facts)
        if problem:
            excluded.append(f"{reviewer.name}: {problem}")
        else:
            eligible.append(reviewer)
    label = REVIEW_TYPES.get(review.review_type, review.review_type).lower()
    if not eligible:
        detail = "; ".join(excluded) if excluded else "no active reviewers"
        return RoutingDecision(None, f"No eligible reviewer for a {label} of a {case.cancer_site_label.lower()} case. "
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
    profiles = profiles_by_user(db)
    return [r for r in _reviewers(db) if hard_ineligibility(r, review.case, review.review_type, profiles.get(r.id)) is None]


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

def _sync_case_due(case: Case) -> None:
    open_dues = [r.due_at for r in case.reviews if r.is_open]
    if open_dues:
        case.due_at = min(open_dues)


def route_case(db: Session, case: Case, *, by, ip: str, now: datetime) -> Assignment | None:
    """Create the case's lead review (due when the case is due) and offer it to the best-matching reviewer."""
    review = Review(case_id=case.id, review_type=case.review_type, is_lead=True, status="triage",
                    fhir_status="received", created_at=now, due_at=case.due_at)
    db.add(review)
    db.flush()
    db.expire(case, ["reviews", "assignments"])
    return route_review(db, review, by=by, ip=ip, now=now)


def add_review(db: Session, case: Case, review_type: str, *, policy: deadlines.SlaPolicy, by, ip: str,
               now: datetime) -> Review:
    """A further review of the same case (e.g. a radiology re-read); the letter waits for it."""
    if by.role not in (Role.COORDINATOR, Role.ADMIN):
        raise PermissionDenied("Only a coordinator can add a review to a case.")
    if review_type not in REVIEW_TYPES:
        raise InvalidInput("Choose a review type.")
    if case.status not in (CaseStatus.TRIAGE, CaseStatus.ASSIGNED, CaseStatus.IN_REVIEW, CaseStatus.AWAITING_INFORMATION):
        raise IllegalTransition(f"Case {case.reference} is {case.status_label.lower()}; no review can be added.")
    review = Review(case_id=case.id, review_type=review_type, is_lead=False, status="triage", fhir_status="received",
                    created_at=now, due_at=deadlines.due_date(now, case.priority, policy))
    db.add(review)
    db.flush()
    db.expire(case, ["reviews", "assignments"])
    record(db, action="review.added", by=by, ip=ip, now=now, case=case, object_type="review", object_id=review.id,
           detail=f"type={review_type}; due={review.due_at.isoformat()}")
    route_review(db, review, by=by, ip=ip, now=now)
    return review


def route_review(db: Session, review: Review, *, by, ip: str, now: datetime) -> Assignment | None:
    """Offer the review to the best eligible reviewer, or put it in the triage queue with the reason."""
    decision = choose_reviewer(db, review, now)
    case = review.case
    if decision.reviewer is None:
        review.set_status("triage")
        review.triage_reason = decision.reason[:1000]
        record(db, action="case.routing_failed", by=by, ip=ip, now=now, case=case, object_type="review",
               object_id=review.id, detail=decision.reason)
        if review.is_lead and case.status in (CaseStatus.SUBMITTED, CaseStatus.ASSIGNED):
            transition(case, CaseStatus.TRIAGE, now, by=by, ip=ip, why="no eligible reviewer")
        notify_staff(db, kind="triage", case=case, now=now,
                     text=f"Case {case.reference} needs a reviewer for its {review.review_type_label.lower()}: "
                          "nobody eligible was found automatically.")
        return None
    return _offer(db, review, decision.reviewer, reason=decision.reason, assigned_by=None, by=by, ip=ip, now=now)


def _offer(db: Session, review: Review, reviewer: User, *, reason: str, assigned_by, by, ip: str, now: datetime) -> Assignment:
    case = review.case
    for current in review.assignments:
        if current.status in ("offered", "accepted"):
            current.set_status("ended", now)
    if review.is_lead and case.status in (CaseStatus.SUBMITTED, CaseStatus.TRIAGE, CaseStatus.ASSIGNED,
                                          CaseStatus.IN_REVIEW):
        transition(case, CaseStatus.ASSIGNED, now, by=by, ip=ip, why=f"offered to {reviewer.name}")
    assignment = Assignment(case_id=case.id, review_id=review.id, reviewer_id=reviewer.id, assigned_at=now,
                            assigned_by_id=getattr(assigned_by, "id", None), reason=reason[:1000],
                            status="offered", fhir_status="requested", active=True)
    db.add(assignment)
    review.set_status("offered")
    review.triage_reason = ""
    db.flush()
    db.expire(review, ["assignments"])
    db.expire(case, ["assignments"])
    record(db, action="case.assigned", by=by, ip=ip, now=now, case=case, object_type="assignment",
           object_id=assignment.id, detail=f"offered {review.review_type} to {reviewer.email}; {reason}")
    notify(db, reviewer, kind="assignment", case=case, now=now,
           text=f"Case {case.reference} ({review.review_type_label.lower()}, {case.priority_label.lower()}) is offered "
                f"to you. Accept or decline it; due {review.due_at:%d %b %Y %H:%M} UTC.")
    return assignment


def accept_offer(db: Session, assignment: Assignment, *, by, ip: str, now: datetime) -> Assignment:
    if assignment.reviewer_id != by.id:
        raise PermissionDenied("Only the reviewer it was offered to can accept this review.")
    if assignment.status != "offered":
        raise IllegalTransition(f"This offer is {assignment.status_label.lower()}; it can no longer be accepted.")
    case, review = assignment.review.case, assignment.review
    if case.status not in OPEN_STATUSES:
        raise IllegalTransition(f"Case {case.reference} is {case.status_label.lower()}.")
    assignment.set_status("accepted", now)
    review.set_status("in_review")
    record(db, action="assignment.accepted", by=by, ip=ip, now=now, case=case, object_type="assignment",
           object_id=assignment.id)
    if review.is_lead and case.status == CaseStatus.ASSIGNED:
        transition(case, CaseStatus.IN_REVIEW, now, by=by, ip=ip, why=f"accepted by {by.name}")
    return assignment


def decline_offer(db: Session, assignment: Assignment, *, reason: str, note: str, by, ip: str,
                  now: datetime) -> Assignment | None:
    """Record the decline with its reason, then offer the review to the next eligible reviewer (never a decliner)."""
    if assignment.reviewer_id != by.id:
        raise PermissionDenied("Only the reviewer it was offered to can decline this review.")
    if assignment.status != "offered":
        raise IllegalTransition(f"This offer is {assignment.status_label.lower()}; it can no longer be declined.")
    if reason not in DECLINE_REASONS:
        raise InvalidInput("Choose why you decline: " + ", ".join(DECLINE_REASONS.values()).lower() + ".")
    if reason == "other" and not note.strip():
        raise InvalidInput("Say briefly why you decline.")
    case, review = assignment.review.case, assignment.review
    assignment.set_status("declined", now)
    assignment.decline_reason = reason
    assignment.decline_note = note.strip()[:500]
    db.flush()
    record(db, action="assignment.declined", by=by, ip=ip, now=now, case=case, object_type="assignment",
           object_id=assignment.id, detail=f"{reason}: {assignment.decline_note}")
    return route_review(db, review, by=by, ip=ip, now=now)


def reassign_review(db: Session, review: Review, reviewer: User, *, by, ip: str, now: datetime, note: str = "") -> Assignment:
    """A coordinator hands the review to a named reviewer, who then accepts or declines like any offer."""
    if by.role not in (Role.COORDINATOR, Role.ADMIN):
        raise PermissionDenied("Only a coordinator can reassign a review.")
    case = review.case
    if not review.is_open or case.status not in OPEN_STATUSES:
        raise IllegalTransition(f"Case {case.reference} is {case.status_label.lower()} and cannot be reassigned.")
    problem = hard_ineligibility(reviewer, case, review.review_type, profiles_by_user(db).get(reviewer.id))
    if problem:
        raise InvalidInput(f"{reviewer.name} cannot review this case: {problem}.")
    current = review.active_assignment
    if current is not None and current.reviewer_id == reviewer.id:
        raise InvalidInput(f"{reviewer.name} already holds this review.")
    if case.status == CaseStatus.AWAITING_INFORMATION:
        raise IllegalTransition(f"Case {case.reference} is awaiting information; reassign it once it resumes.")
    facts = _facts_for(db, review, now)
    soft = ineligibility(reviewer, case, review.review_type, facts)
    reason = f"Assigned by {by.name}" + (f": {note}" if note else "") + (f" (overrides: {soft})" if soft else "")
    return _offer(db, review, reviewer, reason=reason, assigned_by=by, by=by, ip=ip, now=now)


def reassign_case(db: Session, case: Case, reviewer: User, *, by, ip: str, now: datetime, note: str = "") -> Assignment:
    """Reassign the case's lead review (the common case for a coordinator)."""
    return reassign_review(db, case.lead_review, reviewer, by=by, ip=ip, now=now, note=note)


def complete_contributing_review(db: Session, review: Review, *, findings: str, by, ip: str, now: datetime) -> Review:
    """A contributing reviewer (e.g. the radiologist re-reading) records findings for the lead reviewer."""
    assignment = review.active_assignment
    if review.is_lead:
        raise InvalidInput("The lead review is completed by signing the opinion.")
    if assignment is None or assignment.reviewer_id != by.id or assignment.status != "accepted":
        raise PermissionDenied("Only the reviewer who accepted this review can complete it.")
    if review.case.status not in (CaseStatus.ASSIGNED, CaseStatus.IN_REVIEW):
        raise IllegalTransition(f"Case {review.case.reference} is {review.case.status_label.lower()}.")
    if not findings.strip():
        raise InvalidInput("Write your findings before completing the review.")
    review.findings = findings.strip()
    review.complete(now)
    case = review.case
    _sync_case_due(case)
    record(db, action="review.completed", by=by, ip=ip, now=now, case=case, object_type="review", object_id=review.id)
    lead = case.reviewer
    text = f"The {review.review_type_label.lower()} of case {case.reference} is complete."
    if lead is not None:
        notify(db, lead, kind="review_done", case=case, text=text, now=now)
    notify_staff(db, kind="review_done", case=case, text=text, now=now)
    return review


def release_letter(db: Session, case: Case, *, why: str, by, ip: str, now: datetime) -> None:
    """Let the opinion be signed (and the letter go) without waiting for the remaining contributing reviews."""
    if by.role not in (Role.COORDINATOR, Role.ADMIN):
        raise PermissionDenied("Only a coordinator can release the letter.")
    if case.status not in OPEN_STATUSES:
        raise IllegalTransition(f"Case {case.reference} is {case.status_label.lower()}.")
    if not why.strip():
        raise InvalidInput("Say why the letter may go without the other reviews.")
    case.letter_released_at = now
    case.letter_released_by_id = by.id
    case.updated_at = now
    record(db, action="case.letter_released", by=by, ip=ip, now=now, case=case, detail=why.strip()[:500])


# --- holds ---------------------------------------------------------------------------------------------

def pause_deadlines(case: Case, now: datetime) -> None:
    case.hold_started_at = now


def resume_deadlines(case: Case, *, policy: deadlines.SlaPolicy, now: datetime) -> None:
    """Push every open review's deadline back by the business time spent waiting on the referrer."""
    started = case.hold_started_at
    case.hold_started_at = None
    if started is None:
        return
    for review in case.reviews:
        if review.is_open:
            review.due_at = deadlines.extend_for_hold(review.due_at, started, now, policy.holidays)
            left = deadlines.time_left(review.due_at, now, policy.holidays)
            if deadlines.sla_state(left, policy.near_due_hours) == "on_time":
                review.near_due_flagged_at = None
            if left >= 0:
                review.overdue_escalated_at = None
    _sync_case_due(case)


# --- dashboard and deadline checks ----------------------------------------------------------------------

@dataclass(frozen=True)
class ReviewRow:
    review: Review
    case: Case
    seconds_left: int
    state: str  # overdue | near_due | on_time | on_hold

    @property
    def time_left_text(self) -> str:
        text = deadlines.describe_time_left(self.seconds_left)
        return f"paused, {text}" if self.state == "on_hold" else text

    @property
    def state_label(self) -> str:
        return deadlines.SLA_LABELS[self.state]


def _open_reviews(db: Session) -> list[Review]:
    return list(db.scalars(
        select(Review).join(Case, Case.id == Review.case_id)
        .where(Review.status.in_(list(OPEN_REVIEW_STATUSES)), Case.status.in_([s.value for s in OPEN_STATUSES]))
        .order_by(Review.due_at, Review.id)
    ))


def review_row(review: Review, policy: deadlines.SlaPolicy, now: datetime) -> ReviewRow:
    case = review.case
    # While on hold the clock is stopped at the moment the hold began.
    at = case.hold_started_at or now
    left = deadlines.time_left(review.due_at, at, policy.holidays)
    state = "on_hold" if case.on_hold else deadlines.sla_state(left, policy.near_due_hours)
    return ReviewRow(review, case, left, state)


_STATE_ORDER = {"overdue": 0, "near_due": 1, "on_time": 2, "on_hold": 3}


def dashboard(db: Session, *, policy: deadlines.SlaPolicy, now: datetime) -> dict:
    rows = [review_row(r, policy, now) for r in _open_reviews(db)]
    rows.sort(key=lambda row: (_STATE_ORDER[row.state], row.seconds_left, row.review.id))
    counts = {state: sum(1 for row in rows if row.state == state) for state in _STATE_ORDER}
    triage = [row for row in rows if row.review.status == "triage"]
    counts["triage"] = len(triage)
    counts["offered"] = sum(1 for row in rows if row.review.status == "offered")
    escalations = list(db.scalars(select(Escalation).order_by(Escalation.at.desc(), Escalation.id.desc()).limit(15)))
    from review_portal.letters.services import letters_awaiting_acknowledgement

    awaiting_receipt = letters_awaiting_acknowledgement(db, now=now)
    counts["awaiting_receipt"] = len(awaiting_receipt)
    return {"rows": rows, "triage": triage, "counts": counts, "escalations": escalations,
            "awaiting_receipt": awaiting_receipt}


@dataclass
class SlaReport:
    near_due: list[str] = field(default_factory=list)
    overdue: list[str] = field(default_factory=list)
    offers_reminded: list[str] = field(default_factory=list)
    offers_escalated: list[str] = field(default_factory=list)

    def summary(self) -> str:
        deadlines_part = (f"{len(self.near_due)} near due flagged, {len(self.overdue)} overdue escalated"
                          + (f": {', '.join(self.near_due + self.overdue)}" if self.near_due or self.overdue else ""))
        offers = self.offers_reminded + self.offers_escalated
        return (deadlines_part + f"; {len(self.offers_reminded)} unanswered offer(s) reminded, "
                f"{len(self.offers_escalated)} escalated" + (f": {', '.join(offers)}" if offers else ""))


def sla_check(db: Session, *, policy: deadlines.SlaPolicy, now: datetime, by=None, ip: str = "cli") -> SlaReport:
    """Flag reviews near their deadline (the reviewer is told) and escalate overdue ones to coordinators;
    chase offers left unanswered (see _chase_offers).

    Safe to run as often as cron likes: each review is flagged once per state, and every flag is recorded.
    """
    report = SlaReport()
    for review in _open_reviews(db):
        row = review_row(review, policy, now)
        case, reviewer = review.case, review.reviewer
        if row.state == "overdue" and review.overdue_escalated_at is None:
            review.overdue_escalated_at = now
            review.near_due_flagged_at = review.near_due_flagged_at or now
            who = reviewer.name if reviewer else "nobody (triage)"
            detail = f"{review.review_type_label} overdue ({row.time_left_text}); reviewer {who}"
            db.add(Escalation(review_id=review.id, case_id=case.id, kind="overdue", at=now,
                              reviewer_id=getattr(reviewer, "id", None), detail=detail[:500]))
            record(db, action="review.escalated", by=by, ip=ip, now=now, case=case, object_type="review",
                   object_id=review.id, detail=detail)
            if reviewer is not None:
                notify(db, reviewer, kind="overdue", case=case, now=now,
                       text=f"Your review of case {case.reference} is overdue. The coordinators have been told.")
            notify_staff(db, kind="overdue", case=case, now=now, link=f"/cases/{case.id}/reassign?review={review.id}",
                         text=f"Case {case.reference}: {detail}. Consider reassigning it.")
            report.overdue.append(case.reference)
        elif row.state == "near_due" and review.near_due_flagged_at is None:
            review.near_due_flagged_at = now
            detail = f"{review.review_type_label} due soon ({row.time_left_text})"
            db.add(Escalation(review_id=review.id, case_id=case.id, kind="near_due", at=now,
                              reviewer_id=getattr(reviewer, "id", None), detail=detail[:500]))
            record(db, action="review.near_due", by=by, ip=ip, now=now, case=case, object_type="review",
                   object_id=review.id, detail=detail)
            if reviewer is not None:
                notify(db, reviewer, kind="deadline_near", case=case, now=now,
                       text=f"Case {case.reference} is due {review.due_at:%d %b %Y %H:%M} UTC ({row.time_left_text}).")
            else:
                notify_staff(db, kind="deadline_near", case=case, now=now,
                             text=f"Case {case.reference} has no reviewer and is due soon ({row.time_left_text}).")
            report.near_due.append(case.reference)
    _chase_offers(db, policy=policy, now=now, by=by, ip=ip, report=report)
    db.flush()
    return report


def _waiting_offers(db: Session) -> list[Assignment]:
    return list(db.scalars(
        select(Assignment).join(Review, Review.id == Assignment.review_id).join(Case, Case.id == Assignment.case_id)
        .where(Assignment.status == "offered", Review.status == "offered",
               Case.status.in_([s.value for s in OPEN_STATUSES]))
        .order_by(Assignment.assigned_at, Assignment.id)
    ))


def _chase_offers(db: Session, *, policy: deadlines.SlaPolicy, now: datetime, by, ip: str, report: SlaReport) -> None:
    """Offers left unanswered: remind the reviewer once after the period, escalate once a period after that.

    Measured in business time, like deadlines. Each flag is an Escalation row for this very offer (same
    review and reviewer, raised after it was made), so re-running finds it and does nothing twice, and a
    fresh offer to someone else (or to the same reviewer later) starts its own chase.
    """
    period = policy.offer_reminder_hours * 3600
    if period <= 0:
        return
    offers = _waiting_offers(db)
    if not offers:
        return
    flags: dict[tuple[int, int], list[Escalation]] = {}
    for flag in db.scalars(select(Escalation).where(Escalation.kind.in_(["offer_remind", "offer_late"]),
                                                    Escalation.review_id.in_([a.review_id for a in offers]))):
        flags.setdefault((flag.review_id, flag.reviewer_id), []).append(flag)
    for offer in offers:
        mine = {f.kind: f for f in flags.get((offer.review_id, offer.reviewer_id), []) if f.at >= offer.assigned_at}
        reminded = mine.get("offer_remind")
        review, case, reviewer = offer.review, offer.review.case, offer.reviewer
        offered = f"{review.review_type_label} offered to {reviewer.name} {offer.assigned_at:%d %b %H:%M} UTC"
        if reminded is None:
            if deadlines.business_seconds_between(offer.assigned_at, now, policy.holidays) < period:
                continue
            detail = f"{offered}, unanswered; reviewer reminded"
            db.add(Escalation(review_id=review.id, case_id=case.id, kind="offer_remind", at=now,
                              reviewer_id=reviewer.id, detail=detail[:500]))
            record(db, action="assignment.offer_reminded", by=by, ip=ip, now=now, case=case, object_type="assignment",
                   object_id=offer.id, detail=detail)
            notify(db, reviewer, kind="offer_reminder", case=case, now=now,
                   text=f"Case {case.reference} ({review.review_type_label.lower()}) was offered to you on "
                        f"{offer.assigned_at:%d %b %Y %H:%M} UTC and awaits your answer. Accept or decline it, so "
                        "it can go to a colleague if you cannot take it.")
            report.offers_reminded.append(case.reference)
        elif "offer_late" not in mine:
            if deadlines.business_seconds_between(reminded.at, now, policy.holidays) < period:
                continue
            detail = f"{offered}, still unanswered after a reminder on {reminded.at:%d %b %H:%M} UTC"
            db.add(Escalation(review_id=review.id, case_id=case.id, kind="offer_late", at=now,
                              reviewer_id=reviewer.id, detail=detail[:500]))
            record(db, action="assignment.offer_escalated", by=by, ip=ip, now=now, case=case,
                   object_type="assignment", object_id=offer.id, detail=detail)
            notify_staff(db, kind="offer_unanswered", case=case, now=now,
                         link=f"/cases/{case.id}/reassign?review={review.id}",
                         text=f"Case {case.reference}: {detail}. Consider reassigning it.")
            report.offers_escalated.append(case.reference)


def offer_for(db: Session, case: Case, user) -> Assignment | None:
    """The user's open offer on this case, if any (shown as accept/decline on the case page)."""
    return next((a for a in case.assignments if a.reviewer_id == user.id and a.status == "offered"), None)


def reviews_held_by(case: Case, user) -> list[Review]:
    return [r for r in case.reviews for a in r.assignments if a.reviewer_id == user.id and a.active]

