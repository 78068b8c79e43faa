"""Writing and reading the audit trail. Records join the caller's transaction.

`record(...)` fills in what the request knows (user agent, request id, the reason of an emergency
access in force) so callers pass only what they know. Events that must outlive a failed request
(failed logins, denied accesses) pass survive_rollback=True: the request boundary writes them again
after rolling back everything else (db.survive_rollback).
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert, or_, select
from sqlalchemy.orm import Session

from review_portal import db as database
from review_portal.audit.models import AuditEvent


def _request_context() -> dict:
    try:
        from flask import g, has_request_context, request
    except ImportError:  # pragma: no cover
        return {}
    if not has_request_context():
        return {}
    return {
        "user_agent": (request.headers.get("User-Agent") or "")[:255],
        "request_id": getattr(g, "request_id", ""),
        "emergency_reason": getattr(g, "emergency_reason", ""),
    }


def _event_values(*, action: str, by, ip: str, now: datetime, case=None, object_type: str = "", object_id: object = "",
                  detail: str = "", outcome: str = "success", user_agent: str | None = None, reason: str = "",
                  flagged: bool = False, patient=None, ctx: dict | None = None) -> dict:
    """The column values of one event, what the request knows filled in."""
    ctx = _request_context() if ctx is None else ctx
    patient = patient if patient is not None else case
    emergency = ctx.get("emergency_reason", "") if case is not None else ""
    values = dict(
        at=now,
        actor_id=getattr(by, "id", None),
        actor_email=getattr(by, "email", "") or "",
        actor_role=str(getattr(by, "role", "") or ""),
        action=action[:64],
        case_id=getattr(case, "id", None),
        case_ref=(getattr(case, "reference", "") or "")[:32],
        patient_mrn=(getattr(patient, "patient_mrn", "") or "")[:64],
        patient_name=(getattr(patient, "patient_name", "") or "")[:200],
        object_type=object_type[:32],
        object_id=str(object_id or "")[:64],
        source_ip=(ip or "")[:64],
        user_agent=(user_agent if user_agent is not None else ctx.get("user_agent", ""))[:255],
        outcome=outcome[:16],
        reason=(reason or emergency)[:2000],
        flagged=bool(flagged or emergency),
        request_id=ctx.get("request_id", "")[:32],
        detail=(detail or "")[:2000],
    )
    return values


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
    outcome: str = "success",
    user_agent: str | None = None,
    reason: str = "",
    flagged: bool = False,
    patient=None,
    survive_rollback: bool = False,
) -> AuditEvent:
    values = _event_values(action=action, by=by, ip=ip, now=now, case=case, object_type=object_type,
                           object_id=object_id, detail=detail, outcome=outcome, user_agent=user_agent, reason=reason,
                           flagged=flagged, patient=patient)
    event = AuditEvent(**values)
    db.add(event)
    if survive_rollback:
        database.survive_rollback(db, lambda again: again.add(AuditEvent(**values)))
    return event


# Reading images: one event per user, series and login session while the reading goes on. A 200-slice
# scroll (and the browser's prefetch, thumbnails, key-image PNGs, cache revalidations) is one act of
# "viewing this patient's series", and a trail with a row per tile would bury everything else in it.
# The window slides: after IMAGE_VIEW_WINDOW without a recorded event, the next read records a new one,
# so the trail still shows roughly when and for how long a series was looked at.
IMAGE_VIEW_WINDOW = timedelta(minutes=15)


def record_image_view(db: Session, *, case, series_id: int, by, ip: str, now: datetime, session_key: str,
                      what: str = "slice") -> AuditEvent | None:
    """Audit a read of a series' pixels (`images.viewed`), at most once per (user, series, session, window).

    `session_key` is the server-side login session (never the cookie token). A read under emergency access
    is never folded into an earlier ordinary event: it gets its own flagged one. Returns the new event, or
    None when an event of the last IMAGE_VIEW_WINDOW already covers this read. Two reads racing in parallel
    may both record: the trail then has one event too many, never one too few.
    """
    detail = f"session {session_key or 'none'}"
    emergency = bool(_request_context().get("emergency_reason", ""))
    covered = db.scalar(
        select(AuditEvent.id).where(
            AuditEvent.action == "images.viewed", AuditEvent.actor_id == getattr(by, "id", None),
            AuditEvent.object_type == "series", AuditEvent.object_id == str(series_id),
            AuditEvent.case_id == case.id, AuditEvent.flagged.is_(emergency), AuditEvent.detail.startswith(detail + ";"),
            AuditEvent.at > now - IMAGE_VIEW_WINDOW,
        ).limit(1)
    )
    if covered is not None:
        return None
    return record(db, action="images.viewed", case=case, object_type="series", object_id=series_id, by=by, ip=ip,
                  now=now, detail=f"{detail}; first read: {what}; covers this series' images for "
                                   f"{int(IMAGE_VIEW_WINDOW.total_seconds() // 60)} min")


# Lists and pages that show patient data (the worklist, the API's referral list, a case's letters, the opinion
# page): one event per case shown, so the accounting of disclosures for an MRN finds the list too. A reload,
# paging back and forth or an API client polling is one act of "seeing these patients": within
# IMAGE_VIEW_WINDOW of an event for the same user, case and action, no new one is written.
LIST_VIEW_WINDOW = IMAGE_VIEW_WINDOW


def record_list_view(db: Session, cases, *, by, ip: str, now: datetime, what: str,
                     detail: str = "") -> int:
    """Audit that `by` was shown these cases (`what` is the action, e.g. "case.listed"): one event per case not
    already covered by an event of the last LIST_VIEW_WINDOW for the same user, case and action.

    One SELECT finds the covered cases and one batched INSERT writes the rest, however long the page. A read
    under emergency access is never folded into an ordinary event (and the other way round). Two loads racing in
    parallel may both record: one event too many, never one too few. Returns how many events were written."""
    shown = {}
    for case in cases:
        shown.setdefault(case.id, case)
    if not shown:
        return 0
    ctx = _request_context()
    emergency = bool(ctx.get("emergency_reason", ""))
    covered = set(db.scalars(
        select(AuditEvent.case_id).where(
            AuditEvent.action == what[:64], AuditEvent.actor_id == getattr(by, "id", None),
            AuditEvent.case_id.in_(list(shown)), AuditEvent.flagged.is_(emergency),
            AuditEvent.at > now - LIST_VIEW_WINDOW,
        ).distinct()
    ))
    window = f"covers this user's views of the case for {int(LIST_VIEW_WINDOW.total_seconds() // 60)} min"
    rows = [_event_values(action=what, by=by, ip=ip, now=now, case=case, object_type="case", object_id=case.id,
                          detail=f"{detail}; {window}" if detail else window, ctx=ctx)
            for case_id, case in shown.items() if case_id not in covered]
    if not rows:
        return 0
    # One INSERT for the whole page (an executemany), written at once like a flush; audit.chain seals it after commit.
    db.execute(insert(AuditEvent), rows)
    db.info["audit_dirty"] = True
    return len(rows)


def events_for_case(db: Session, case_id: int, limit: int = 200) -> list[AuditEvent]:
    return list(
        db.scalars(
            select(AuditEvent).where(AuditEvent.case_id == case_id).order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit)
        )
    )


@dataclass(frozen=True)
class AuditQuery:
    patient: str = ""
    user: str = ""
    case: str = ""
    action: str = ""
    since: datetime | None = None
    until: datetime | None = None
    flagged_only: bool = False
    outcome: str = ""


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search(db: Session, q: AuditQuery, *, limit: int = 200, offset: int = 0) -> list[AuditEvent]:
    query = select(AuditEvent)
    if q.patient.strip():
        term = q.patient.strip()
        like = f"%{_escape_like(term.lower())}%"
        query = query.where(or_(AuditEvent.patient_mrn == term, AuditEvent.patient_name.ilike(like, escape="\\")))
    if q.user.strip():
        query = query.where(AuditEvent.actor_email.ilike(f"%{_escape_like(q.user.strip().lower())}%", escape="\\"))
    if q.case.strip():
        term = q.case.strip()
        query = query.where(or_(AuditEvent.case_ref == term.upper(), AuditEvent.case_id == (int(term) if term.isdigit() else -1)))
    if q.action.strip():
        query = query.where(AuditEvent.action.startswith(q.action.strip(), autoescape=True))
    if q.outcome:
        query = query.where(AuditEvent.outcome == q.outcome)
    if q.since:
        query = query.where(AuditEvent.at >= q.since)
    if q.until:
        query = query.where(AuditEvent.at < q.until)
    if q.flagged_only:
        query = query.where(AuditEvent.flagged.is_(True))
    return list(db.scalars(query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).offset(offset).limit(limit)))


# Reads and deliveries of a patient's information: what HIPAA §164.528 calls disclosures and what a
# patient asking "who saw my record" wants to know.
DISCLOSURE_COLUMNS = ["time (UTC)", "user", "role", "action", "case", "object", "outcome", "source address",
                      "emergency reason", "event id", "event hash"]


def _csv_safe(value: str) -> str:
    # A cell starting with = + - @ would run as a formula in a spreadsheet (CSV injection).
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def disclosures_csv(db: Session, *, patient_mrn: str, since: datetime | None = None, until: datetime | None = None) -> str:
    query = select(AuditEvent).where(AuditEvent.patient_mrn == patient_mrn)
    if since:
        query = query.where(AuditEvent.at >= since)
    if until:
        query = query.where(AuditEvent.at < until)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(DISCLOSURE_COLUMNS)
    for e in db.scalars(query.order_by(AuditEvent.at, AuditEvent.id)):
        writer.writerow([_csv_safe(str(v)) for v in (
            e.at.strftime("%Y-%m-%d %H:%M:%S"), e.actor_email or "(anonymous)", e.actor_role, e.action, e.case_ref,
            f"{e.object_type} {e.object_id}".strip(), e.outcome, e.source_ip, e.reason, e.id, e.hash or "(unsealed)")])
    return out.getvalue()
