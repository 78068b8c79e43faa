"""A multidisciplinary opinion's parts: one signed section per contributing review, the chair who writes
the consensus, and each contributor's position on it (agree, or dissent in their own words).

The consensus itself is the case's Opinion (opinions.models); these tables sit beside it.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from review_portal.db import Base, UTCDateTime
from review_portal.opinions.models import PLAN_CONCORDANCE, RADPEER
from review_portal.opinions.section_lifecycle import (
    SECTION_STATUS_LABELS,
    SectionStatus,
)

# Structured content per kind of discipline (a discipline's specialty decides the kind). Each field is text;
# the coded ones take a key of their vocabulary. Kept as JSON of these known fields only (validated on save).
CONCORDANCE_3 = {"concordant": "Concordant", "minor": "Minor discordance", "major": "Major discordance"}
SECTION_FIELDS: dict[str, tuple[str, ...]] = {
    "radiology": ("findings", "impression", "radpeer_score", "radpeer_comment", "staging"),
    "pathology": ("report_review", "histology_concordance", "biomarker_concordance", "comment"),
    "oncology": ("plan_concordance", "plan", "rationale"),
}
SECTION_CHOICES: dict[str, dict[str, str]] = {
    "radpeer_score": RADPEER,
    "histology_concordance": CONCORDANCE_3,
    "biomarker_concordance": CONCORDANCE_3,
    "plan_concordance": PLAN_CONCORDANCE,
}
# What must be filled before a section can be signed.
SECTION_REQUIRED: dict[str, dict[str, str]] = {
    "radiology": {"findings": "findings", "impression": "impression", "radpeer_score": "RADPEER score"},
    "pathology": {"report_review": "review of the reports", "histology_concordance": "histology concordance",
                  "biomarker_concordance": "biomarker concordance"},
    "oncology": {"plan_concordance": "plan concordance", "plan": "plan in your domain", "rationale": "rationale"},
}
SECTION_LABELS = {
    "findings": "Findings", "impression": "Impression", "radpeer_score": "Original read (ACR RADPEER)",
    "radpeer_comment": "Comment on the discrepancy", "staging": "Staging", "report_review": "Review of the reports",
    "histology_concordance": "Histology", "biomarker_concordance": "Biomarkers", "comment": "Comment",
    "plan_concordance": "Plan", "plan": "Plan in this domain", "rationale": "Rationale",
}
# The free-text field that holds findings migrated from before sections existed.
LEGACY_FIELD = {"radiology": "findings", "pathology": "report_review", "oncology": "rationale"}


def kind_of_specialty(specialty: str | None) -> str:
    if specialty == "radiology":
        return "radiology"
    if specialty == "pathology":
        return "pathology"
    return "oncology"


def is_concordant(kind: str, content: dict) -> bool | None:
    """Did this section agree with the referring team's read? None when it gave no coded answer."""
    if kind == "radiology":
        score = content.get("radpeer_score") or ""
        return None if not score else score == "1"
    if kind == "pathology":
        codes = [content.get("histology_concordance") or "", content.get("biomarker_concordance") or ""]
        if not any(codes):
            return None
        return all(c in ("", "concordant") for c in codes)
    plan = content.get("plan_concordance") or ""
    return None if not plan else plan == "agree"


class OpinionSection(Base):
    """One discipline's signed part of the opinion, written by the reviewer who accepted that review."""

    __tablename__ = "opinion_sections"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    review_id: Mapped[int] = mapped_column(ForeignKey("reviews.id"), unique=True)
    discipline: Mapped[str | None] = mapped_column(ForeignKey("disciplines.key"))
    kind: Mapped[str] = mapped_column(String(16))  # a key of SECTION_FIELDS
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(12), default=SectionStatus.DRAFT.value)  # section_lifecycle
    content: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    content_sha256: Mapped[str | None] = mapped_column(String(64))
    # A coordinator's waiver: who, when and why the consensus may go without this section.
    waived_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    waived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    waiver_reason: Mapped[str] = mapped_column(String(500), default="")
    # Free-text findings recorded without re-authentication (before sections, or through the old form).
    from_free_text: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer, default=1)

    review = relationship("Review")
    author = relationship("User", foreign_keys=[author_id])
    waived_by = relationship("User", foreign_keys=[waived_by_id])
    addenda: Mapped[list[SectionAddendum]] = relationship(back_populates="section", order_by="SectionAddendum.number")

    __mapper_args__ = {"version_id_col": version}

    @property
    def status_label(self) -> str:
        return SECTION_STATUS_LABELS.get(self.status, self.status)

    @property
    def is_signed(self) -> bool:
        return self.status == SectionStatus.SIGNED

    @property
    def is_done(self) -> bool:
        return self.status in (SectionStatus.SIGNED, SectionStatus.WAIVED, SectionStatus.RECORDED)

    @property
    def concordant(self) -> bool | None:
        return is_concordant(self.kind, self.content or {})


class SectionAddendum(Base):
    """Text added to a signed section, signed on its own by the section's author."""

    __tablename__ = "section_addenda"

    id: Mapped[int] = mapped_column(primary_key=True)
    section_id: Mapped[int] = mapped_column(ForeignKey("opinion_sections.id"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(300), default="")
    text: Mapped[str] = mapped_column(Text)
    signed_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    content_sha256: Mapped[str] = mapped_column(String(64))
    # Signed after the consensus: the consensus owes an addendum of its own (cleared when the lead writes it).
    after_consensus: Mapped[bool] = mapped_column(Boolean, default=False)
    consensus_answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    section: Mapped[OpinionSection] = relationship(back_populates="addenda")
    signed_by = relationship("User")


POSITIONS = {"agree": "Agrees with the consensus", "dissent": "Dissents from the consensus"}
DISSENT_SOURCES = {"lead": "entered by the chair", "section": "quoted from the section"}


class ConsensusPosition(Base):
    """A contributor's position on the consensus, recorded by the chair while the consensus is a draft."""

    __tablename__ = "consensus_positions"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    section_id: Mapped[int] = mapped_column(ForeignKey("opinion_sections.id"), unique=True)
    position: Mapped[str] = mapped_column(String(12))  # a key of POSITIONS
    dissent_text: Mapped[str] = mapped_column(Text, default="")  # the contributor's own words
    dissent_source: Mapped[str] = mapped_column(String(12), default="")  # a key of DISSENT_SOURCES
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)

    section = relationship("OpinionSection")

    @property
    def is_dissent(self) -> bool:
        return self.position == "dissent"


class BoardChair(Base):
    """The chair a coordinator named to write the consensus instead of the lead reviewer."""

    __tablename__ = "board_chairs"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), unique=True)
    chair_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    named_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    named_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(String(500), default="")

    chair = relationship("User", foreign_keys=[chair_id])
