"""Scans in a case: ingest jobs (idempotent, resumable), the ordered slice list the viewer
scrolls through, and the key images a reviewer marks for the letter. Services flush, never commit."""
from __future__ import annotations

import threading
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select
from sqlalchemy.orm import Session, contains_eager

from review_portal import jobs
from review_portal.audit.services import record
from review_portal.auth.models import User
from review_portal.cases.models import Case
from review_portal.errors import InvalidInput, NotFound, PermissionDenied, StoredFileCorrupt
from review_portal.imaging import (archives, identity_services, indexing, inspection, key_images, pixel_check, reading,
                                  sandboxed)
from review_portal.imaging.limits import ImageLimits, of_session, stored_frames
from review_portal.imaging.lifecycle import FINISHED_STATUSES
from review_portal.imaging.lifecycle import set_status as set_ingest_status
from review_portal.imaging.models import IngestJob, IngestStatus, Instance, KeyImage, Series, Study
from review_portal.imaging.permissions import can_add_scans, can_mark_key_images
from review_portal.storage import Storage
from review_portal.uploads import UploadedFile, scratch

# How often a long ingest reports progress to its caller (a worker commits there).
PROGRESS_EVERY = 25
MAX_CAPTION = 300


@dataclass
class IngestReport:
    """What happened to an upload, in words a referring physician can act on."""

    accepted: int = 0
    duplicates: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    ingest_id: int | None = None
    finished: bool = True  # False while a worker still has the upload queued or running

    @property
    def summary(self) -> str:
        parts = [f"{self.accepted} image file(s) added"]
        if self.duplicates:
            parts.append(f"{self.duplicates} already on file")
        if self.rejected:
            parts.append(f"{len(self.rejected)} skipped")
        return ", ".join(parts) + "."

    @classmethod
    def of(cls, job: IngestJob) -> IngestReport:
        r = job.report or {}
        return cls(r.get("accepted", 0), r.get("duplicates", 0), [tuple(x) for x in r.get("rejected", [])], job.id,
                   job.status in FINISHED_STATUSES)


@dataclass(frozen=True)
class Slice:
    """One scrollable image of a series: an instance, and a frame within it."""

    instance: Instance
    frame: int


# --------------------------------------------------------------------------
# Ingest
# --------------------------------------------------------------------------


def create_ingest(db: Session, storage: Storage, case, uploads: list[UploadedFile], *, by, ip: str, now: datetime) -> IngestJob:
    """Keep what was sent, byte for byte, and queue it for ingest.

    `uploads` are files already spooled by the door they came in by (see uploads.spooled); each is
    streamed into the content-addressed store, never read whole into memory. The job can then be
    processed (and re-processed after a crash) from the stored blobs alone.
    """
    if not can_add_scans(by, case):
        raise PermissionDenied("Scans can only be added by the referring physician or a coordinator while the case is open.")
    sources = []
    for upload in uploads:
        key, _ = storage.put_file(upload.path, upload.sha256)
        sources.append({"name": Path(str(upload.filename).replace("\\", "/")).name[:255] or "upload", "key": key})
    job = IngestJob(case_id=case.id, status=IngestStatus.QUEUED.value, total=0, processed=0, sources=sources,
                    report={}, error="", created_by_id=getattr(by, "id", None), created_at=now)
    db.add(job)
    db.flush()
    record(db, action="scans.uploaded", by=by, ip=ip, now=now, case=case, object_type="ingest", object_id=job.id,
           detail=f"{len(sources)} file(s)")
    return job


def _expanded_sources(storage: Storage, job: IngestJob, workdir: Path, rejected: list, limits: ImageLimits):
    """(display name, path, source key or None) for every candidate file, zips expanded safely.

    The order is deterministic, so a resumed job can skip the `processed` files it has done.
    """
    out = []
    for n, source in enumerate(job.sources):
        path = storage.local_path(source["key"])
        if zipfile.is_zipfile(path):
            target = workdir / f"zip{n}"
            target.mkdir()
            try:
                entries = archives.expand_zip(
                    path, target, max_entries=limits.zip_max_entries, max_total_bytes=limits.zip_max_total_bytes,
                    max_ratio=limits.zip_max_ratio, max_entry_bytes=limits.zip_max_entry_bytes,
                    ratio_min_bytes=limits.zip_ratio_min_bytes, max_archive_ratio=limits.zip_max_archive_ratio,
                    archive_ratio_min_bytes=limits.zip_archive_ratio_min_bytes)
            except archives.UploadRejected as exc:
                rejected.append((source["name"], exc.reason))
                continue
            out.extend((f"{source['name']}: {name}", p, None) for name, p in sorted(entries))
        else:
            out.append((source["name"], path, source["key"]))
    return out


