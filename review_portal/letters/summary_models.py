"""The summary for the patient: a plain-language companion to the letter, signed and versioned like it.

Each row is one version. A draft is edited in place (with an optimistic version check); a signed version is
frozen with its PDF, and any change after signing is the next version, started from the signed text.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from review_portal.db import Base, UTCDateTime
from review_portal.letters.summary_lifecycle import SummaryStatus


class PatientSummary(Base):
    __tablename__ = "patient_summaries"
    __table_args__ = (UniqueConstraint("case_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    opinion_id: Mapped[int] = mapped_column(ForeignKey("opinions.id"))
    number: Mapped[int] = mapped_column(Integer)  # the summary's version: 1, 2, ...
    status: Mapped[str] = mapped_column(String(12), default=SummaryStatus.DRAFT.value)  # letters.summary_lifecycle
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    what_reviewed: Mapped[str] = mapped_column(Text, default="")
    conclusion: Mapped[str] = mapped_column(Text, default="")
    treatment: Mapped[str] = mapped_column(Text, default="")
    # [{"question": the patient's words, "answer": the lead's}], in the referral's order.
    answers: Mapped[list] = mapped_column(JSON, default=list)
    # The key images the lead chose to show the patient (none unless picked): [{"png_key": ...}].
    key_images: Mapped[list] = mapped_column(JSON, default=list)
    grade: Mapped[float | None] = mapped_column(Float)  # Flesch-Kincaid grade at the last save
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    signed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    content_sha256: Mapped[str | None] = mapped_column(String(64))  # hash of the signed words
    # The signed PDF, content-addressed, and the letter version it went out with.
    blob_key: Mapped[str | None] = mapped_column(String(64))
    sha256: Mapped[str | None] = mapped_column(String(64))
    letter_id: Mapped[int | None] = mapped_column(ForeignKey("letters.id"))
    first_downloaded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Optimistic locking: a save based on an older version is refused, never merged silently.
    version: Mapped[int] = mapped_column(Integer, default=1)

    signed_by = relationship("User", foreign_keys=[signed_by_id])

    __mapper_args__ = {"version_id_col": version}

    @property
    def is_signed(self) -> bool:
        return self.status == SummaryStatus.SIGNED

    @property
    def full_text(self) -> str:
        """Everything the patient reads, for the reading level and the glossary."""
        parts = [self.what_reviewed, self.conclusion, self.treatment]
        for item in self.answers or []:
            parts += [item.get("question", ""), item.get("answer", "")]
        return "\n\n".join(p for p in parts if p)
