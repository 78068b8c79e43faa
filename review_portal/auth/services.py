"""Accounts and login."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from review_portal.audit.services import record
from review_portal.auth import passwords
from review_portal.auth.models import Institution, Role, User
from review_portal.errors import InvalidInput

MIN_PASSWORD_LENGTH = 12


def create_user(
    db: Session,
    *,
    email: str,
    name: str,
    password: str,
    role: str,
    now: datetime,
    institution: Institution | None = None,
    specialty: str | None = None,
    sites: list[str] | None = None,
    credentials: str = "",
) -> User:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"Passwords must be at least {MIN_PASSWORD_LENGTH} characters.")
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
        password_hash=passwords.hash_password(password),
        role=role,
        institution=institution,
        specialty=specialty,
        sites=list(sites or []),
        created_at=now,
    )
    db.add(user)
    db.flush()
    return user


def authenticate(db: Session, *, email: str, password: str, ip: str, now: datetime) -> User | None:
    """Return the user, or None. Unknown e-mail and wrong password look the same from outside."""
    user = db.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))
    if user is None or not user.active:
        passwords.burn_time(password)
        record(db, action="login.failed", by=None, ip=ip, now=now, detail=f"email={email[:100]}")
        return None
    if not passwords.verify_password(user.password_hash, password):
        record(db, action="login.failed", by=user, ip=ip, now=now)
        return None
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    record(db, action="login.succeeded", by=user, ip=ip, now=now)
    return user


def check_password(user: User, password: str) -> bool:
    return passwords.verify_password(user.password_hash, password)
