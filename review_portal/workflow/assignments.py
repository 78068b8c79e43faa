"""Offering, accepting, declining and reassigning reviews: steps that change the assignment, the case and the notifications together."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from review_portal import deadlines
from review_portal.assignment.lifecycle import (
    ASSIGNMENT_FHIR_STATUS,
    REVIEW_FHIR_STATUS,
    STANDING_ASSIGNMENT_STATUSES,
    AssignmentStatus,
    ReviewStatus,
    check_assignment,
    transition_assignment,
    transition_review,
)
from review_portal.assignment.models import (
    DECLINE_REASONS,
    Assignment,
    Escalation,
    Review,
)
from review_portal.assignment.routing import (
    choose_reviewer,
    conflict_of_interest,
    reviewer_concerns,
    routing_facts,
)
from review_portal.assignment.sla import sync_case_due
from review_portal.audit.services import record
from review_portal.auth.models import Role, User
from review_portal.cases.disciplines import active_discipline
from review_portal.cases.lifecycle import OPEN_STATUSES, CaseStatus, transition
from review_portal.cases.models import REVIEW_TYPES, Case, Discipline
from review_portal.errors import IllegalTransition, InvalidInput, PermissionDenied
from review_portal.notifications.services import notify, notify_staff
from review_portal.opinions.sections import record_free_text_section


def route_case(db: Session, case: Case, *, by, ip: str, now: datetime) -> Assignment | None:
    """Create the case's lead review (due when the case is due) and offer it to the best-matching reviewer."""
    review = Review(case_id=case.id, review_type=case.review_type, discipline=case.discipline, is_lead=True, status=ReviewStatus.TRIAGE.value,
                    fhir_status=REVIEW_FHIR_STATUS[ReviewStatus.TRIAGE], created_at=now, due_at=case.due_at)
    db.add(review)
    db.flush()
    db.expire(case, ["reviews", "assignments"])
    return route_review(db, review, by=by, ip=ip, now=now)


def add_review(db: Session, case: Case, review_type: str, *, policy: deadlines.SlaPolicy, by, ip: str,
               now: datetime, discipline: str = "") -> Review:
    """A further review of the same case (e.g. a radiology re-read); the letter waits for it.

    With a `discipline` (an active one's key) the review needs that discipline's specialty, and its review type
    follows from it; a bare review type is routed by the specialties that type admits."""
    if by.role not in (Role.COORDINATOR, Role.ADMIN):
        raise PermissionDenied("Only a coordinator can add a review to a case.")
    needed = active_discipline(db, discipline) if discipline else None
    if needed is not None:
        review_type = needed.review_type
    if review_type not in REVIEW_TYPES:
        raise InvalidInput("Choose a review type.")
    if case.status not in (CaseStatus.TRIAGE, CaseStatus.ASSIGNED, CaseStatus.IN_REVIEW, CaseStatus.AWAITING_INFORMATION):
        raise IllegalTransition(f"Case {case.reference} is {case.status_label.lower()}; no review can be added.")
    return _contributing_review(db, case, review_type, needed, due_at=deadlines.due_date(now, case.priority, policy),
                                by=by, ip=ip, now=now)


def add_requested_reviews(db: Session, case: Case, disciplines: list[Discipline], *, by, ip: str,
                          now: datetime) -> list[Review]:
    """At intake: the referrer's further disciplines become contributing reviews, due when the case is due."""
    return [_contributing_review(db, case, d.review_type, d, due_at=case.due_at, by=by, ip=ip, now=now)
            for d in disciplines]


def _contributing_review(db: Session, case: Case, review_type: str, discipline: Discipline | None, *, due_at: datetime,
                         by, ip: str, now: datetime) -> Review:
    review = Review(case_id=case.id, review_type=review_type, discipline=discipline.key if discipline else None,
                    is_lead=False, status=ReviewStatus.TRIAGE.value,
                    fhir_status=REVIEW_FHIR_STATUS[ReviewStatus.TRIAGE], created_at=now, due_at=due_at)
    db.add(review)
    db.flush()
    db.expire(case, ["reviews", "assignments"])
    detail = f"type={review_type}; due={review.due_at.isoformat()}"
    detail += f"; discipline={discipline.key}" if discipline else ""
    record(db, action="review.added", by=by, ip=ip, now=now, case=case, object_type="review", object_id=review.id,
           detail=detail)
    route_review(db, review, by=by, ip=ip, now=now)
    return review


