"""Outcome follow-ups: created on schedule after the first letter, answered by the referring physician.

`request_due_outcomes` is what `flask outcomes-due` runs (from cron, e.g. daily): every case whose
first letter was delivered at least OUTCOME_FOLLOW_UP_DAYS ago and has no follow-up yet gets exactly
one, with a notification in the portal and by e-mail. The answers feed the figures dashboard.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from review_portal.audit.services import record
from review_portal.cases.models import Case
from review_portal.errors import InvalidInput, NotFound, PermissionDenied
from review_portal.letters.models import Letter
from review_portal.notifications.services import notify
from review_portal.opinions.models import Opinion
from review_portal.opinions.models import opinion_differed as differed
from review_portal.outcomes.models import CONFIRMED_BY, CONFIRMED_OPINION, RECOMMENDATION_FOLLOWED, OutcomeFollowUp

MAX_DIAGNOSIS = 4000


def opinion_differed(opinion: Opinion | None) -> bool:
    if opinion is None:
        return False
    return differed(opinion.diagnosis_concordance, opinion.plan_concordance, opinion.radpeer_score)


def outcome_link(case) -> str:
    return f"/cases/{case.id}/outcome"


def request_due_outcomes(db: Session, *, days: int, now: datetime, by=None, ip: str = "cli") -> list[OutcomeFollowUp]:
    """Create the follow-ups that are due at `now`, once per case; returns the new ones."""
    if days < 0:
        raise InvalidInput("OUTCOME_FOLLOW_UP_DAYS cannot be negative.")
    cutoff = now - timedelta(days=days)
    already = select(OutcomeFollowUp.case_id)
    rows = db.execute(
        select(Case, Letter.delivered_at)
        .join(Letter, (Letter.case_id == Case.id) & (Letter.version == 1))
        .where(Letter.delivered_at.is_not(None), Letter.delivered_at <= cutoff, Case.id.not_in(already))
        .order_by(Letter.delivered_at, Case.id)
    ).all()
    created = []
    for case, delivered_at in rows:
        opinion = db.scalar(select(Opinion).where(Opinion.case_id == case.id))
        follow_up = OutcomeFollowUp(case_id=case.id, referring_id=case.referring_id,
                                    due_at=delivered_at + timedelta(days=days), requested_at=now,
                                    opinions_differed=opinion_differed(opinion))
        db.add(follow_up)
        db.flush()
        record(db, action="outcome.requested", by=by, ip=ip, now=now, case=case, object_type="outcome",
               object_id=follow_up.id, detail=f"{days} days after the letter of {delivered_at:%Y-%m-%d}")
        notify(db, case.referring, kind="outcome_request", case=case, now=now, link=outcome_link(case),
               text=f"What happened after the second opinion on case {case.reference}? Three short questions "
                    "help the service learn whether its opinions held.")
        created.append(follow_up)
    return created


def follow_up_for_case(db: Session, case_id: int) -> OutcomeFollowUp | None:
    return db.scalar(select(OutcomeFollowUp).where(OutcomeFollowUp.case_id == case_id))


def get_follow_up_for(db: Session, user, case) -> OutcomeFollowUp:
    """The referring physician's own follow-up on `case` (already loaded through the case permission)."""
    follow_up = follow_up_for_case(db, case.id)
    if follow_up is None:
        raise NotFound("No outcome follow-up has been asked on this case yet.")
    if follow_up.referring_id != user.id:
        raise PermissionDenied("Only the referring physician answers the outcome follow-up.")
    return follow_up


def follow_ups_for(db: Session, user) -> list[OutcomeFollowUp]:
    return list(db.scalars(select(OutcomeFollowUp).where(OutcomeFollowUp.referring_id == user.id)
                           .order_by(OutcomeFollowUp.answered_at.is_not(None), OutcomeFollowUp.requested_at.desc())))


@dataclass(frozen=True)
class OutcomeAnswer:
    recommendation_followed: str
    final_diagnosis: str
    confirmed_opinion: str = ""
    confirmed_by: str = ""
    confirmed_by_note: str = ""


def record_outcome(db: Session, follow_up: OutcomeFollowUp, answer: OutcomeAnswer, *, by, ip: str,
                   now: datetime) -> OutcomeFollowUp:
    """Store (or correct) the referrer's answer. Which opinion was confirmed is asked only where they differed."""
    if by.id != follow_up.referring_id:
        raise PermissionDenied("Only the referring physician answers the outcome follow-up.")
    problems = []
    if answer.recommendation_followed not in RECOMMENDATION_FOLLOWED:
        problems.append("Say whether the recommendation was followed (fully, partly or not).")
    diagnosis = (answer.final_diagnosis or "").strip()
    if not diagnosis:
        problems.append("Give the final diagnosis (\"not established yet\" is an answer).")
    elif len(diagnosis) > MAX_DIAGNOSIS:
        problems.append(f"Keep the final diagnosis under {MAX_DIAGNOSIS} characters.")
    confirmed, confirmed_by, note = "", "", ""
    if follow_up.opinions_differed:
        confirmed = answer.confirmed_opinion
        if confirmed not in CONFIRMED_OPINION:
            problems.append("Say which opinion was confirmed (or that it is not known yet).")
        elif confirmed != "unknown":
            confirmed_by = answer.confirmed_by
            if confirmed_by not in CONFIRMED_BY:
                problems.append("Say how it was confirmed: pathology, follow-up or other.")
            note = " ".join((answer.confirmed_by_note or "").split())
            if confirmed_by == "other" and not note:
                problems.append("Say briefly how it was confirmed.")
            if len(note) > 500:
                problems.append("Keep the note on how it was confirmed under 500 characters.")
    if problems:
        raise InvalidInput(" ".join(problems))
    amended = follow_up.is_answered
    follow_up.recommendation_followed = answer.recommendation_followed
    follow_up.final_diagnosis = diagnosis
    follow_up.confirmed_opinion = confirmed
    follow_up.confirmed_by = confirmed_by
    follow_up.confirmed_by_note = note
    follow_up.answered_at = now
    follow_up.answered_by_id = by.id
    db.flush()
    record(db, action="outcome.amended" if amended else "outcome.answered", by=by, ip=ip, now=now,
           case=follow_up.case, object_type="outcome", object_id=follow_up.id,
           detail=f"followed={follow_up.recommendation_followed}; confirmed={confirmed or 'n/a'}; by={confirmed_by or 'n/a'}")
    return follow_up
