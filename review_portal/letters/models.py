"""Letters issued to the referring physician, and their receipt. Every version is kept."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from review_portal.db import Base, UTCDateTime


class Letter(Base):
    __tablename__ = "letters"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    opinion_id: Mapped[int] = mapped_column(ForeignKey("opinions.id"))
    version: Mapped[int] = mapped_column(Integer, default=1)
    blob_key: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64))
    verification_code: Mapped[str] = mapped_column(String(32), unique=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_downloaded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # Set on re-issued versions: the addendum that caused it and a one-line "what changed".
    addendum_id: Mapped[int | None] = mapped_column(ForeignKey("opinion_addenda.id"))
    change_summary: Mapped[str] = mapped_column(Text, default="")

    case = relationship("Case")
