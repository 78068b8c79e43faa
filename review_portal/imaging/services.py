"""Ingest of scans into a case, and the ordered slice list the viewer scrolls through."""
from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from review_portal.audit.services import record
from review_portal.imaging import dicom
from review_portal.imaging.models import Instance, Series, Study
from review_portal.storage import LocalStorage


@dataclass
class IngestReport:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)

    @property
    def summary(self) -> str:
        parts = [f"{self.accepted} image file(s) added"]
        if self.duplicates:
            parts.append(f"{self.duplicates} already on file")
        if self.rejected:
            parts.append(f"{len(self.rejected)} skipped")
        return ", ".join(parts) + "."


@dataclass(frozen=True)
class Slice:
    """One scrollable image of a series: an instance, and a frame within it."""

    instance: Instance
    frame: int


def _candidate_files(uploads, workdir: Path, report: IngestReport):
    """Yield (display name, path) for every file sent, expanding .zip archives safely."""
    for n, upload in enumerate(uploads):
        if zipfile.is_zipfile(upload.path):
            target = workdir / f"zip{n}"
            target.mkdir()
            try:
                entries = dicom.expand_zip(upload.path, target)
            except dicom.UploadRejected as exc:
                report.rejected.append((upload.filename, exc.reason))
                continue
            for name, path in entries:
                yield f"{upload.filename}: {name}", path
        else:
            yield upload.filename, upload.path


def ingest_scans(db: Session, storage: LocalStorage, case, uploads, *, by, ip: str, now: datetime) -> IngestReport:
    report = IngestReport()
    if not uploads:
        return report
    workdir = storage.workdir()
    touched: set[int] = set()
    try:
        for name, path in _candidate_files(uploads, workdir, report):
            try:
                info = dicom.inspect_dicom(path)
            except dicom.DicomRejected as exc:
                report.rejected.append((name, exc.reason))
                continue
            series = _series_for(db, case, info, now)
            exists = db.scalar(
                select(Instance.id).where(Instance.series_id == series.id, Instance.sop_instance_uid == info.sop_instance_uid)
            )
            if exists:
                report.duplicates += 1
                continue
            key, _ = storage.put_file(path)
            db.add(Instance(
                series_id=series.id, sop_instance_uid=info.sop_instance_uid, instance_number=info.instance_number,
                slice_position=info.slice_position, frames=info.number_of_frames, rows=info.rows, columns=info.columns,
                photometric_interpretation=info.photometric_interpretation, window_center=info.window_center,
                window_width=info.window_width, transfer_syntax_uid=info.transfer_syntax_uid, blob_key=key,
                size=path.stat().st_size, original_filename=Path(name).name[:255],
            ))
            touched.add(series.id)
            report.accepted += 1
        db.flush()
        from review_portal import jobs

        for series_id in sorted(touched):
            jobs.submit(db, storage, "imaging.series_thumbnail", now=now, case_id=case.id, series_id=series_id)
    finally:
        storage.remove_workdir(workdir)
    record(db, action="scans.ingested", by=by, ip=ip, now=now, case=case,
           detail=report.summary + "".join(f" | {n}: {r}" for n, r in report.rejected[:50]))
    return report


def _series_for(db: Session, case, info: dicom.InstanceInfo, now: datetime) -> Series:
    study = db.scalar(select(Study).where(Study.case_id == case.id, Study.study_instance_uid == info.study_instance_uid))
    if study is None:
        study = Study(case_id=case.id, study_instance_uid=info.study_instance_uid, study_date=info.study_date,
                      description=info.study_description[:200], created_at=now)
        db.add(study)
        db.flush()
    series = db.scalar(select(Series).where(Series.study_id == study.id, Series.series_instance_uid == info.series_instance_uid))
    if series is None:
        series = Series(study_id=study.id, series_instance_uid=info.series_instance_uid, modality=info.modality[:16],
                        description=info.series_description[:200], series_number=info.series_number)
        db.add(series)
        db.flush()
    return series


def ordered_slices(series: Series) -> list[Slice]:
    instances = sorted(series.instances, key=lambda i: dicom.sort_key(_as_info(i)))
    return [Slice(inst, f) for inst in instances for f in range(max(inst.frames, 1))]


def _as_info(inst: Instance) -> dicom.InstanceInfo:
    return dicom.InstanceInfo(
        sop_instance_uid=inst.sop_instance_uid, series_instance_uid="", study_instance_uid="", modality="",
        study_date=None, study_description="", series_description="", series_number=None,
        instance_number=inst.instance_number, slice_position=inst.slice_position, number_of_frames=inst.frames,
        rows=inst.rows, columns=inst.columns, photometric_interpretation=inst.photometric_interpretation,
        window_center=inst.window_center, window_width=inst.window_width, transfer_syntax_uid=inst.transfer_syntax_uid,
    )


def _make_series_thumbnail(db: Session, storage: LocalStorage, series: Series) -> None:
    slices = ordered_slices(series)
    if not slices:
        return
    middle = slices[len(slices) // 2].instance
    try:
        png = dicom.make_thumbnail(storage.local_path(middle.blob_key))
    except dicom.DicomRejected:
        return
    series.thumbnail_key, _ = storage.put_bytes(png)


def series_of_case(db: Session, case_id: int) -> list[Series]:
    return list(db.scalars(
        select(Series).join(Study).where(Study.case_id == case_id).order_by(Study.study_date, Study.id, Series.series_number, Series.id)
    ))


def get_series_in_case(db: Session, case_id: int, series_id: int) -> Series | None:
    return db.scalar(select(Series).join(Study).where(Series.id == series_id, Study.case_id == case_id))
