"""Measurements a reviewer draws on the images (length, RECIST bidirectional, ellipse ROI, probe, arrow).

A measurement belongs to one review (the lead opinion's or a contributor's) and is anchored to the image
itself: instance, SOP Instance UID and frame, never a slice index. `points` are in image pixel coordinates
(column x, row y, floats); `values` are always computed by the server from the original pixels. At signing
the values are recomputed and frozen (`frozen_at`); a frozen measurement is never edited.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from review_portal.db import Base, UTCDateTime

MEASUREMENT_KINDS = {
    "length": "Length",
    "bidirectional": "Bidirectional (RECIST)",
    "ellipse": "Ellipse ROI",
    "probe": "Probe",
    "arrow": "Arrow",
}


class Measurement(Base):
    __tablename__ = "measurements"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    review_id: Mapped[int] = mapped_column(ForeignKey("reviews.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id"))
    sop_instance_uid: Mapped[str] = mapped_column(String(64))
    frame: Mapped[int] = mapped_column(Integer, default=0)
    kind: Mapped[str] = mapped_column(String(16))
    points: Mapped[list] = mapped_column(JSON, default=list)
    label: Mapped[str] = mapped_column(String(300), default="")
    values: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set when the opinion (or section) it belongs to is signed: the values were recomputed and frozen then.
    frozen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    instance = relationship("Instance")

    @property
    def kind_label(self) -> str:
        return MEASUREMENT_KINDS.get(self.kind, self.kind)

    @property
    def is_frozen(self) -> bool:
        return self.frozen_at is not None