def route_review(db: Session, review: Review, *, by, ip: str, now: datetime) -> Assignment | None:
    """Offer the review to the best eligible reviewer, or put it in the triage queue with the reason."""
    decision = choose_reviewer(db, review, now)
    case = review.case
    if decision.reviewer is None:
        transition_review(review, ReviewStatus.TRIAGE, now, by=by, ip=ip, detail=decision.reason)  # case.routing_failed
        review.triage_reason = decision.reason[:1000]
        if review.is_lead and case.status in (CaseStatus.SUBMITTED, CaseStatus.ASSIGNED):
            transition(case, CaseStatus.TRIAGE, now, by=by, ip=ip, why="no eligible reviewer")
        notify_staff(db, kind="triage", case=case, now=now,
                     text=f"Case {case.reference} needs a reviewer for its {review.review_type_label.lower()}: "
                          "nobody eligible was found automatically.")
        return None
    return _offer(db, review, decision.reviewer, reason=decision.reason, assigned_by=None, by=by, ip=ip, now=now)


def _offer(db: Session, review: Review, reviewer: User, *, reason: str, assigned_by, by, ip: str, now: datetime) -> Assignment:
    case = review.case
    transition_review(review, ReviewStatus.OFFERED, now, by=by, ip=ip)  # audited below as case.assigned
    for current in review.assignments:
        if current.status in STANDING_ASSIGNMENT_STATUSES:
            transition_assignment(current, AssignmentStatus.ENDED, now, audit=False)  # part of this offer
    if review.is_lead and case.status in (CaseStatus.SUBMITTED, CaseStatus.TRIAGE, CaseStatus.ASSIGNED,
                                          CaseStatus.IN_REVIEW):
        transition(case, CaseStatus.ASSIGNED, now, by=by, ip=ip, why=f"offered to {reviewer.name}")
    assignment = Assignment(case_id=case.id, review_id=review.id, reviewer_id=reviewer.id, assigned_at=now,
                            assigned_by_id=getattr(assigned_by, "id", None), reason=reason[:1000],
                            status=AssignmentStatus.OFFERED.value,
                            fhir_status=ASSIGNMENT_FHIR_STATUS[AssignmentStatus.OFFERED], active=True)
    db.add(assignment)
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
    check_assignment(assignment, AssignmentStatus.ACCEPTED)
    case, review = assignment.review.case, assignment.review
    if case.status not in OPEN_STATUSES:
        raise IllegalTransition(f"Case {case.reference} is {case.status_label.lower()}.")
    transition_assignment(assignment, AssignmentStatus.ACCEPTED, now, by=by, ip=ip)  # assignment.accepted
    transition_review(review, ReviewStatus.IN_REVIEW, now, by=by, ip=ip)
    if review.is_lead and case.status == CaseStatus.ASSIGNED:
        transition(case, CaseStatus.IN_REVIEW, now, by=by, ip=ip, why=f"accepted by {by.name}")
    return assignment


def decline_offer(db: Session, assignment: Assignment, *, reason: str, note: str, by, ip: str,
                  now: datetime) -> Assignment | None:
    """Record the decline with its reason, then offer the review to the next eligible reviewer (never a decliner)."""
    if assignment.reviewer_id != by.id:
        raise PermissionDenied("Only the reviewer it was offered to can decline this review.")
    check_assignment(assignment, AssignmentStatus.DECLINED)
    if reason not in DECLINE_REASONS:
        raise InvalidInput("Choose why you decline: " + ", ".join(DECLINE_REASONS.values()).lower() + ".")
    if reason == "other" and not note.strip():
        raise InvalidInput("Say briefly why you decline.")
    review = assignment.review
    assignment.decline_reason = reason
    assignment.decline_note = note.strip()[:500]
    transition_assignment(assignment, AssignmentStatus.DECLINED, now, by=by, ip=ip,
                          detail=f"{reason}: {assignment.decline_note}")  # assignment.declined
    db.flush()
    return route_review(db, review, by=by, ip=ip, now=now)


