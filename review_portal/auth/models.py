"""People and the institutions they work for."""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from flask_login import UserMixin
from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from review_portal.db import Base, UTCDateTime


class Role(StrEnum):
    REFERRING = "referring"
    REVIEWER = "reviewer"
    COORDINATOR = "coordinator"
    ADMIN = "admin"


ROLE_LABELS = {
    Role.REFERRING: "Referring physician",
    Role.REVIEWER: "Reviewer",
    Role.COORDINATOR: "Coordinator",
    Role.ADMIN: "Administrator",
}


class Specialty(StrEnum):
    MEDICAL_ONCOLOGY = "medical_oncology"
    RADIATION_ONCOLOGY = "radiation_oncology"
    SURGICAL_ONCOLOGY = "surgical_oncology"
    RADIOLOGY = "radiology"
    PATHOLOGY = "pathology"


SPECIALTY_LABELS = {
    Specialty.MEDICAL_ONCOLOGY: "Medical oncology",
    Specialty.RADIATION_ONCOLOGY: "Radiation oncology",
    Specialty.SURGICAL_ONCOLOGY: "Surgical oncology",
    Specialty.RADIOLOGY: "Radiology",
    Specialty.PATHOLOGY: "Pathology",
}


class Institution(Base):
    __tablename__ = "institutions"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    address: Mapped[str] = mapped_column(String(500), default="")


class User(UserMixin, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(255), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    credentials: Mapped[str] = mapped_column(String(100), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20), index=True)
    institution_id: Mapped[int | None] = mapped_column(ForeignKey("institutions.id"))
    specialty: Mapped[str | None] = mapped_column(String(40))
    # Cancer sites a reviewer accepts, as codes from cases.models.CANCER_SITES.
    sites: Mapped[list[str]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # TOTP (RFC 6238). The secret is only stored once the user has proved their app produces codes.
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The last 30-second time step accepted: a code from that step or earlier is a replay.
    totp_last_step: Mapped[int | None] = mapped_column(Integer)

    institution: Mapped[Institution | None] = relationship()

    @property
    def is_active(self) -> bool:  # flask-login refuses inactive accounts
        return self.active

    @property
    def role_label(self) -> str:
        return ROLE_LABELS.get(self.role, self.role)

    @property
    def specialty_label(self) -> str:
        return SPECIALTY_LABELS.get(self.specialty, "") if self.specialty else ""

    @property
    def display_name(self) -> str:
        return f"{self.name}, {self.credentials}" if self.credentials else self.name

    def has_role(self, *roles: str) -> bool:
        return self.role in roles

    @property
    def mfa_enabled(self) -> bool:
        return bool(self.totp_secret and self.totp_enabled_at)

    @property
    def mfa_required(self) -> bool:
        return self.role in MFA_REQUIRED_ROLES


# Everyone may use a second factor; these roles must (they see every case or sign opinions).
MFA_REQUIRED_ROLES = frozenset({Role.REVIEWER, Role.COORDINATOR, Role.ADMIN})


class RecoveryCode(Base):
    """One-time codes for a lost phone. Only an argon2 hash is kept, like a password."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class UserSession(Base):
    """A server-side login session. The browser holds only a random token whose sha256 is stored here,
    so logging out (or out everywhere) ends the session on the server, not just in the cookie."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[str] = mapped_column(String(32), default="")
    source_ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(255), default="")


class LoginThrottle(Base):
    """Failed attempts per account (e-mail as typed) and per source address, with exponential back-off."""

    __tablename__ = "login_throttles"
    __table_args__ = (UniqueConstraint("scope", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(16))  # account | address
    key: Mapped[str] = mapped_column(String(255))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    blocked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuthToken(Base):
    """Single-use, expiring tokens for password reset and account invitation (only the sha256 is stored)."""

    __tablename__ = "auth_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(16))  # reset | invite
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
