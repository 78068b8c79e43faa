"""Writing and reading the audit trail. Records join the caller's transaction."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from review_portal.audit.models import AuditEvent


def record(
    db: Session,
    *,
    action: str,
    by,
    ip: str,
    now: datetime,
    case=None,
    object_type: str = "",
    object_id: object = "",
    detail: str = "",
) -> AuditEvent:
    event = AuditEvent(
        at=now,
        actor_id=getattr(by, "id", None),
        actor_email=getattr(by, "email", "") or "",
        action=action,
        case_id=getattr(case, "id", None),
        object_type=object_type,
        object_id=str(object_id or ""),
        source_ip=ip or "",
        detail=detail[:2000],
    )
    db.add(event)
    return event


def events_for_case(db: Session, case_id: int, limit: int = 200) -> list[AuditEvent]:
    return list(
        db.scalars(
            select(AuditEvent).where(AuditEvent.case_id == case_id).order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit)
        )
    )
