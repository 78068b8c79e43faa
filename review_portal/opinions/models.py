"""The reviewer's structured opinion on a case, and the signed addenda that amend it."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from review_portal.db import Base, UTCDateTime
from review_portal.opinions.lifecycle import OpinionStatus

# The Mayo categories (Van Such et al. 2017): what a referrer wants to know first.
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
URGENCY = {
    "routine": "Routine: act at the next planned visit",
    "prompt": "Prompt: act within two weeks",
    "urgent": "Urgent: contact the patient within 48 hours",
}
TRIAL_CONSIDERATION = {
    "not_suggested": "No clinical trial suggested",
    "consider": "Consider a clinical trial",
    "recommended": "Clinical trial enrolment recommended",
}
# ACR RADPEER (2016 revision): the score given to the original read.
RADPEER = {
    "1": "1 – Concur with the interpretation",
    "2a": "2a – Understandable miss, unlikely clinically significant",
    "2b": "2b – Understandable miss, likely clinically significant",
    "3a": "3a – Miss not ordinarily expected, unlikely clinically significant",
    "3b": "3b – Miss not ordinarily expected, likely clinically significant",
}
# RADPEER expects the discrepancy explained from 2b up.
RADPEER_COMMENT_REQUIRED = frozenset({"2b", "3a", "3b"})

# The free-text and coded fields of a draft, in the order the form shows them.
ONCOLOGY_FIELDS = ("diagnosis_concordance", "reviewer_diagnosis", "rationale", "stage_text", "tnm_t", "tnm_n", "tnm_m",
                   "plan_concordance", "recommended_plan", "further_tests", "trial_consideration", "clinical_trials",
                   "urgency")
RADIOLOGY_FIELDS = ("findings", "impression", "radpeer_score", "radpeer_comment")


class Opinion(Base):
    __tablename__ = "opinions"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), unique=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(12), default=OpinionStatus.DRAFT.value)  # opinions.lifecycle
    # Oncology opinion.
    diagnosis_concordance: Mapped[str] = mapped_column(String(16), default="")
    plan_concordance: Mapped[str] = mapped_column(String(16), default="")
    reviewer_diagnosis: Mapped[str] = mapped_column(Text, default="")
    recommended_plan: Mapped[str] = mapped_column(Text, default="")
    rationale: Mapped[str] = mapped_column(Text, default="")
    further_tests: Mapped[str] = mapped_column(Text, default="")
    stage_text: Mapped[str] = mapped_column(Text, default="")
    tnm_t: Mapped[str] = mapped_column(String(16), default="")
    tnm_n: Mapped[str] = mapped_column(String(16), default="")
    tnm_m: Mapped[str] = mapped_column(String(16), default="")
    trial_consideration: Mapped[str] = mapped_column(String(16), default="")
    clinical_trials: Mapped[str] = mapped_column(Text, default="")
    urgency: Mapped[str] = mapped_column(String(12), default="")
    # Radiology read.
    findings: Mapped[str] = mapped_column(Text, default="")
    impression: Mapped[str] = mapped_column(Text, default="")
    radpeer_score: Mapped[str] = mapped_column(String(4), default="")
    radpeer_comment: Mapped[str] = mapped_column(Text, default="")

    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # sha256 of the canonical signed content: proof the letter says what was signed.
    content_sha256: Mapped[str | None] = mapped_column(String(64))
    # Optimistic locking: a save based on an older version is refused, never merged silently.
    version: Mapped[int] = mapped_column(Integer, default=1)

    reviewer = relationship("User")
    case = relationship("Case")
    addenda: Mapped[list[Addendum]] = relationship(back_populates="opinion", order_by="Addendum.number")

    __mapper_args__ = {"version_id_col": version}

    @property
    def is_signed(self) -> bool:
        return self.status == OpinionStatus.SIGNED

    @property
    def diagnosis_concordance_label(self) -> str:
        return DIAGNOSIS_CONCORDANCE.get(self.diagnosis_concordance, "")

    @property
    def plan_concordance_label(self) -> str:
        return PLAN_CONCORDANCE.get(self.plan_concordance, "")

    @property
    def urgency_label(self) -> str:
        return URGENCY.get(self.urgency, "")

    @property
    def trial_consideration_label(self) -> str:
        return TRIAL_CONSIDERATION.get(self.trial_consideration, "")

    @property
    def radpeer_label(self) -> str:
        return RADPEER.get(self.radpeer_score, "")

    @property
    def tnm(self) -> str:
        return " ".join(part for part in (self.tnm_t, self.tnm_n, self.tnm_m) if part)


class Addendum(Base):
    """Text added after signing. Signed on its own; the signed opinion itself never changes."""

    __tablename__ = "opinion_addenda"

    id: Mapped[int] = mapped_column(primary_key=True)
    opinion_id: Mapped[int] = mapped_column(ForeignKey("opinions.id"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(300), default="")
    text: Mapped[str] = mapped_column(Text)
    signed_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    content_sha256: Mapped[str] = mapped_column(String(64))

    opinion: Mapped[Opinion] = relationship(back_populates="addenda")
    signed_by = relationship("User")


def opinion_differed(diagnosis: str, plan: str, radpeer: str) -> bool:
    """The second opinion departed from the referring team's: new or refined diagnosis, changed plan,
    or (radiology) any RADPEER discrepancy. Used by the figures and by the outcome follow-up."""
    return diagnosis in ("refined", "different") or plan in ("modify", "different") or radpeer not in ("", "1")
