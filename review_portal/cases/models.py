"""Referrals (cases): the patient, the question, the history and the documents sent."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from review_portal.cases.lifecycle import STATUS_LABELS, CaseStatus
from review_portal.db import Base, UTCDateTime

REVIEW_TYPES = {"oncology_opinion": "Oncology opinion", "radiology_read": "Radiology read",
                "pathology_review": "Pathology review"}

CANCER_SITES = {
    "breast": "Breast",
    "thoracic": "Thoracic",
    "gi": "Gastrointestinal",
    "gu": "Genitourinary",
    "gynecologic": "Gynecologic",
    "head_neck": "Head and neck",
    "neuro": "Neuro-oncology",
    "hematologic": "Hematologic",
    "skin": "Melanoma and skin",
    "sarcoma": "Sarcoma",
    "pediatric": "Pediatric",
}

PRIORITIES = {"routine": "Routine", "urgent": "Urgent"}

SEXES = {"female": "Female", "male": "Male", "other": "Other", "unknown": "Unknown"}

HISTORY_KINDS = {
    "diagnosis": "Diagnosis",
    "pathology": "Pathology",
    "imaging": "Imaging",
    "surgery": "Surgery",
    "systemic_therapy": "Systemic therapy",
    "radiotherapy": "Radiotherapy",
    "other": "Other",
}


class Case(Base):
    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(32), unique=True)
    status: Mapped[str] = mapped_column(String(24), index=True)
    # FHIR Task.status matching `status` (see cases.lifecycle.FHIR_TASK_STATUS); kept by lifecycle.transition.
    fhir_status: Mapped[str] = mapped_column(String(16), default="requested")
    review_type: Mapped[str] = mapped_column(String(24))
    # The discipline the referrer asked for (the lead review's); further ones are contributing reviews.
    discipline: Mapped[str | None] = mapped_column(ForeignKey("disciplines.key"))
    cancer_site: Mapped[str] = mapped_column(String(24))
    priority: Mapped[str] = mapped_column(String(12), index=True)
    referring_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)

    # Indexed for the case lists' search and sort (migration 0002_case_search).
    patient_name: Mapped[str] = mapped_column(String(200), index=True)
    patient_dob: Mapped[date] = mapped_column(Date)
    patient_sex: Mapped[str] = mapped_column(String(12))
    patient_mrn: Mapped[str] = mapped_column(String(64), index=True)

    question: Mapped[str] = mapped_column(Text)
    diagnosis_in_question: Mapped[str] = mapped_column(Text)
    plan_in_question: Mapped[str] = mapped_column(Text)

    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set while the case waits on the referring physician: that time does not count against deadlines.
    hold_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A coordinator may let the letter go out before every contributing review is complete.
    letter_released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    letter_released_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # Bumped on every change so two coordinators acting at once cannot both win.
    version: Mapped[int] = mapped_column(Integer, default=1)

    referring = relationship("User", foreign_keys=[referring_id])
    history: Mapped[list[HistoryEntry]] = relationship(
        back_populates="case", order_by="HistoryEntry.occurred_on", cascade="all, delete-orphan"
    )
    documents: Mapped[list[Document]] = relationship(
        back_populates="case", order_by="Document.id", cascade="all, delete-orphan"
    )

    assignments = relationship("Assignment", order_by="Assignment.id", viewonly=True)
    # Each review (an oncology opinion, a radiology re-read) has its own reviewer, status and deadline.
    reviews = relationship("Review", order_by="Review.id", back_populates="case")

    __mapper_args__ = {"version_id_col": version}

    @property
    def lead_review(self):
        """The review whose reviewer writes and signs the opinion."""
        return next((r for r in self.reviews if r.is_lead), None)

    @property
    def active_assignment(self):
        lead = self.lead_review
        return lead.active_assignment if lead else None

    @property
    def reviewer(self):
        assignment = self.active_assignment
        return assignment.reviewer if assignment else None

    @property
    def on_hold(self) -> bool:
        return self.hold_started_at is not None

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[CaseStatus(self.status)]

    @property
    def is_awaiting_information(self) -> bool:
        from review_portal.cases.lifecycle import CaseStatus

        return self.status == CaseStatus.AWAITING_INFORMATION

    @property
    def progress(self) -> list[tuple[str, bool]]:
        """The main path as (label, current) pairs, for the case page."""
        from review_portal.cases.lifecycle import progress

        return progress(self.status)

    @property
    def review_type_label(self) -> str:
        return REVIEW_TYPES.get(self.review_type, self.review_type)

    @property
    def cancer_site_label(self) -> str:
        return CANCER_SITES.get(self.cancer_site, self.cancer_site)

    @property
    def priority_label(self) -> str:
        return PRIORITIES.get(self.priority, self.priority)

    @property
    def patient_sex_label(self) -> str:
        return SEXES.get(self.patient_sex, self.patient_sex)


class Discipline(Base):
    """A discipline a referrer can ask for (medical oncology, radiology…): data an administrator edits.

    `specialty` is the reviewer specialty (auth.models.Specialty) routing requires; the key never changes
    once cases use it, the label may be renamed, and a deactivated discipline is no longer offered."""

    __tablename__ = "disciplines"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(32), unique=True)
    label: Mapped[str] = mapped_column(String(100))
    specialty: Mapped[str] = mapped_column(String(40))
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    @property
    def review_type(self) -> str:
        return REVIEW_TYPE_FOR_SPECIALTY.get(self.specialty, "oncology_opinion")


# The review type (the kind of answer and of letter) that follows from the specialty a discipline needs.
REVIEW_TYPE_FOR_SPECIALTY = {"radiology": "radiology_read", "pathology": "pathology_review"}

# Seeded by migration 0003_disciplines (and by tests and the demo on a fresh schema): key, label, specialty.
SEED_DISCIPLINES = (
    ("medical_oncology", "Medical oncology", "medical_oncology"),
    ("radiation_oncology", "Radiation oncology", "radiation_oncology"),
    ("surgical_oncology", "Surgical oncology", "surgical_oncology"),
    ("radiology", "Radiology", "radiology"),
    ("pathology", "Pathology", "pathology"),
)


class HistoryEntry(Base):
    __tablename__ = "history_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    occurred_on: Mapped[date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(24))
    text: Mapped[str] = mapped_column(Text)

    case: Mapped[Case] = relationship(back_populates="history")

    @property
    def kind_label(self) -> str:
        return HISTORY_KINDS.get(self.kind, self.kind)


class Document(Base):
    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    uploaded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))

    case: Mapped[Case] = relationship(back_populates="documents")


class EmergencyAccess(Base):
    """A break-the-glass grant: one staff member, one case, a stated reason, a short time, reviewed later."""

    __tablename__ = "emergency_access"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    case_id: Mapped[int] = mapped_column(Integer, index=True)
    case_ref: Mapped[str] = mapped_column(String(32), default="")
    reason: Mapped[str] = mapped_column(Text)
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reviewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    review_note: Mapped[str] = mapped_column(Text, default="")
