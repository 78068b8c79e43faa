"""Telling people what needs them: a row in the portal, and the same short text by e-mail.

Texts name the case reference and the event only; the patient stays inside the portal, behind login.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from review_portal.auth.models import Role, User
from review_portal.notifications.mail import Outgoing, queue
from review_portal.notifications.models import KINDS, Notification


def case_link(case) -> str:
    return f"/cases/{case.id}"


def notify(db: Session, user, *, kind: str, case=None, text: str, now: datetime, link: str | None = None) -> Notification:
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}")
    link = link if link is not None else (case_link(case) if case is not None else "/notifications")
    note = Notification(user_id=user.id, case_id=getattr(case, "id", None), kind=kind, text=text[:300], link=link,
                        created_at=now)
    db.add(note)
    base = db.info.get("base_url", "")
    reference = f"[{case.reference}] " if case is not None else ""
    queue(db, Outgoing(
        to=user.email,
        subject=f"{reference}{KINDS[kind]}",
        body=f"{text}\n\nOpen it in the Second Opinion Portal (login required):\n{base}{link}\n\n"
             "This message deliberately contains no patient details.\n",
    ))
    return note


def notify_staff(db: Session, *, kind: str, case=None, text: str, now: datetime, link: str | None = None) -> None:
    for user in db.scalars(select(User).where(User.role == Role.COORDINATOR, User.active.is_(True)).order_by(User.id)):
        notify(db, user, kind=kind, case=case, text=text, now=now, link=link)


def unread_count_of(user_id_column):
    """The unread count as a scalar subquery correlated to `user_id_column` (users.id), so the app factory reads it
    in the same statement as the user and their session: no cache, so nothing another host would have to clear.
    Counted on the index ix_notifications_user_unread (user_id, read_at)."""
    return (select(func.count()).select_from(Notification)
            .where(Notification.user_id == user_id_column, Notification.read_at.is_(None))
            .correlate(user_id_column.table).scalar_subquery())


def unread_count(db: Session, user) -> int:
    return db.scalar(select(func.count()).select_from(Notification)
                     .where(Notification.user_id == user.id, Notification.read_at.is_(None))) or 0


def notifications_for(db: Session, user, limit: int = 100) -> list[Notification]:
    return list(db.scalars(select(Notification).where(Notification.user_id == user.id)
                           .order_by(Notification.created_at.desc(), Notification.id.desc()).limit(limit)))


def open_notification(db: Session, user, notification_id: int, *, now: datetime) -> Notification | None:
    note = db.get(Notification, notification_id)
    if note is None or note.user_id != user.id:
        return None
    if note.read_at is None:
        note.read_at = now
    return note


def mark_all_read(db: Session, user, *, now: datetime) -> None:
    db.execute(update(Notification).where(Notification.user_id == user.id, Notification.read_at.is_(None))
               .values(read_at=now))