class _Index:
    """Studies, series and SOP Instance UIDs already in the case, loaded once per job."""

    def __init__(self, db: Session, case_id: int, now: datetime):
        self.db, self.case_id, self.now = db, case_id, now
        self.studies = {s.study_instance_uid: s for s in db.scalars(select(Study).where(Study.case_id == case_id))}
        self.series: dict[tuple[int, str], Series] = {}
        self.uids: dict[int, set[str]] = {}
        for s in db.scalars(select(Series).join(Study).where(Study.case_id == case_id)):
            self.series[(s.study_id, s.series_instance_uid)] = s
        rows = db.execute(
            select(Instance.series_id, Instance.sop_instance_uid).join(Series).join(Study).where(Study.case_id == case_id)
        )
        for series_id, uid in rows:
            self.uids.setdefault(series_id, set()).add(uid)

    def series_for(self, info: inspection.InstanceInfo) -> Series:
        study = self.studies.get(info.study_instance_uid)
        if study is None:
            study = Study(case_id=self.case_id, created_at=self.now, **indexing.fit(Study, {
                "study_instance_uid": info.study_instance_uid, "study_date": info.study_date,
                "description": info.study_description, **identity_services.study_identity_values(info)}))
            self.db.add(study)
            self.db.flush()
            self.studies[info.study_instance_uid] = study
        series = self.series.get((study.id, info.series_instance_uid))
        if series is None:
            series = Series(study_id=study.id, **indexing.fit(Series, {
                "series_instance_uid": info.series_instance_uid, "modality": info.modality,
                "description": info.series_description, "series_number": info.series_number,
                "frame_of_reference_uid": (info.geometry or {}).get("frame_of_reference_uid", "")}))
            self.db.add(series)
            self.db.flush()
            self.series[(study.id, info.series_instance_uid)] = series
        return series

    def mark(self) -> tuple[set, set]:
        return set(self.studies), set(self.series)

    def undo(self, mark: tuple[set, set]) -> None:
        """Forget studies and series created since `mark` (their savepoint was rolled back)."""
        studies, series = mark
        for uid in set(self.studies) - studies:
            del self.studies[uid]
        for key in set(self.series) - series:
            gone = self.series.pop(key)
            self.uids.pop(getattr(gone, "id", None), None)


def _instance_values(info: inspection.InstanceInfo, name: str, path: Path) -> dict:
    """The instance's row, fitted to its columns before anything is written (DicomRejected if it cannot be)."""
    return indexing.fit(Instance, {
        "sop_instance_uid": info.sop_instance_uid, "sop_class_uid": info.sop_class_uid,
        "instance_number": info.instance_number, "slice_position": info.slice_position,
        "frames": info.number_of_frames, "rows": info.rows, "columns": info.columns,
        "photometric_interpretation": info.photometric_interpretation, "window_center": info.window_center,
        "window_width": info.window_width, "transfer_syntax_uid": info.transfer_syntax_uid,
        "size": path.stat().st_size, "original_filename": Path(name.replace("\\", "/")).name,
        **indexing.geometry_columns(info.geometry),
    })


def _index_file(db: Session, storage: Storage, index: _Index, info: inspection.InstanceInfo, name: str, path: Path,
                source_key: str | None) -> tuple[bool, int]:
    """Index one file in its own SAVEPOINT: (True if added, False if already on file; its series id).

    Should the database still refuse a value the fitting let through, only this file's rows are undone and it
    is rejected with a reason; the files before and after it are kept.
    """
    values = _instance_values(info, name, path)
    savepoint = db.begin_nested()
    mark = index.mark()
    try:
        series = index.series_for(info)
        if info.sop_instance_uid in index.uids.get(series.id, set()):
            savepoint.commit()
            return False, series.id
        # A file sent on its own is already stored as sent; only zip entries need storing.
        key = source_key or storage.put_file(path)[0]
        db.add(Instance(series_id=series.id, blob_key=key, **values))
        db.flush()
        savepoint.commit()
    except reading.DicomRejected:
        savepoint.rollback()
        index.undo(mark)
        raise
    except (sa_exc.DataError, sa_exc.IntegrityError, sa_exc.StatementError, OverflowError) as exc:
        # OverflowError: SQLite's driver refuses an integer past 64 bits before the statement runs.
        if isinstance(exc, sa_exc.DBAPIError) and not isinstance(exc, (sa_exc.DataError, sa_exc.IntegrityError)):
            raise  # the database itself failed (connection, lock): not this file's fault
        savepoint.rollback()
        index.undo(mark)
        raise reading.DicomRejected("a value in the file does not fit the image index (e.g. a number out of range)") from exc
    index.uids.setdefault(series.id, set()).add(info.sop_instance_uid)
    return True, series.id


