"""Deadlines of reviews: holds that pause them, the worklist's time-left rows, and the periodic check that flags and chases."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from review_portal import deadlines
from review_portal.assignment.lifecycle import OPEN_REVIEW_STATUSES, AssignmentStatus, ReviewStatus
from review_portal.assignment.models import Assignment, Escalation, Review
from review_portal.audit.services import record
from review_portal.cases.lifecycle import OPEN_STATUSES
from review_portal.cases.models import Case
from review_portal.notifications.services import notify, notify_staff


def sync_case_due(case: Case) -> None:
    open_dues = [r.due_at for r in case.reviews if r.is_open]
    if open_dues:
        case.due_at = min(open_dues)


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
    sync_case_due(case)


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


def open_reviews(db: Session) -> list[Review]:
    return list(db.scalars(
        select(Review).join(Case, Case.id == Review.case_id)
        .where(Review.status.in_([s.value for s in OPEN_REVIEW_STATUSES]), Case.status.in_([s.value for s in OPEN_STATUSES]))
        .order_by(Review.due_at, Review.id)
    ))


def review_row(review: Review, policy: deadlines.SlaPolicy, now: datetime) -> ReviewRow:
    case = review.case
    # While on hold the clock is stopped at the moment the hold began.
    at = case.hold_started_at or now
    left = deadlines.time_left(review.due_at, at, policy.holidays)
    state = "on_hold" if case.on_hold else deadlines.sla_state(left, policy.near_due_hours)
    return ReviewRow(review, case, left, state)


SLA_STATE_ORDER = {"overdue": 0, "near_due": 1, "on_time": 2, "on_hold": 3}


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
    for review in open_reviews(db):
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
        .where(Assignment.status == AssignmentStatus.OFFERED.value, Review.status == ReviewStatus.OFFERED.value,
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
