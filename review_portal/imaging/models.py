"""Studies, series and instances sent with a case, indexed by their DICOM UIDs; the ingest jobs
that put them there; and the key images a reviewer marks for the letter."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Date, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from review_portal.db import Base, UTCDateTime
from review_portal.imaging.lifecycle import STATUS_LABELS as INGEST_STATUS_LABELS
from review_portal.imaging.lifecycle import IngestStatus


class Study(Base):
    __tablename__ = "studies"
    __table_args__ = (UniqueConstraint("case_id", "study_instance_uid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    study_instance_uid: Mapped[str] = mapped_column(String(64))
    study_date: Mapped[date | None] = mapped_column(Date)
    description: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Who the header says the patient is, as in the file's first image (compared with the referral at ingest).
    patient_name: Mapped[str | None] = mapped_column(String(200))
    patient_id: Mapped[str | None] = mapped_column(String(64))
    patient_id_issuer: Mapped[str | None] = mapped_column(String(64))
    patient_birth_date: Mapped[str | None] = mapped_column(String(16))
    patient_sex: Mapped[str | None] = mapped_column(String(16))
    other_patient_ids: Mapped[str | None] = mapped_column(String(500))

    series: Mapped[list[Series]] = relationship(
        back_populates="study", order_by="Series.series_number", cascade="all, delete-orphan"
    )


class Series(Base):
    __tablename__ = "series"
    __table_args__ = (UniqueConstraint("study_id", "series_instance_uid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    series_instance_uid: Mapped[str] = mapped_column(String(64))
    modality: Mapped[str] = mapped_column(String(16), default="")
    description: Mapped[str] = mapped_column(String(200), default="")
    series_number: Mapped[int | None] = mapped_column(Integer)
    thumbnail_key: Mapped[str | None] = mapped_column(String(64))
    frame_of_reference_uid: Mapped[str] = mapped_column(String(64), default="")

    study: Mapped[Study] = relationship(back_populates="series")
    instances: Mapped[list[Instance]] = relationship(back_populates="series", cascade="all, delete-orphan")


class Instance(Base):
    __tablename__ = "instances"
    __table_args__ = (UniqueConstraint("series_id", "sop_instance_uid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    sop_instance_uid: Mapped[str] = mapped_column(String(64))
    sop_class_uid: Mapped[str] = mapped_column(String(64), default="")
    instance_number: Mapped[int | None] = mapped_column(Integer)
    slice_position: Mapped[float | None] = mapped_column(Float)
    frames: Mapped[int] = mapped_column(Integer, default=1)
    rows: Mapped[int] = mapped_column(Integer)
    columns: Mapped[int] = mapped_column(Integer)
    photometric_interpretation: Mapped[str] = mapped_column(String(16), default="")
    window_center: Mapped[float | None] = mapped_column(Float)
    window_width: Mapped[float | None] = mapped_column(Float)
    transfer_syntax_uid: Mapped[str] = mapped_column(String(64), default="")
    blob_key: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    original_filename: Mapped[str] = mapped_column(String(255), default="")
    # Geometry for the browser viewer and its measurements (imaging/pixels.py), from the header at ingest;
    # rows from before migration 0004 are filled on first view (samples_per_pixel is None until then).
    pixel_spacing: Mapped[list | None] = mapped_column(JSON)  # [row mm, column mm]
    spacing_source: Mapped[str] = mapped_column(String(20), default="")  # PixelSpacing | ImagerPixelSpacing | ''
    image_orientation: Mapped[list | None] = mapped_column(JSON)
    image_position: Mapped[list | None] = mapped_column(JSON)
    slice_thickness: Mapped[float | None] = mapped_column(Float)
    rescale_slope: Mapped[float | None] = mapped_column(Float)
    rescale_intercept: Mapped[float | None] = mapped_column(Float)
    bits_stored: Mapped[int | None] = mapped_column(Integer)
    pixel_representation: Mapped[int | None] = mapped_column(Integer)
    samples_per_pixel: Mapped[int | None] = mapped_column(Integer)
    # Set by the pixel check (imaging/pixel_check.py, a background job) once every frame decoded within the
    # sandbox's limits; until then the viewer renders this file only inside the sandbox.
    pixels_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The same pixels stored uncompressed, made once by that check for slow-to-decode syntaxes (JPEG 2000); the
    # viewer renders from it. The original (blob_key) is what DICOMweb and downloads serve.
    decoded_key: Mapped[str | None] = mapped_column(String(64), nullable=True)

    series: Mapped[Series] = relationship(back_populates="instances")





class IngestJob(Base):
    """One upload of scans into a case, processed (now inline, later by a worker) from stored sources.

    `sources` lists what was sent as [{"name": client file name, "key": sha256 blob key}], so the
    job can be re-run after a crash from the blobs alone; `report` is the outcome a clinician reads.
    """

    __tablename__ = "ingest_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    status: Mapped[str] = mapped_column(String(12), default=IngestStatus.QUEUED.value)
    total: Mapped[int] = mapped_column(Integer, default=0)
    processed: Mapped[int] = mapped_column(Integer, default=0)
    sources: Mapped[list] = mapped_column(JSON, default=list)
    report: Mapped[dict] = mapped_column(JSON, default=dict)
    error: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def status_label(self) -> str:
        return INGEST_STATUS_LABELS.get(self.status, self.status)


class KeyImage(Base):
    """A slice the reviewer marked, with the window it was read at and a PNG kept from that moment.

    Anchored to the image itself (instance, SOP Instance UID, frame): a slice index shifts when scans are added
    to the series, the anchor does not. `slice_index` is only where the slice stood when it was marked.
    """

    __tablename__ = "key_images"
    __table_args__ = (UniqueConstraint("case_id", "instance_id", "frame"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("series.id"))
    slice_index: Mapped[int] = mapped_column(Integer)
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("instances.id"))
    sop_instance_uid: Mapped[str] = mapped_column(String(64), default="")
    frame: Mapped[int] = mapped_column(Integer, default=0)
    window_center: Mapped[float | None] = mapped_column(Float)
    window_width: Mapped[float | None] = mapped_column(Float)
    caption: Mapped[str] = mapped_column(String(300), default="")
    png_key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))

    series: Mapped[Series] = relationship()
    instance: Mapped[Instance | None] = relationship()


class IdentityMismatch(Base):
    """A field in which a study's header names another patient than the referral (or than another study of
    the same referral), and how a person resolved it (imaging.identity_lifecycle).

    `study_id` is deliberately no foreign key: a study found to be the wrong patient's is removed, and this
    record stays as the account of what was removed and why (`removed` lists its series and instances, by
    which the audit trail shows who saw its images)."""

    __tablename__ = "identity_mismatches"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    study_id: Mapped[int] = mapped_column(Integer, index=True)
    study_instance_uid: Mapped[str] = mapped_column(String(64))
    study_label: Mapped[str] = mapped_column(String(300), default="")
    field: Mapped[str] = mapped_column(String(24))
    referral_value: Mapped[str] = mapped_column(String(300), default="")
    dicom_value: Mapped[str] = mapped_column(String(300), default="")
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reason: Mapped[str] = mapped_column(Text, default="")
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    removed: Mapped[dict | None] = mapped_column(JSON)

    resolved_by = relationship("User", foreign_keys=[resolved_by_id])
