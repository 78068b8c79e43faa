"""Disciplines a referral can ask for: kept as data an administrator edits (list, add, rename, deactivate).

Services flush, never commit, and audit every change in the same transaction.
"""
from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from review_portal.audit.services import record
from review_portal.auth.models import SPECIALTY_LABELS, Role, User
from review_portal.cases.models import SEED_DISCIPLINES, Discipline
from review_portal.errors import InvalidInput, NotFound, PermissionDenied

KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{1,31}$")


def all_disciplines(db: Session) -> list[Discipline]:
    return list(db.scalars(select(Discipline).order_by(Discipline.label, Discipline.id)))


def active_disciplines(db: Session) -> list[Discipline]:
    return [d for d in all_disciplines(db) if d.active]


def by_key(db: Session) -> dict[str, Discipline]:
    return {d.key: d for d in all_disciplines(db)}


def active_discipline(db: Session, key: str) -> Discipline:
    """The active discipline with this key, or InvalidInput."""
    found = db.scalar(select(Discipline).where(Discipline.key == key, Discipline.active.is_(True)))
    if found is None:
        raise InvalidInput("Choose one of the disciplines offered.")
    return found


def seed_disciplines(db: Session) -> None:
    """Add the standard disciplines that are missing (a fresh schema made without the migrations)."""
    have = set(db.scalars(select(Discipline.key)))
    for key, label, specialty in SEED_DISCIPLINES:
        if key not in have:
            db.add(Discipline(key=key, label=label, specialty=specialty, active=True))
    db.flush()


def _admin(by: User) -> None:
    if by.role != Role.ADMIN:
        raise PermissionDenied("Only an administrator can change the disciplines.")


def _label(label: str) -> str:
    label = " ".join((label or "").split())
    if not label or len(label) > 100:
        raise InvalidInput("Give the discipline a name of at most 100 characters.")
    return label


def add_discipline(db: Session, *, key: str, label: str, specialty: str, by: User, ip: str, now: datetime) -> Discipline:
    _admin(by)
    key = (key or "").strip().lower()
    if not KEY_PATTERN.match(key):
        raise InvalidInput("The key is 2 to 32 lower-case letters, digits or underscores, starting with a letter.")
    if specialty not in SPECIALTY_LABELS:
        raise InvalidInput("Choose the reviewer specialty this discipline needs.")
    label = _label(label)
    if db.scalar(select(Discipline.id).where(Discipline.key == key)) is not None:
        raise InvalidInput(f"A discipline with the key {key!r} exists already.")
    discipline = Discipline(key=key, label=label, specialty=specialty, active=True)
    db.add(discipline)
    db.flush()
    record(db, action="discipline.added", by=by, ip=ip, now=now, object_type="discipline", object_id=discipline.id,
           detail=f"{key}: {label}; needs {specialty}")
    return discipline


def _get(db: Session, discipline_id: int) -> Discipline:
    discipline = db.get(Discipline, discipline_id) if 0 < discipline_id < 2**31 else None
    if discipline is None:
        raise NotFound("No such discipline.")
    return discipline


def rename_discipline(db: Session, discipline_id: int, *, label: str, by: User, ip: str, now: datetime) -> Discipline:
    _admin(by)
    discipline = _get(db, discipline_id)
    label, before = _label(label), discipline.label
    if label != before:
        discipline.label = label
        record(db, action="discipline.renamed", by=by, ip=ip, now=now, object_type="discipline",
               object_id=discipline.id, detail=f"{discipline.key}: {before} → {label}")
    return discipline


def set_discipline_active(db: Session, discipline_id: int, *, active: bool, by: User, ip: str,
                          now: datetime) -> Discipline:
    """Deactivate (no longer offered to referrers; existing cases keep it) or reactivate a discipline."""
    _admin(by)
    discipline = _get(db, discipline_id)
    if discipline.active != active:
        discipline.active = active
        record(db, action="discipline.activated" if active else "discipline.deactivated", by=by, ip=ip, now=now,
               object_type="discipline", object_id=discipline.id, detail=discipline.key)
    return discipline
