"""The patient's own questions on a referral: up to five, optional, kept in the patient's words.

The referrer types them on the referral form; the reviewer reads them beside the clinical question, and
the lead answers each one in the summary for the patient (letters.summary).
"""
from __future__ import annotations

import unicodedata

from sqlalchemy import ForeignKey, Integer, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from review_portal.db import Base
from review_portal.errors import InvalidInput

MAX_PATIENT_QUESTIONS = 5
MAX_QUESTION_LENGTH = 500


class PatientQuestion(Base):
    __tablename__ = "patient_questions"
    __table_args__ = (UniqueConstraint("case_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)  # 1..5, in the order the referrer wrote them
    text: Mapped[str] = mapped_column(Text)


def clean_patient_questions(questions) -> list[str]:
    """The questions as stored: blanks dropped, whitespace folded; refuses more than five, over-long ones and
    control characters (a pasted question must not carry invisible bytes into the letter)."""
    cleaned = []
    for raw in questions or ():
        if not isinstance(raw, str):
            raise InvalidInput("A patient question must be text.")
        if any(unicodedata.category(c) == "Cc" and c not in "\n\r\t" for c in raw):
            raise InvalidInput("A patient question contains a control character; retype it without pasting.")
        text = " ".join(raw.split())
        if not text:
            continue
        if len(text) > MAX_QUESTION_LENGTH:
            raise InvalidInput(f"Keep each patient question under {MAX_QUESTION_LENGTH} characters.")
        cleaned.append(text)
    if len(cleaned) > MAX_PATIENT_QUESTIONS:
        raise InvalidInput(f"At most {MAX_PATIENT_QUESTIONS} patient questions.")
    return cleaned


def add_patient_questions(db: Session, case_id: int, questions) -> list[PatientQuestion]:
    """Store the referral's questions (already part of the referral's audited submission)."""
    rows = [PatientQuestion(case_id=case_id, position=n, text=text)
            for n, text in enumerate(clean_patient_questions(questions), start=1)]
    db.add_all(rows)
    return rows


def patient_questions_for(db: Session, case_id: int) -> list[str]:
    return list(db.scalars(select(PatientQuestion.text).where(PatientQuestion.case_id == case_id)
                           .order_by(PatientQuestion.position)))
