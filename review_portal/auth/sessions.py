"""Server-side sessions: the cookie carries a random token, the server decides whether it is still good.

Ends a session on logout, on "log out everywhere", on a password or MFA reset, after the idle timeout
and after the absolute timeout, whichever comes first.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from review_portal.auth.models import User, UserSession

# Writing last_seen_at on every image tile would turn reads into writes; a minute of slack is harmless
# against a 15-minute idle timeout.
TOUCH_EVERY = timedelta(seconds=60)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(db: Session, user: User, *, ip: str, user_agent: str, now: datetime) -> str:
    token = secrets.token_urlsafe(32)
    db.add(UserSession(token_sha256=_digest(token), user_id=user.id, created_at=now, last_seen_at=now,
                       source_ip=ip[:64], user_agent=(user_agent or "")[:255]))
    db.flush()
    return token


def resolve_with_user(db: Session, token: str | None, user_id: int, *, now: datetime, idle: timedelta,
                      absolute: timedelta, also=()) -> tuple[User, UserSession, tuple] | None:
    """Every request's login check in ONE statement: the active user and their live session for this token,
    plus `also`: scalar subqueries correlated to users.id that a higher layer wants with them (the app factory
    adds the unread-notification count, notifications.services.unread_count_of), returned as a tuple.

    Nothing is cached between requests: logout, "log out everywhere", deactivation and a role change are read
    from the database on the very next request, whichever host (or worker) serves it. Returns None when the
    user or the session is not (or no longer) good; a session past its idle or absolute timeout is ended."""
    if not token:
        return None
    row = db.execute(
        select(User, UserSession, *also).join(UserSession, UserSession.user_id == User.id)
        .where(UserSession.token_sha256 == _digest(token), User.id == user_id)
        # Always the database's values, never what an earlier statement of this thread's session loaded.
        .execution_options(populate_existing=True)
    ).first()
    if row is None:
        return None
    user, live, extra = row[0], row[1], tuple(row[2:])
    if not user.active or live.ended_at is not None:
        return None
    if now - live.last_seen_at > idle:
        end(live, now, "idle timeout")
        return None
    if now - live.created_at > absolute:
        end(live, now, "absolute timeout")
        return None
    if now - live.last_seen_at > TOUCH_EVERY:
        live.last_seen_at = now
    return user, live, extra


def end(row: UserSession, now: datetime, reason: str) -> None:
    row.ended_at = now
    row.end_reason = reason[:32]


def end_by_token(db: Session, token: str | None, now: datetime, reason: str = "logout") -> None:
    if not token:
        return
    row = db.scalar(select(UserSession).where(UserSession.token_sha256 == _digest(token)))
    if row is not None and row.ended_at is None:
        end(row, now, reason)


def end_all(db: Session, user: User, now: datetime, reason: str) -> int:
    result = db.execute(
        update(UserSession)
        .where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
        .values(ended_at=now, end_reason=reason[:32])
    )
    return result.rowcount or 0


def live_sessions(db: Session, user: User) -> list[UserSession]:
    return list(db.scalars(select(UserSession).where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
                           .order_by(UserSession.last_seen_at.desc())))
