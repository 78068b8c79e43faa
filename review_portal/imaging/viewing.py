"""What the browser viewer reads: each frame's geometry for the series JSON, and the frame's stored pixel values.

The geometry is stored at ingest; instances ingested before migration 0004 have none (samples_per_pixel is
NULL) and get it here, read from the stored file's header in the sandbox, the first time their series is
opened. The pixels are decoded under the sandbox's budget (sandboxed.frame_pixels) and gzip-compressed once:
the compressed answers of recently asked frames are kept (bounded by bytes), since a viewer scrolling back and
forth, or a second reader, asks for the same frames again.
"""
from __future__ import annotations

import gzip
import threading
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from review_portal.imaging import indexing, pixels, reading, sandboxed
from review_portal.imaging.pixel_check import renders_in_process
from review_portal.imaging.models import Instance, Series, Study
from review_portal.imaging.services import Slice
from review_portal.storage import Storage

__all__ = ["FramePixels", "fill_geometry", "frame_pixels", "frames_of", "get_instance_in_case", "patient_of"]


def fill_geometry(db: Session, storage: Storage, series: Series) -> int:
    """Read the geometry of the series' instances that have none yet; returns how many were filled. Flushes."""
    missing = [i for i in series.instances if i.samples_per_pixel is None]
    filled = 0
    for start in range(0, len(missing), _GEOMETRY_BATCH):
        batch = missing[start:start + _GEOMETRY_BATCH]
        try:
            found = sandboxed.geometries([storage.verified_local_path(i.blob_key) for i in batch])
        except reading.DicomRejected:
            continue  # the worker ran out of time or memory: left unread, tried again on the next view
        _apply_geometry(series, batch, found)
        filled += len(batch)
    if filled:
        db.flush()
    return filled


_GEOMETRY_BATCH = 64  # headers read per worker call: well within the sandbox's time limit


def _apply_geometry(series: Series, batch: list[Instance], found: list[dict | None]) -> None:
    for inst, geometry in zip(batch, found):
        # A header that cannot be read now still counts as read: one sample, no geometry.
        values = indexing.fit(Instance, indexing.geometry_columns(geometry or {"samples_per_pixel": 1}))
        for name, value in values.items():
            setattr(inst, name, value)
        if inst.samples_per_pixel is None:
            inst.samples_per_pixel = 1
        if geometry and not series.frame_of_reference_uid:
            series.frame_of_reference_uid = (geometry.get("frame_of_reference_uid") or "")[:64]


def frames_of(slices: list[Slice], pixels_url) -> list[dict]:
    """One entry per frame, in display order (the contract of static/js/viewer.js and the measurement tools)."""
    out = []
    for index, s in enumerate(slices):
        inst = s.instance
        out.append({
            "index": index, "instance_id": inst.id, "sop_instance_uid": inst.sop_instance_uid, "frame": s.frame,
            "rows": inst.rows, "columns": inst.columns, "pixel_spacing": inst.pixel_spacing,
            "spacing_source": inst.spacing_source or "", "image_orientation": inst.image_orientation,
            "image_position": inst.image_position if inst.frames <= 1 else None,
            "slice_position": inst.slice_position if inst.frames <= 1 else None,
            "slice_thickness": inst.slice_thickness,
            "rescale_slope": inst.rescale_slope if inst.rescale_slope is not None else 1.0,
            "rescale_intercept": inst.rescale_intercept if inst.rescale_intercept is not None else 0.0,
            "photometric": inst.photometric_interpretation, "samples_per_pixel": inst.samples_per_pixel or 1,
            "window_center": inst.window_center, "window_width": inst.window_width,
            "pixels_url": pixels_url(inst.id, s.frame),
        })
    return out


def patient_of(case, series: Series) -> dict:
    """The overlay's patient and study lines: the referral's patient, the series' study."""
    study_date = series.study.study_date if series.study else None
    return {"name": case.patient_name, "id": case.patient_mrn, "study_date": study_date.isoformat() if study_date else "",
            "series_description": series.description or "", "modality": series.modality or ""}


def get_instance_in_case(db: Session, case_id: int, instance_id: int) -> Instance | None:
    return db.scalar(select(Instance).join(Series).join(Study)
                     .where(Instance.id == instance_id, Study.case_id == case_id))


@dataclass(frozen=True)
class FramePixels:
    gzipped: bytes
    dtype: str
    rows: int
    columns: int
    samples: int


_CACHE_BYTES = 64 * 1024 * 1024
_cache: OrderedDict[tuple[str, int], FramePixels] = OrderedDict()
_cache_used = 0
_cache_lock = threading.Lock()


def frame_pixels(storage: Storage, instance: Instance, frame: int) -> FramePixels:
    """The frame's stored values, gzip-compressed (DicomRejected if it cannot be decoded within the limits)."""
    global _cache_used
    key = (instance.blob_key, frame)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    # JPEG 2000 is read from its uncompressed copy once the pixel check made it (the same values); a file that
    # passed the check decodes in-process, any other the first time in the sandbox.
    source = instance.decoded_key or instance.blob_key
    dtype, rows, columns, samples, raw = pixels.unpack(
        sandboxed.frame_pixels(storage.verified_local_path(source), frame, checked=renders_in_process(instance)))
    found = FramePixels(gzip.compress(raw, compresslevel=1, mtime=0), dtype, rows, columns, samples)
    with _cache_lock:
        if key not in _cache and len(found.gzipped) <= _CACHE_BYTES // 8:
            _cache[key] = found
            _cache_used += len(found.gzipped)
            while _cache_used > _CACHE_BYTES:
                _, old = _cache.popitem(last=False)
                _cache_used -= len(old.gzipped)
    return found
