"""Emergency access ("break the glass").

Coordinators and administrators normally see the working queue: open cases, and cases that ended (closed,
withdrawn or cancelled: cases.lifecycle.TERMINAL_STATUSES) within ARCHIVE_AFTER_DAYS. Opening an older (archived)
case needs a stated reason; the grant lasts EMERGENCY_ACCESS_MINUTES, every event under it carries the reason and
is flagged, and the grant waits in a review list until a privacy officer (administrator) marks it reviewed.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from review_portal.audit.services import record
from review_portal.auth.permissions import is_staff
from review_portal.cases.lifecycle import TERMINAL_STATUSES
from review_portal.cases.models import EmergencyAccess
from review_portal.errors import InvalidInput, PermissionDenied

DEFAULT_ARCHIVE_AFTER = timedelta(days=30)
DEFAULT_GRANT = timedelta(minutes=60)
MIN_REASON = 15


class EmergencyAccessRequired(PermissionDenied):
    """Raised for staff only (they already know the case exists from the queue)."""

    def __init__(self, case):
        super().__init__(f"Case {case.reference} is archived and outside your normal access. "
                         "You may open it in an emergency by stating why; this is recorded and reviewed.")
        self.case = case


def _config(name: str, default):
    try:
        from flask import current_app

        value = current_app.config.get(name)
    except RuntimeError:
        value = None
    return default if value is None else value


def archive_after() -> timedelta:
    return timedelta(days=_config("ARCHIVE_AFTER_DAYS", DEFAULT_ARCHIVE_AFTER.days))


def grant_length() -> timedelta:
    return timedelta(minutes=_config("EMERGENCY_ACCESS_MINUTES", int(DEFAULT_GRANT.total_seconds() // 60)))


def in_staff_scope(case, now: datetime) -> bool:
    if case.status not in TERMINAL_STATUSES or case.closed_at is None:
        return True
    return now - case.closed_at <= archive_after()


def active_grant(user, case, now: datetime) -> EmergencyAccess | None:
    db = object_session(case)
    if db is None:
        return None
    return db.scalar(select(EmergencyAccess).where(
        EmergencyAccess.user_id == user.id, EmergencyAccess.case_id == case.id, EmergencyAccess.expires_at > now,
    ).order_by(EmergencyAccess.id.desc()).limit(1))


def note_in_request(grant: EmergencyAccess) -> None:
    """Every audit event of this request will carry the grant's reason and be flagged."""
    try:
        from flask import g, has_request_context
    except ImportError:  # pragma: no cover
        return
    if has_request_context():
        g.emergency_reason = grant.reason


def break_glass(db: Session, case, *, reason: str, by, ip: str, now: datetime) -> EmergencyAccess:
    if not is_staff(by):
        raise PermissionDenied("Only coordinators and administrators can use emergency access.")
    reason = (reason or "").strip()
    if len(reason) < MIN_REASON:
        raise InvalidInput(f"State the reason for emergency access in at least {MIN_REASON} characters.")
    grant = EmergencyAccess(user_id=by.id, case_id=case.id, case_ref=case.reference, reason=reason[:2000],
                            granted_at=now, expires_at=now + grant_length())
    db.add(grant)
    record(db, action="emergency_access.granted", by=by, ip=ip, now=now, case=case, object_type="case",
           object_id=case.id, reason=reason, flagged=True, detail=f"until {grant.expires_at:%Y-%m-%d %H:%M} UTC")
    db.flush()
    return grant


def unreviewed(db: Session, limit: int = 100) -> list[EmergencyAccess]:
    return list(db.scalars(select(EmergencyAccess).where(EmergencyAccess.reviewed_at.is_(None))
                           .order_by(EmergencyAccess.granted_at.desc()).limit(limit)))


def mark_reviewed(db: Session, grant: EmergencyAccess, *, note: str, by, ip: str, now: datetime) -> None:
    if grant.reviewed_at is not None:
        raise InvalidInput("This emergency access was already reviewed.")
    if grant.user_id == by.id:
        raise PermissionDenied("Someone else must review your own emergency access.")
    grant.reviewed_at, grant.reviewed_by_id, grant.review_note = now, by.id, (note or "").strip()[:2000]
    record(db, action="emergency_access.reviewed", by=by, ip=ip, now=now, object_type="emergency_access",
           object_id=grant.id, detail=f"case={grant.case_ref}; note={grant.review_note[:200]}")