def process_ingest(
    db: Session,
    storage: Storage,
    ingest_id: int,
    *,
    now: datetime,
    on_progress: Callable[[IngestJob], None] | None = None,
) -> IngestJob:
    """Index every readable DICOM file of an ingest job into its case. Safe to run again.

    Instances are keyed by (series, SOP Instance UID), so a re-run or a re-upload adds no
    duplicate. A job that already finished is returned as it is; one interrupted while
    running resumes after the last file it reported through `on_progress` (a worker commits
    there; inline, the request's one transaction covers the whole job). Unreadable files
    are listed with their reason and the rest of the study is kept.
    """
    job = db.get(IngestJob, ingest_id)
    if job is None:
        raise NotFound("No such upload.")
    if job.status in FINISHED_STATUSES:
        return job
    state = dict(job.report or {})
    accepted, duplicates = state.get("accepted", 0), state.get("duplicates", 0)
    rejected = [tuple(x) for x in state.get("rejected", [])]
    touched: set[int] = set(state.get("series_ids", []))
    stored = [tuple(x) for x in state.get("stored", [])]
    resume_at = job.processed if job.status == IngestStatus.RUNNING else 0

    set_ingest_status(job, IngestStatus.RUNNING)
    limits = of_session(db)
    with scratch(storage) as workdir:
        zip_rejections: list = []
        candidates = _expanded_sources(storage, job, workdir, zip_rejections, limits)
        if resume_at == 0:
            rejected.extend(zip_rejections)
        job.total = len(candidates)
        index = _Index(db, job.case_id, now)

        def save_state():
            job.report = {"accepted": accepted, "duplicates": duplicates, "rejected": [list(r) for r in rejected],
                          "series_ids": sorted(touched), "stored": [list(x) for x in stored]}

        for position in range(resume_at, len(candidates)):
            name, path, source_key = candidates[position]
            try:
                info = sandboxed.inspect_dicom(path, limits, decode=False)  # pixels: the pixel check job
                added, series_id = _index_file(db, storage, index, info, name, path, source_key)
            except reading.DicomRejected as exc:
                rejected.append((name, exc.reason))
            else:
                stored.append((name, info.sop_instance_uid))
                if added:
                    touched.add(series_id)
                    accepted += 1
                else:
                    duplicates += 1
            job.processed = position + 1
            if on_progress is not None and job.processed % PROGRESS_EVERY == 0:
                save_state()
                db.flush()
                on_progress(job)
        db.flush()
        from review_portal import jobs

        save_state()
        identity_services.flag_mismatches(db, _case(db, job.case_id), now=now)  # is this the same patient?
        set_ingest_status(job, IngestStatus.DONE)
        job.finished_at = now
    report = IngestReport(accepted, duplicates, rejected)

    uploader = db.get(User, job.created_by_id) if job.created_by_id else None
    record(db, action="scans.ingested", by=uploader, ip="", now=now, case=_case(db, job.case_id), object_type="ingest",
           object_id=job.id, detail=report.summary + "".join(f" | {n}: {r}" for n, r in rejected[:50]))
    db.flush()
    if touched:  # decoding every frame, then thumbnails: inline in the embedded default, else on a worker
        jobs.submit(db, storage, "imaging.pixel_check", now=now, case_id=job.case_id, ingest_id=job.id)
    return job


def _case(db: Session, case_id: int):
    return db.get(Case, case_id)


def start_ingest(db: Session, storage: Storage, job: IngestJob, *, now: datetime) -> IngestJob:
    """Process a stored upload through the job interface: at once in the embedded default, on a worker
    when a queue is configured (then the ingest page shows its progress)."""

    jobs.submit(db, storage, "imaging.ingest", now=now, case_id=job.case_id, ingest_id=job.id)
    return job


