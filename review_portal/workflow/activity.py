"""Activity in plain words: the case page's activity panel and the coordinator's activity search.

Read-only. The coordinator sees only the events of cases they may open today (cases.permissions.can_view_case:
the working queue, or an archived case under their own live emergency access). The administrator's full audit
log (/admin/audit) stays in workflow.oversight with the raw actions and the export.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from review_portal.audit.models import AuditEvent
from review_portal.audit.services import events_for_case, record_list_view
from review_portal.audit.wording import sentence
from review_portal.auth.models import User
from review_portal.cases import emergency
from review_portal.cases.lifecycle import TERMINAL_STATUSES
from review_portal.cases.models import Case, EmergencyAccess
from review_portal.cases.permissions import can_view_case

CASE_PANEL_LINES = 30


@dataclass(frozen=True)
class ActivityLine:
    at: datetime
    sentence: str
    case_id: int | None
    case_ref: str
    flagged: bool
    outcome: str


def _names(db: Session, events: list[AuditEvent]) -> dict[int, str]:
    ids = {e.actor_id for e in events if e.actor_id is not None}
    if not ids:
        return {}
    return {u.id: u.display_name for u in db.scalars(select(User).where(User.id.in_(ids)))}


def _lines(db: Session, events: list[AuditEvent], *, this_case: bool = False) -> list[ActivityLine]:
    names = _names(db, events)
    return [ActivityLine(at=e.at, case_id=e.case_id, case_ref=e.case_ref, flagged=e.flagged, outcome=e.outcome,
                         sentence=sentence(e.action, who=names.get(e.actor_id) or e.actor_email,
                                           case="this case" if this_case else (e.case_ref or "a case"),
                                           outcome=e.outcome))
            for e in events]


def case_activity(db: Session, case, limit: int = CASE_PANEL_LINES) -> list[ActivityLine]:
    """The newest events of one case, in words, for its page (staff only, like the raw panel was)."""
    return _lines(db, events_for_case(db, case.id, limit=limit), this_case=True)


def _cases_in_reach(user, now: datetime):
    """SQL for the ids of the cases staff may open now: emergency.in_staff_scope, or a live grant of their own."""
    in_scope = or_(Case.status.not_in([s.value for s in TERMINAL_STATUSES]), Case.closed_at.is_(None),
                   Case.closed_at >= now - emergency.archive_after())
    granted = select(EmergencyAccess.case_id).where(EmergencyAccess.user_id == user.id, EmergencyAccess.expires_at > now)
    return select(Case.id).where(or_(in_scope, Case.id.in_(granted)))


@dataclass(frozen=True)
class ActivityQuery:
    case: str = ""    # a case reference, or part of one
    person: str = ""  # part of a name or an e-mail address
    since: datetime | None = None
    until: datetime | None = None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_activity(db: Session, q: ActivityQuery, *, by, ip: str, now: datetime, limit: int = 100,
                    offset: int = 0) -> list[ActivityLine]:
    """Events of the cases `by` may open today, newest first, in plain words; the cases shown are audited."""
    query = select(AuditEvent).where(AuditEvent.case_id.in_(_cases_in_reach(by, now)))
    if q.case.strip():
        query = query.where(AuditEvent.case_ref.ilike(f"%{_escape_like(q.case.strip())}%", escape="\\"))
    if q.person.strip():
        like = f"%{_escape_like(q.person.strip())}%"
        named = select(User.id).where(or_(User.name.ilike(like, escape="\\"), User.email.ilike(like, escape="\\")))
        query = query.where(or_(AuditEvent.actor_email.ilike(like, escape="\\"), AuditEvent.actor_id.in_(named)))
    if q.since:
        query = query.where(AuditEvent.at >= q.since)
    if q.until:
        query = query.where(AuditEvent.at < q.until)
    events = list(db.scalars(query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).offset(offset).limit(limit)))
    # The query mirrors the rule; the rule itself has the last word on every case shown.
    cases = {c.id: c for c in db.scalars(select(Case).where(Case.id.in_({e.case_id for e in events})))}
    allowed = {case_id for case_id, case in cases.items() if can_view_case(by, case)}
    events = [e for e in events if e.case_id in allowed]
    record_list_view(db, [cases[e.case_id] for e in events], by=by, ip=ip, now=now, what="activity.viewed",
                     detail="coordinator's activity search")
    return _lines(db, events)
