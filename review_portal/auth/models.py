"""People and the institutions they work for."""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from flask_login import UserMixin
from sqlalchemy import JSON, Boolean, ForeignKey, String
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