def ingest_scans(db: Session, storage: Storage, case, uploads, *, by, ip: str, now: datetime) -> IngestReport:
    """Store an upload and start its processing (see start_ingest)."""
    if not uploads:
        return IngestReport()
    job = create_ingest(db, storage, case, uploads, by=by, ip=ip, now=now)
    return IngestReport.of(start_ingest(db, storage, job, now=now))


def ingest_progress(job: IngestJob) -> dict:
    report = IngestReport.of(job)
    return {
        "id": job.id, "status": job.status, "total": job.total, "processed": job.processed,
        "accepted": report.accepted, "duplicates": report.duplicates,
        "rejected": [{"name": n, "reason": r} for n, r in report.rejected],
        "summary": report.summary if job.status == IngestStatus.DONE else "",
        "error": job.error or "",
    }


def get_ingest_in_case(db: Session, case_id: int, ingest_id: int) -> IngestJob:
    job = db.get(IngestJob, ingest_id)
    if job is None or job.case_id != case_id:
        raise NotFound("No such upload.")
    return job


def ingests_of_case(db: Session, case_id: int) -> list[IngestJob]:
    return list(db.scalars(select(IngestJob).where(IngestJob.case_id == case_id).order_by(IngestJob.id.desc())))


# --------------------------------------------------------------------------
# Series and slices
# --------------------------------------------------------------------------


def ordered_instances(series: Series) -> list[Instance]:
    """The series' instances in stacking order, without expanding their frames."""
    return sorted(series.instances, key=lambda i: inspection.sort_key(_as_info(i)))


def ordered_slices(series: Series) -> list[Slice]:
    # Frame counts were verified against the data at ingest; clamped again here, whatever the row says.
    return [Slice(inst, f) for inst in ordered_instances(series) for f in range(stored_frames(inst.frames))]


def _as_info(inst: Instance) -> inspection.InstanceInfo:
    return inspection.InstanceInfo(
        sop_instance_uid=inst.sop_instance_uid, series_instance_uid="", study_instance_uid="", modality="",
        study_date=None, study_description="", series_description="", series_number=None,
        instance_number=inst.instance_number, slice_position=inst.slice_position,
        number_of_frames=stored_frames(inst.frames),
        rows=inst.rows, columns=inst.columns, photometric_interpretation=inst.photometric_interpretation,
        window_center=inst.window_center, window_width=inst.window_width, transfer_syntax_uid=inst.transfer_syntax_uid,
    )


