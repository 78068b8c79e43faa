"""Accounts, login, password changes, reset and invitation tokens."""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from review_portal.audit.services import record
from review_portal.auth import alerts, passwords, sessions, throttle
from review_portal.auth.models import AuthToken, Institution, Role, User
from review_portal.auth.throttle import LoginThrottled  # noqa: F401  (re-exported for the views)
from review_portal.db import keep_despite_failure, survive_rollback
from review_portal.errors import InvalidInput, PermissionDenied

MIN_PASSWORD_LENGTH = passwords.MIN_LENGTH


def check_password_policy(password: str, *, email: str = "", name: str = "") -> None:
    problems = passwords.policy_problems(password, email=email, name=name)
    if problems:
        raise InvalidInput(" ".join(problems))


def create_user(
    db: Session,
    *,
    email: str,
    name: str,
    password: str | None,
    role: str,
    now: datetime,
    institution: Institution | None = None,
    specialty: str | None = None,
    sites: list[str] | None = None,
    credentials: str = "",
) -> User:
    """password=None creates an invited account that cannot log in until the invitation is redeemed."""
    if password is not None:
        check_password_policy(password, email=email, name=name)
    if role not in set(Role):
        raise InvalidInput(f"Unknown role {role!r}.")
    if role == Role.REVIEWER and not specialty:
        raise InvalidInput("A reviewer needs a specialty.")
    email = email.strip().lower()
    if db.scalar(select(User).where(User.email == email)):
        raise InvalidInput("An account with this e-mail already exists.")
    user = User(
        email=email,
        name=name,
        credentials=credentials,
        # An empty hash never verifies (argon2 refuses it), so an invited account has no usable password.
        password_hash=passwords.hash_password(password) if password is not None else "",
        password_changed_at=now if password is not None else None,
        role=role,
        institution=institution,
        specialty=specialty,
        sites=list(sites or []),
        created_at=now,
    )
    db.add(user)
    db.flush()
    return user


def find_user(db: Session, email: str) -> User | None:
    return db.scalar(select(User).where(func.lower(User.email) == (email or "").strip().lower()))


def authenticate(db: Session, *, email: str, password: str, ip: str, now: datetime) -> User | None:
    """First factor. Return the user, or None. Unknown e-mail and wrong password look the same from outside,
    in answer and in time; a throttled account or address raises LoginThrottled without checking anything."""
    wait = throttle.blocked_for(db, email=email, ip=ip, now=now)
    if wait is not None:
        record(db, action="login.throttled", by=None, ip=ip, now=now, outcome="denied", survive_rollback=True,
               detail=f"email={email[:100]}; wait={int(wait.total_seconds())}s")
        raise LoginThrottled(wait)
    user = find_user(db, email)
    if user is None or not user.active:
        passwords.burn_time(password)
        login_failed(db, email=email, user=None, ip=ip, now=now, why="unknown or inactive account")
        return None
    if not passwords.verify_password(user.password_hash, password):
        login_failed(db, email=email, user=user, ip=ip, now=now, why="wrong password")
        return None
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
        record(db, action="password.rehashed", by=user, ip=ip, now=now, object_type="user", object_id=user.id)
    return user


def login_failed(db: Session, *, email: str, user: User | None, ip: str, now: datetime, why: str) -> None:
    """Count and audit a failure. Written so it survives the rollback of the failed request."""
    throttle.failed(db, email=email, ip=ip, now=now)
    # The request answers 401 but commits this count while still holding the account's throttle lock (see
    # db.keep_despite_failure); should it fail some other way, the replay after the rollback still counts it.
    keep_despite_failure(db)
    survive_rollback(db, lambda again: throttle.failed(again, email=email, ip=ip, now=now))
    record(db, action="login.failed", by=user, ip=ip, now=now, outcome="failed", survive_rollback=True,
           detail=f"email={email[:100]}; {why}")


def finish_login(db: Session, user: User, *, ip: str, user_agent: str, now: datetime, method: str) -> str:
    """Both factors passed: clear the account's failures, start a server-side session, return its token."""
    throttle.succeeded(db, email=user.email)
    token = sessions.start(db, user, ip=ip, user_agent=user_agent, now=now)
    record(db, action="login.succeeded", by=user, ip=ip, now=now, object_type="user", object_id=user.id,
           detail=f"second factor={method}")
    return token


