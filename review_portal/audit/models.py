"""Audit trail: who did or saw what, to which case and patient, when, from where, with what outcome.

Append-only and tamper-evident: once sealed, each event carries a sequence number, the hash of the
previous event and its own hash over every field (see audit.chain). case_id is deliberately not a
foreign key: the trail outlives a case removed by the retention purge, and keeps its reference and patient.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from review_portal.db import Base, UTCDateTime


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_case_at", "case_id", "at"), Index("ix_audit_patient", "patient_mrn"))

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    # Kept as text too, so the trail still reads after an account is renamed or removed.
    actor_email: Mapped[str] = mapped_column(String(255), default="")
    actor_role: Mapped[str] = mapped_column(String(20), default="")
    action: Mapped[str] = mapped_column(String(64), index=True)
    case_id: Mapped[int | None] = mapped_column(Integer)
    case_ref: Mapped[str] = mapped_column(String(32), default="")
    patient_mrn: Mapped[str] = mapped_column(String(64), default="")
    patient_name: Mapped[str] = mapped_column(String(200), default="")
    object_type: Mapped[str] = mapped_column(String(32), default="")
    object_id: Mapped[str] = mapped_column(String(64), default="")
    source_ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(255), default="")
    outcome: Mapped[str] = mapped_column(String(16), default="success")  # success | failed | denied
    # Emergency ("break the glass") access: the stated reason, and a flag for the privacy officer's review.
    reason: Mapped[str] = mapped_column(Text, default="")
    flagged: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    request_id: Mapped[str] = mapped_column(String(32), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    # The chain: filled in by audit.chain.seal() right after the event's transaction commits.
    seq: Mapped[int | None] = mapped_column(Integer, unique=True)
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))


