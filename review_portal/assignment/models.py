"""Reviews of a case, the offers that put a reviewer on each, reviewer profiles and escalations.

A case needs one or more *reviews* (the lead oncology opinion, perhaps a radiology re-read). Each
review is a FHIR Task with its own deadline; each *assignment* is one offer of that review to one
reviewer, who accepts or declines it. A declined offer stays on record (FHIR "rejected") so the
re-routing excludes that reviewer.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

# The statuses, their labels, FHIR equivalents and the moves between them live in assignment.lifecycle.
from review_portal.assignment.lifecycle import (
    ASSIGNMENT_STATUSES,
    OPEN_REVIEW_STATUSES,
    REVIEW_STATUSES,
    STANDING_ASSIGNMENT_STATUSES,
    TAKEN_ASSIGNMENT_STATUSES,
    AssignmentStatus,
    ReviewStatus,
    transition_assignment,
    transition_review,
)
from review_portal.cases.models import REVIEW_TYPES
from review_portal.db import Base, UTCDateTime

DECLINE_REASONS = {
    "conflict": "Conflict of interest",
    "expertise": "Outside my expertise",
    "capacity": "No capacity right now",
    "other": "Other",
}

READING_AREAS = {
    "neuro": "Neuroradiology",
    "body": "Body",
    "chest": "Chest",
    "msk": "Musculoskeletal",
    "breast": "Breast",
    "nuclear": "Nuclear medicine",
}
# Which radiology reading areas can re-read imaging for each cancer site.
SITE_READING_AREAS = {
    "breast": {"breast"},
    "thoracic": {"chest"},
    "gi": {"body"},
    "gu": {"body"},
    "gynecologic": {"body"},
    "head_neck": {"neuro"},
    "neuro": {"neuro"},
    "hematologic": {"body", "nuclear"},
    "skin": {"body", "nuclear"},
    "sarcoma": {"msk"},
    "pediatric": set(),
}


class Review(Base):
    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    review_type: Mapped[str] = mapped_column(String(24))
    # The discipline this review needs (cases.models.Discipline); routing matches it before site and load.
    discipline: Mapped[str | None] = mapped_column(ForeignKey("disciplines.key"))
    # The lead review's reviewer writes and signs the opinion; the others contribute to it.
    is_lead: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    fhir_status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Why nobody was eligible, shown in the coordinator's triage queue.
    triage_reason: Mapped[str] = mapped_column(String(1000), default="")
    # A contributing reviewer's findings, read by the lead reviewer before signing.
    findings: Mapped[str] = mapped_column(Text, default="")
    near_due_flagged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    overdue_escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    case = relationship("Case", back_populates="reviews")
    assignments: Mapped[list[Assignment]] = relationship(back_populates="review", order_by="Assignment.id")

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_REVIEW_STATUSES

    @property
    def active_assignment(self):
        return next((a for a in self.assignments if a.active), None)

    @property
    def reviewer(self):
        assignment = self.active_assignment
        return assignment.reviewer if assignment else None

    @property
    def is_triage(self) -> bool:
        return self.status == ReviewStatus.TRIAGE

    @property
    def is_offered(self) -> bool:
        return self.status == ReviewStatus.OFFERED

    @property
    def is_completed(self) -> bool:
        return self.status == ReviewStatus.COMPLETED

    @property
    def declined_reviewer_ids(self) -> set[int]:
        return {a.reviewer_id for a in self.assignments if a.is_declined}

    @property
    def status_label(self) -> str:
        return REVIEW_STATUSES.get(self.status, self.status)

    @property
    def review_type_label(self) -> str:
        return REVIEW_TYPES.get(self.review_type, self.review_type)

    def complete(self, now: datetime, *, by=None, ip: str = "", audit: bool = False) -> None:
        """Complete the review and the accepted offer with it. `audit` when this is a step of its own
        (a contributing review's findings), not part of the case's move."""
        transition_review(self, ReviewStatus.COMPLETED, now, by=by, ip=ip, audit=audit)
        for a in self.assignments:
            if a.is_accepted:
                transition_assignment(a, AssignmentStatus.COMPLETED, now)

    def cancel(self, now: datetime) -> None:
        """Part of the case's move to withdrawn or cancelled, audited there."""
        transition_review(self, ReviewStatus.CANCELLED, now, audit=False)
        for a in self.assignments:
            if a.status in STANDING_ASSIGNMENT_STATUSES:
                transition_assignment(a, AssignmentStatus.ENDED, now, audit=False)


class Assignment(Base):
    __tablename__ = "assignments"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    review_id: Mapped[int] = mapped_column(ForeignKey("reviews.id"), index=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # None when the portal routed the case itself.
    assigned_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # Why this reviewer: shown to the coordinator.
    reason: Mapped[str] = mapped_column(String(1000), default="")
    status: Mapped[str] = mapped_column(String(12), default=AssignmentStatus.OFFERED.value, index=True)
    fhir_status: Mapped[str] = mapped_column(String(16), default="requested")
    # True while the reviewer holds the review (offered, accepted or completed).
    active: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decline_reason: Mapped[str] = mapped_column(String(16), default="")
    decline_note: Mapped[str] = mapped_column(String(500), default="")
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    case = relationship("Case", viewonly=True)
    review: Mapped[Review] = relationship(back_populates="assignments")
    reviewer = relationship("User", foreign_keys=[reviewer_id])
    assigned_by = relationship("User", foreign_keys=[assigned_by_id])

    @property
    def status_label(self) -> str:
        return ASSIGNMENT_STATUSES.get(self.status, self.status)

    @property
    def decline_reason_label(self) -> str:
        return DECLINE_REASONS.get(self.decline_reason, self.decline_reason)

    @property
    def is_offered(self) -> bool:
        return self.status == AssignmentStatus.OFFERED

    @property
    def is_accepted(self) -> bool:
        return self.status == AssignmentStatus.ACCEPTED

    @property
    def is_declined(self) -> bool:
        return self.status == AssignmentStatus.DECLINED

    @property
    def is_taken(self) -> bool:
        """Accepted, or completed: the reviewer took the review on."""
        return self.status in TAKEN_ASSIGNMENT_STATUSES


# A sanity bound for the admin form: nobody holds more open reviews than this at once.
MAX_CAPACITY = 50


class ReviewerProfile(Base):
    """What a reviewer reads and how much they can take; specialty and sites live on the user."""

    __tablename__ = "reviewer_profiles"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    # Radiologists only: codes from READING_AREAS.
    reading_areas: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Most open reviews at once; None means the configured default.
    capacity: Mapped[int | None] = mapped_column(Integer)

    user = relationship("User")


class OutOfOffice(Base):
    __tablename__ = "out_of_office"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    note: Mapped[str] = mapped_column(String(200), default="")


ESCALATION_KINDS = {
    "near_due": "Due soon",  # the reviewer is told
    "overdue": "Overdue",  # the coordinators are told and offered reassignment
    "offer_remind": "Offer reminder",  # an offer waited unanswered: the reviewer is reminded once
    "offer_late": "Offer unanswered",  # still unanswered a period after the reminder: coordinators told
    "extended": "Deadline extended",  # a coordinator gave more time, with a reason
}


class Escalation(Base):
    """A flag on a review's deadline: raised by the periodic deadline check, once each (a deadline near or
    past, an offer left unanswered), or by a coordinator extending the deadline.

    Offer flags belong to one offer: same review and reviewer, raised after that offer was made.
    """

    __tablename__ = "escalations"

    id: Mapped[int] = mapped_column(primary_key=True)
    review_id: Mapped[int] = mapped_column(ForeignKey("reviews.id"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(12))  # a key of ESCALATION_KINDS
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    detail: Mapped[str] = mapped_column(String(500), default="")

    review = relationship("Review")
    reviewer = relationship("User")

    @property
    def kind_label(self) -> str:
        return ESCALATION_KINDS.get(self.kind, self.kind)
