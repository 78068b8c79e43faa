"""The reviewer's structured opinion on a case."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from review_portal.db import Base, UTCDateTime

DIAGNOSIS_CONCORDANCE = {
    "confirmed": "Diagnosis confirmed",
    "refined": "Diagnosis refined",
    "different": "Diagnosis different",
}
PLAN_CONCORDANCE = {
    "agree": "Agree with plan",
    "modify": "Modify plan",
    "different": "Different plan recommended",
}


class Opinion(Base):
    __tablename__ = "opinions"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), unique=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(12), default="draft")  # draft | signed
    diagnosis_concordance: Mapped[str] = mapped_column(String(16), default="")
    plan_concordance: Mapped[str] = mapped_column(String(16), default="")
    reviewer_diagnosis: Mapped[str] = mapped_column(Text, default="")
    recommended_plan: Mapped[str] = mapped_column(Text, default="")
    rationale: Mapped[str] = mapped_column(Text, default="")
    further_tests: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # sha256 of the canonical signed content: proof the letter says what was signed.
    content_sha256: Mapped[str | None] = mapped_column(String(64))
    # Optimistic locking: a save based on an older version is refused, never merged silently.
    version: Mapped[int] = mapped_column(Integer, default=1)

    reviewer = relationship("User")
    case = relationship("Case")

    __mapper_args__ = {"version_id_col": version}

    @property
    def is_signed(self) -> bool:
        return self.status == "signed"

    @property
    def diagnosis_concordance_label(self) -> str:
        return DIAGNOSIS_CONCORDANCE.get(self.diagnosis_concordance, "")

    @property
    def plan_concordance_label(self) -> str:
        return PLAN_CONCORDANCE.get(self.plan_concordance, "")