def check_password(user: User, password: str) -> bool:
    return passwords.verify_password(user.password_hash, password)


def set_password(db: Session, user: User, new_password: str, *, by: User | None, ip: str, now: datetime, why: str,
                 alert: bool = True) -> None:
    check_password_policy(new_password, email=user.email, name=user.name)
    user.password_hash = passwords.hash_password(new_password)
    user.password_changed_at = now
    ended = sessions.end_all(db, user, now, "password changed")
    record(db, action="password.changed", by=by or user, ip=ip, now=now, object_type="user", object_id=user.id,
           detail=f"{why}; sessions ended={ended}")
    if alert:
        alerts.credential_changed(db, user, "Your portal password was changed", ip=ip, now=now, by=by)


def change_password(db: Session, user: User, *, current: str, new: str, ip: str, now: datetime) -> None:
    if not check_password(user, current):
        record(db, action="password.change_refused", by=user, ip=ip, now=now, outcome="failed", survive_rollback=True,
               object_type="user", object_id=user.id)
        raise InvalidInput("Your current password is not correct.")
    set_password(db, user, new, by=user, ip=ip, now=now, why="changed by the user")


# --- Single-use, expiring tokens ----------------------------------------------------------------------

TOKEN_TTL = {"reset": timedelta(hours=1), "invite": timedelta(days=3)}


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(db: Session, user: User, purpose: str, *, now: datetime) -> str:
    # A new token supersedes older unused ones of the same purpose.
    for old in db.scalars(select(AuthToken).where(AuthToken.user_id == user.id, AuthToken.purpose == purpose,
                                                  AuthToken.used_at.is_(None))):
        old.used_at = now
    token = secrets.token_urlsafe(32)
    db.add(AuthToken(user_id=user.id, purpose=purpose, token_sha256=_digest(token), created_at=now,
                     expires_at=now + TOKEN_TTL[purpose]))
    db.flush()
    return token


def token_user(db: Session, token: str, purpose: str, *, now: datetime) -> tuple[AuthToken, User] | None:
    row = db.scalar(select(AuthToken).where(AuthToken.token_sha256 == _digest(token or "")))
    if row is None or row.purpose != purpose or row.used_at is not None or row.expires_at <= now:
        return None
    user = db.get(User, row.user_id)
    if user is None or not user.active:
        return None
    return row, user


def request_password_reset(db: Session, email: str, *, ip: str, now: datetime) -> tuple[User, str] | None:
    """A token for an existing, active account, or None. The caller answers the same either way."""
    user = find_user(db, email)
    if user is None or not user.active:
        record(db, action="password.reset_requested", by=None, ip=ip, now=now, outcome="failed",
               detail=f"email={email[:100]}; no such account")
        return None
    token = issue_token(db, user, "reset", now=now)
    record(db, action="password.reset_requested", by=user, ip=ip, now=now, object_type="user", object_id=user.id)
    return user, token


def redeem_token(db: Session, token: str, purpose: str, new_password: str, *, ip: str, now: datetime) -> User:
    found = token_user(db, token, purpose, now=now)
    if found is None:
        record(db, action=f"{purpose}.token_refused", by=None, ip=ip, now=now, outcome="denied", survive_rollback=True)
        raise InvalidInput("This link has expired or was already used. Ask for a new one.")
    row, user = found
    # Choosing the first password of an invited account changes nothing the person had: no alert for that.
    set_password(db, user, new_password, by=user, ip=ip, now=now,
                 why="password reset by e-mail" if purpose == "reset" else "invitation accepted",
                 alert=purpose == "reset")
    row.used_at = now
    return user


def invite_user(db: Session, *, email: str, name: str, role: str, by: User, ip: str, now: datetime,
                institution: Institution | None = None, specialty: str | None = None,
                sites: list[str] | None = None, credentials: str = "") -> tuple[User, str]:
    user = create_user(db, email=email, name=name, password=None, role=role, now=now, institution=institution,
                       specialty=specialty, sites=sites, credentials=credentials)
    token = issue_token(db, user, "invite", now=now)
    record(db, action="user.invited", by=by, ip=ip, now=now, object_type="user", object_id=user.id,
           detail=f"role={role}")
    return user, token


