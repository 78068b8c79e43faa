"""The coordinator's dashboard: open reviews by deadline state, the triage queue, escalations and letters awaiting receipt."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from review_portal import deadlines
from review_portal.assignment.models import (
    Escalation,
)
from review_portal.assignment.sla import SLA_STATE_ORDER, open_reviews, review_row
from review_portal.letters.services import letters_awaiting_acknowledgement


def dashboard(db: Session, *, policy: deadlines.SlaPolicy, now: datetime) -> dict:
    rows = [review_row(r, policy, now) for r in open_reviews(db)]
    rows.sort(key=lambda row: (SLA_STATE_ORDER[row.state], row.seconds_left, row.review.id))
    counts = {state: sum(1 for row in rows if row.state == state) for state in SLA_STATE_ORDER}
    triage = [row for row in rows if row.review.is_triage]
    counts["triage"] = len(triage)
    counts["offered"] = sum(1 for row in rows if row.review.is_offered)
    escalations = list(db.scalars(select(Escalation).order_by(Escalation.at.desc(), Escalation.id.desc()).limit(15)))

    awaiting_receipt = letters_awaiting_acknowledgement(db, now=now)
    counts["awaiting_receipt"] = len(awaiting_receipt)
    return {"rows": rows, "triage": triage, "counts": counts, "escalations": escalations,
            "awaiting_receipt": awaiting_receipt}
