"""Messages on a case, structured requests for more information, and follow-up questions after the letter.

FHIR: a request for information is a CommunicationRequest, its answer and the thread's messages are
Communications; a follow-up answer becomes an addendum to the opinion (DiagnosticReport "appended").
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from review_portal.db import Base, UTCDateTime
from review_portal.messaging.lifecycle import RequestStatus

REQUEST_ITEMS = {
    "records": "Further records or reports",
    "rescan": "A new or repeated scan",
    "pathology_slides": "Pathology slides or blocks reviewed",
    "tests": "Specific tests",
    "other": "Other",
}


class Message(Base):
    __tablename__ = "case_messages"
    __table_args__ = (Index("ix_case_messages_case_at", "case_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # message | information_request | information_answer | follow_up_question | follow_up_answer
    kind: Mapped[str] = mapped_column(String(24), default="message")
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    author = relationship("User")


class InformationRequest(Base):
    __tablename__ = "information_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    requested_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    items: Mapped[list[str]] = mapped_column(JSON, default=list)  # codes from REQUEST_ITEMS
    detail: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12), default=RequestStatus.OPEN.value)  # messaging.lifecycle
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    answer: Mapped[str] = mapped_column(Text, default="")
    # What came with the answer, e.g. "2 report(s), 1 scan file(s)".
    attachments_summary: Mapped[str] = mapped_column(String(300), default="")

    requested_by = relationship("User", foreign_keys=[requested_by_id])
    answered_by = relationship("User", foreign_keys=[answered_by_id])

    @property
    def is_open(self) -> bool:
        return self.status == RequestStatus.OPEN

    @property
    def item_labels(self) -> list[str]:
        return [REQUEST_ITEMS.get(i, i) for i in self.items or []]


class FollowUpQuestion(Base):
    __tablename__ = "follow_up_questions"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)  # 1, 2, 3 within the case
    asked_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    question: Mapped[str] = mapped_column(Text)
    asked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    answered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    answer: Mapped[str] = mapped_column(Text, default="")
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The opinion addendum (owned by the opinions/letters domain) this answer became, once created.
    addendum_id: Mapped[int | None] = mapped_column(Integer)

    asked_by = relationship("User", foreign_keys=[asked_by_id])
    answered_by = relationship("User", foreign_keys=[answered_by_id])

    @property
    def addendum_reason(self) -> str:
        """What the addendum that answers this question is about, as the letter states it."""
        return f"Answer to follow-up question {self.number}: {self.question}"[:300]
