"""A notification for one user: what happened to which case, read or not."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from review_portal.db import Base, UTCDateTime

KINDS = {
    "assignment": "New assignment",
    "triage": "Needs triage",
    "information_request": "Information requested",
    "information_answer": "Information received",
    "message": "New message",
    "follow_up": "Follow-up question",
    "follow_up_answer": "Follow-up answered",
    "letter_ready": "Letter ready",
    "letter_resent": "Letter waiting for you",
    "offer_reminder": "Offer awaiting your answer",
    "offer_unanswered": "Offer unanswered",
    "deadline_near": "Deadline near",
    "deadline_extended": "Deadline extended",
    "overdue": "Overdue",
    "review_done": "Review completed",
    "consensus_addendum": "Consensus addendum needed",
    "declined": "Offer declined",
    "outcome_request": "Outcome follow-up",
    "account_security": "Change to your account security",
    "privacy_incident": "Privacy incident",
}


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_user_unread", "user_id", "read_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    kind: Mapped[str] = mapped_column(String(24))
    # Case reference and what happened, never patient details: the same text goes out by e-mail.
    text: Mapped[str] = mapped_column(String(300))
    link: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def kind_label(self) -> str:
        return KINDS.get(self.kind, self.kind)
