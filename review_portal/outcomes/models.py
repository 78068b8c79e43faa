"""One outcome follow-up per case: asked a configurable time after the first letter, answered by the referrer."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from review_portal.db import Base, UTCDateTime

RECOMMENDATION_FOLLOWED = {
    "fully": "Followed fully",
    "partly": "Followed in part",
    "not": "Not followed",
}
# Where the second opinion differed from the referring team's: which one time proved right.
CONFIRMED_OPINION = {
    "second_opinion": "The second opinion",
    "original": "The original (referring team's) opinion",
    "neither": "Neither",
    "unknown": "Not known yet",
}
CONFIRMED_BY = {
    "pathology": "Pathology",
    "follow_up": "Clinical or imaging follow-up",
    "other": "Other",
}


class OutcomeFollowUp(Base):
    __tablename__ = "outcome_follow_ups"

    id: Mapped[int] = mapped_column(primary_key=True)
    # One per case, ever: `flask outcomes-due` may run as often as cron likes.
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), unique=True)
    referring_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    # The first letter's delivery plus OUTCOME_FOLLOW_UP_DAYS: when the question became due.
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Frozen when asked: whether the second opinion differed (diagnosis not confirmed, plan not agreed,
    # or a RADPEER discrepancy), so the question about which opinion was confirmed is asked only then.
    opinions_differed: Mapped[bool] = mapped_column(Boolean, default=False)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    answered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    recommendation_followed: Mapped[str] = mapped_column(String(8), default="")
    final_diagnosis: Mapped[str] = mapped_column(Text, default="")
    confirmed_opinion: Mapped[str] = mapped_column(String(16), default="")
    confirmed_by: Mapped[str] = mapped_column(String(12), default="")
    confirmed_by_note: Mapped[str] = mapped_column(String(500), default="")

    case = relationship("Case")

    @property
    def is_answered(self) -> bool:
        return self.answered_at is not None

    @property
    def recommendation_followed_label(self) -> str:
        return RECOMMENDATION_FOLLOWED.get(self.recommendation_followed, "")

    @property
    def confirmed_opinion_label(self) -> str:
        return CONFIRMED_OPINION.get(self.confirmed_opinion, "")

    @property
    def confirmed_by_label(self) -> str:
        return CONFIRMED_BY.get(self.confirmed_by, "")