def reassign_review(db: Session, review: Review, reviewer: User, *, by, ip: str, now: datetime, note: str = "",
                    override_reason: str = "") -> Assignment:
    """A coordinator hands the review to a named reviewer, who then accepts or declines like any offer.

    Any active reviewer may be chosen. Where the reviewer does not fit (specialty, sites, absence, load, an
    earlier decline) the coordinator must say why they override; the reason goes into the audit row and the
    assignment. A conflict of interest (the referrer, the referring institution) can never be overridden.
    """
    if by.role not in (Role.COORDINATOR, Role.ADMIN):
        raise PermissionDenied("Only a coordinator can reassign a review.")
    case = review.case
    if not review.is_open or case.status not in OPEN_STATUSES:
        raise IllegalTransition(f"Case {case.reference} is {case.status_label.lower()} and cannot be reassigned.")
    if case.status == CaseStatus.AWAITING_INFORMATION:
        raise IllegalTransition(f"Case {case.reference} is awaiting information; reassign it once it resumes.")
    conflict = conflict_of_interest(reviewer, case)
    if conflict:
        raise InvalidInput(f"{reviewer.name} cannot review this case: {conflict}.")
    current = review.active_assignment
    if current is not None and current.reviewer_id == reviewer.id:
        raise InvalidInput(f"{reviewer.name} already holds this review.")
    facts = routing_facts(db, review, now)
    concerns = "; ".join(reviewer_concerns(reviewer, case, facts.need, facts))
    override_reason = " ".join((override_reason or "").split())[:300]
    if concerns and not override_reason:
        raise InvalidInput(f"{reviewer.name} does not fit this review ({concerns}). Give the reason for overriding.")
    note = " ".join((note or "").split())[:300]
    reason = f"Assigned by {by.name}" + (f": {note}" if note else "")
    if concerns:
        reason += f" (override of: {concerns}; reason: {override_reason})"
        record(db, action="assignment.override", by=by, ip=ip, now=now, case=case, object_type="review",
               object_id=review.id, detail=f"{reviewer.email}: {concerns}; reason: {override_reason}"[:2000])
    return _offer(db, review, reviewer, reason=reason, assigned_by=by, by=by, ip=ip, now=now)


def extend_deadline(db: Session, review: Review, *, business_days: int, reason: str, policy: deadlines.SlaPolicy,
                    by, ip: str, now: datetime) -> Review:
    """Give an open review more time (business days), with a reason; the reviewer and the coordinators are told."""
    if by.role not in (Role.COORDINATOR, Role.ADMIN):
        raise PermissionDenied("Only a coordinator can extend a deadline.")
    case = review.case
    if not review.is_open or case.status not in OPEN_STATUSES:
        raise IllegalTransition(f"Case {case.reference} is {case.status_label.lower()}; its deadline cannot change.")
    if not 1 <= business_days <= 30:
        raise InvalidInput("Extend by 1 to 30 business days.")
    reason = " ".join((reason or "").split())[:300]
    if not reason:
        raise InvalidInput("Say why the deadline is extended.")
    before = review.due_at
    review.due_at = deadlines.add_business_days(max(before, now), business_days, policy.holidays)
    left = deadlines.time_left(review.due_at, now, policy.holidays)
    if deadlines.sla_state(left, policy.near_due_hours) == "on_time":
        review.near_due_flagged_at = None
    review.overdue_escalated_at = None
    sync_case_due(case)
    detail = (f"{review.review_type_label} due {before:%d %b %Y %H:%M} → {review.due_at:%d %b %Y %H:%M} UTC "
              f"by {by.name}: {reason}")
    db.add(Escalation(review_id=review.id, case_id=case.id, kind="extended", at=now,
                      reviewer_id=getattr(review.reviewer, "id", None), detail=detail[:500]))
    record(db, action="review.deadline_extended", by=by, ip=ip, now=now, case=case, object_type="review",
           object_id=review.id, detail=detail)
    if review.reviewer is not None:
        notify(db, review.reviewer, kind="deadline_extended", case=case, now=now,
               text=f"Case {case.reference} is now due {review.due_at:%d %b %Y %H:%M} UTC: {reason}")
    notify_staff(db, kind="deadline_extended", case=case, now=now, text=f"Case {case.reference}: {detail}")
    return review


def reassign_case(db: Session, case: Case, reviewer: User, *, by, ip: str, now: datetime, note: str = "") -> Assignment:
    """Reassign the case's lead review (the common case for a coordinator)."""
    return reassign_review(db, case.lead_review, reviewer, by=by, ip=ip, now=now, note=note)


def complete_contributing_review(db: Session, review: Review, *, findings: str, by, ip: str, now: datetime) -> Review:
    """A contributing reviewer (e.g. the radiologist re-reading) records findings for the lead reviewer."""
    assignment = review.active_assignment
    if review.is_lead:
        raise InvalidInput("The lead review is completed by signing the opinion.")
    if assignment is None or assignment.reviewer_id != by.id or not assignment.is_accepted:
        raise PermissionDenied("Only the reviewer who accepted this review can complete it.")
    if review.case.status not in (CaseStatus.ASSIGNED, CaseStatus.IN_REVIEW):
        raise IllegalTransition(f"Case {review.case.reference} is {review.case.status_label.lower()}.")
    if not findings.strip():
        raise InvalidInput("Write your findings before completing the review.")
    review.findings = findings.strip()
    # The findings are kept as the review's section too (recorded, not signed), so the consensus and the
    # letter read every contribution in one place.
    record_free_text_section(db, review, review.findings, by=by, now=now)
    review.complete(now, by=by, ip=ip, audit=True)  # review.completed
    case = review.case
    sync_case_due(case)
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