def _make_series_thumbnail(storage: Storage, series: Series) -> str | None:
    """Render the thumbnail in a limited worker; the reason it could not be made, or None."""
    slices = ordered_slices(series)
    if not slices:
        return "no slices"
    middle = slices[len(slices) // 2].instance
    try:
        png = sandboxed.make_thumbnail(storage.verified_local_path(middle.decoded_key or middle.blob_key))
    except reading.DicomRejected as exc:
        return exc.reason
    series.thumbnail_key = storage.put_bytes_repairing(png)
    return None


def series_of_case(db: Session, case_id: int) -> list[Series]:
    # The study is already joined for the order: fill series.study from it instead of one query per series.
    return list(db.scalars(
        select(Series).join(Study).options(contains_eager(Series.study)).where(Study.case_id == case_id)
        .order_by(Study.study_date, Study.id, Series.series_number, Series.id)
    ))


def instance_counts(db: Session, series_ids: list[int]) -> dict[int, int]:
    """Image files per series, counted in the database (not by loading every instance row)."""
    if not series_ids:
        return {}
    rows = db.execute(select(Instance.series_id, func.count()).where(Instance.series_id.in_(series_ids))
                      .group_by(Instance.series_id))
    return {series_id: n for series_id, n in rows}


def get_series_in_case(db: Session, case_id: int, series_id: int) -> Series | None:
    return db.scalar(select(Series).join(Study).where(Series.id == series_id, Study.case_id == case_id))


class SliceKeys:
    """Ordered (blob key, frame) per series for rendering slices: sorting every instance on every slice request
    was most of the viewer's work while scrolling. Keyed by the series' instance count and highest instance id,
    read with the series itself, so scans added since are seen at once. One per app (see `slice_keys_of`), bounded."""

    def __init__(self, max_series: int = 128):
        self.max_series = max_series
        self._lock = threading.Lock()
        self._keys: OrderedDict[int, tuple[tuple[int, int | None], list[tuple[str, int]]]] = OrderedDict()

    def get(self, series: Series, fingerprint: tuple) -> list[tuple[str, int, str, bool]]:
        """The series' slices in viewing order as (blob key, frame, key to render from, pixels checked)."""
        with self._lock:
            hit = self._keys.get(series.id)
            if hit is not None and hit[0] == fingerprint:
                self._keys.move_to_end(series.id)
                return hit[1]
        keys = [(s.instance.blob_key, s.frame, s.instance.decoded_key or s.instance.blob_key,
                 pixel_check.renders_in_process(s.instance)) for s in ordered_slices(series)]
        with self._lock:
            self._keys[series.id] = (fingerprint, keys)
            self._keys.move_to_end(series.id)
            while len(self._keys) > self.max_series:
                self._keys.popitem(last=False)
        return keys


def slice_keys_of(app) -> SliceKeys:
    return app.extensions.setdefault("imaging_slice_keys", SliceKeys())


def series_for_slices(db: Session, case_id: int, series_id: int):
    """(series, fingerprint) for a series in the case, or None; one statement."""
    count = select(func.count(Instance.id)).where(Instance.series_id == Series.id).scalar_subquery()
    newest = select(func.max(Instance.id)).where(Instance.series_id == Series.id).scalar_subquery()
    checked = select(func.count(Instance.pixels_checked_at)).where(Instance.series_id == Series.id).scalar_subquery()
    row = db.execute(select(Series, count, newest, checked).join(Study)
                     .where(Series.id == series_id, Study.case_id == case_id)).first()
    return None if row is None else (row[0], (row[1], row[2], row[3]))


def series_label(series: Series) -> str:
    number = f" (series {series.series_number})" if series.series_number is not None else ""
    return f"{series.modality} {series.description or 'series'}{number}".strip()


def slice_label(slices: list[Slice], index: int) -> str:
    chosen = slices[index]
    label = f"Slice {index + 1} of {len(slices)}"
    if chosen.instance.slice_position is not None and stored_frames(chosen.instance.frames) <= 1:
        label += f", position {chosen.instance.slice_position:.1f} mm"
    return label


def window_label(center: float | None, width: float | None) -> str:
    if center is None or width is None:
        return "Window from the file"
    return f"W {width:g} / L {center:g}"


# --------------------------------------------------------------------------
# Key images
# --------------------------------------------------------------------------


def mark_key_image(db: Session, storage: Storage, case, series: Series, *, slice_index: int,
                   center: float | None, width: float | None, caption: str, by, ip: str, now: datetime,
                   sop_instance_uid: str | None = None, frame: int = 0) -> KeyImage:
    """Keep a slice, at the window it was read with, as a PNG rendered now (what the letter shows).

    The slice is named by `sop_instance_uid` and `frame` when given (the viewer knows them), else by its index now;
    either way it is kept anchored to the image, so scans added later do not move it."""
    if not can_mark_key_images(by, case):
        raise PermissionDenied("Only the assigned reviewer marks key images, before the opinion is signed.")
    slices = ordered_slices(series)
    if sop_instance_uid:
        slice_index = key_images.index_of_uid(slices, sop_instance_uid, frame)
    if slice_index is None or not 0 <= slice_index < len(slices):
        raise InvalidInput("No such slice in this series.")
    if (center is None) != (width is None) or (width is not None and width <= 0):
        raise InvalidInput("Give both window centre and a positive width, or neither.")
    caption = (caption or "").strip()
    if len(caption) > MAX_CAPTION:
        raise InvalidInput(f"Keep the caption under {MAX_CAPTION} characters.")
    chosen = slices[slice_index]
    try:
        png = _render_key_image(storage, chosen, center, width)
    except reading.DicomRejected as exc:
        raise InvalidInput(f"This image cannot be kept: {exc.reason}")
    png_key = storage.put_bytes_repairing(png)
    key_image = db.scalar(select(KeyImage).where(
        KeyImage.case_id == case.id, KeyImage.instance_id == chosen.instance.id, KeyImage.frame == chosen.frame))
    if key_image is None:
        key_image = KeyImage(case_id=case.id, series_id=series.id, instance_id=chosen.instance.id,
                             sop_instance_uid=chosen.instance.sop_instance_uid, frame=chosen.frame)
        db.add(key_image)
    key_image.slice_index = slice_index
    key_image.window_center, key_image.window_width = center, width
    key_image.caption, key_image.png_key = caption, png_key
    key_image.created_at, key_image.created_by_id = now, by.id
    db.flush()
    record(db, action="key_image.marked", by=by, ip=ip, now=now, case=case, object_type="key_image",
           object_id=key_image.id, detail=f"series {series.id} slice {slice_index + 1}; {window_label(center, width)}")
    return key_image


def _render_key_image(storage: Storage, chosen: Slice, center: float | None, width: float | None) -> bytes:
    inst = chosen.instance
    return sandboxed.render_frame(storage.verified_local_path(inst.decoded_key or inst.blob_key), chosen.frame,
                                  checked=pixel_check.renders_in_process(inst), center=center, width=width,
                                  png_compression=6)


# --------------------------------------------------------------------------
# Derivatives as they are served: checked against their key (their sha256), rebuilt from the original if not
# --------------------------------------------------------------------------


def thumbnail_png(db: Session, storage: Storage, series: Series) -> bytes:
    """The series' thumbnail. A stored copy that no longer matches its key is rebuilt from the (verified)
    original; raises StoredFileCorrupt when that cannot be done."""
    try:
        return storage.read_verified(series.thumbnail_key)
    except (StoredFileCorrupt, FileNotFoundError):
        pass
    _make_series_thumbnail(storage, series)
    db.flush()
    return storage.read_verified(series.thumbnail_key)  # still corrupt if the original could not be rendered


def key_image_png(db: Session, storage: Storage, key_image: KeyImage) -> bytes:
    """A key image's PNG, rebuilt at its slice and window from the (verified) original when the stored copy
    no longer matches its key."""
    try:
        return storage.read_verified(key_image.png_key)
    except (StoredFileCorrupt, FileNotFoundError):
        broken = key_image.png_key
    slices = ordered_slices(key_image.series)
    index = key_images.anchored_index(slices, key_image.instance_id, key_image.frame)
    if index is None:
        raise StoredFileCorrupt(broken)
    try:
        png = _render_key_image(storage, slices[index], key_image.window_center,
                                key_image.window_width)
    except reading.DicomRejected:
        raise StoredFileCorrupt(broken)
    key_image.png_key = storage.put_bytes_repairing(png)
    db.flush()
    return png


def unmark_key_image(db: Session, case, key_image_id: int, *, by, ip: str, now: datetime) -> None:
    if not can_mark_key_images(by, case):
        raise PermissionDenied("Only the assigned reviewer changes key images, before the opinion is signed.")
    key_image = db.get(KeyImage, key_image_id)
    if key_image is None or key_image.case_id != case.id:
        raise NotFound("No such key image.")
    record(db, action="key_image.unmarked", by=by, ip=ip, now=now, case=case, object_type="key_image",
           object_id=key_image.id, detail=f"series {key_image.series_id} slice {key_image.slice_index + 1}")
    db.delete(key_image)
    db.flush()


def key_images_of_case(db: Session, case_id: int) -> list[KeyImage]:
    return list(db.scalars(
        select(KeyImage).where(KeyImage.case_id == case_id).order_by(KeyImage.series_id, KeyImage.slice_index)
    ))


def get_key_image_in_case(db: Session, case_id: int, key_image_id: int) -> KeyImage:
    key_image = db.get(KeyImage, key_image_id)
    if key_image is None or key_image.case_id != case_id:
        raise NotFound("No such key image.")
    return key_image


def key_images_for_letter(db: Session, case_id: int) -> list[dict]:
    """Plain values for the letter: caption, where the image is, the window, and the stored PNG's key."""
    return [{name: value for name, value in item.items() if name != "id"} for item in key_images_for_page(db, case_id)]


def key_images_for_page(db: Session, case_id: int) -> list[dict]:
    """What the letter shows, plus each key image's id, by which a page links its PNG (imaging.key_image_png)."""
    out = []
    slices_by_series: dict[int, list[Slice]] = {}
    for key_image in key_images_of_case(db, case_id):
        series = key_image.series
        slices = slices_by_series.setdefault(series.id, ordered_slices(series))
        index = key_images.anchored_index(slices, key_image.instance_id, key_image.frame)
        out.append({
            "id": key_image.id,
            "caption": key_image.caption,
            "series_label": series_label(series),
            "slice_label": slice_label(slices, index) if index is not None else "Image no longer in the series",
            "window_label": window_label(key_image.window_center, key_image.window_width),
            "png_key": key_image.png_key,
        })
    return out