def logout_everywhere(db: Session, user: User, *, ip: str, now: datetime) -> int:
    ended = sessions.end_all(db, user, now, "logged out everywhere")
    record(db, action="logout.everywhere", by=user, ip=ip, now=now, object_type="user", object_id=user.id,
           detail=f"sessions ended={ended}")
    alerts.credential_changed(db, user, f"All your portal sessions ({ended}) were logged out", ip=ip, now=now)
    return ended


# --- Administrators: role and access ----------------------------------------------------------------------

def _not_yourself(user: User, by: User, what: str) -> None:
    # An administrator demoting or locking out themselves could leave the portal with nobody to run it.
    if user.id == by.id:
        raise PermissionDenied(f"You cannot {what} your own account; ask another administrator.")


def change_role(db: Session, user: User, role: str, *, by: User, ip: str, now: datetime,
                specialty: str | None = None) -> int:
    """A new role is a change of privilege: every session of the account ends, so nothing keeps running with
    what the old role could see (ASVS 3.3.x). Returns the number of sessions ended."""
    _not_yourself(user, by, "change the role of")
    if role not in set(Role):
        raise InvalidInput(f"Unknown role {role!r}.")
    if role == user.role:
        raise InvalidInput(f"{user.email} already has this role.")
    if role == Role.REVIEWER and not (specialty or user.specialty):
        raise InvalidInput("A reviewer needs a specialty: choose one.")
    old_label = user.role_label
    old = user.role
    user.role = role
    if specialty:
        user.specialty = specialty
    ended = sessions.end_all(db, user, now, "role changed")
    record(db, action="user.role_changed", by=by, ip=ip, now=now, object_type="user", object_id=user.id,
           detail=f"{old} -> {role}; sessions ended={ended}")
    alerts.credential_changed(db, user, f"Your portal role was changed from {old_label} to {user.role_label}",
                              ip=ip, now=now, by=by)
    return ended


def set_active(db: Session, user: User, active: bool, *, by: User, ip: str, now: datetime) -> int:
    """Deactivate (every session ends at once, API tokens stop working) or reactivate an account."""
    _not_yourself(user, by, "deactivate or reactivate")
    if user.active == active:
        raise InvalidInput(f"{user.email} is already {'active' if active else 'deactivated'}.")
    user.active = active
    ended = 0 if active else sessions.end_all(db, user, now, "account deactivated")
    record(db, action="user.reactivated" if active else "user.deactivated", by=by, ip=ip, now=now,
           object_type="user", object_id=user.id, detail=f"sessions ended={ended}")
    alerts.credential_changed(db, user, f"Your portal account was {'reactivated' if active else 'deactivated'}",
                              ip=ip, now=now, by=by)
    return ended


def log_out(db: Session, session_token: str | None, *, by: User, ip: str, now: datetime) -> None:
    """End this login session (server side) and say so in the trail; the view clears the cookie."""
    sessions.end_by_token(db, session_token, now, "logout")
    record(db, action="logout", by=by, ip=ip, now=now, object_type="user", object_id=by.id)


def end_sessions_of(db: Session, user: User, *, by: User, ip: str, now: datetime) -> int:
    """An administrator logs a person out everywhere (a lost laptop, a leaver). Returns how many ended."""
    if by.role != Role.ADMIN:
        raise PermissionDenied("Only an administrator can end another person's sessions.")
    n = sessions.end_all(db, user, now, "ended by an administrator")
    record(db, action="sessions.ended_by_admin", by=by, ip=ip, now=now, object_type="user", object_id=user.id,
           detail=f"sessions={n}")
    return n


def link_refused(db: Session, purpose: str, *, ip: str, now: datetime) -> None:
    """An expired, used or forged reset/invitation link: recorded even though the request fails."""
    record(db, action=f"{purpose}.token_refused", by=None, ip=ip, now=now, outcome="denied", survive_rollback=True)
