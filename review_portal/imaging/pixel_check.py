"""The pixel check: every frame of a newly indexed file decoded once, in the sandbox, in a background job.

Ingest reads headers and the encapsulated frame table only (parse-and-store speed); the study is visible at once.
This job then decodes each compressed file's frames under the sandbox's limits (review_portal.sandbox), marks
the instance `pixels_checked_at`, and makes the series thumbnails. Until then the viewer renders the file only
inside the sandbox (sandboxed.render_frame), so deferring the check opens no unbounded decode in a web process.
A file that fails is removed from the index and listed, with its reason, in its upload's report.

JPEG 2000 decodes slowly (about 50 times a lossless JPEG slice, and imagecodecs' thread count does not help on
this 2-core host: benchmarks/README.md), so its pixels are stored once more, uncompressed, as a derived blob
(`decoded_key`), and the viewer renders from that copy: the same pixel values, read straight from disk.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pydicom import dcmread
from pydicom.uid import UID
from sqlalchemy import select
from sqlalchemy.orm import Session

from review_portal.imaging import reading, sandboxed
from review_portal.imaging.decoding import _decode_frame
from review_portal.imaging.limits import stored_frames
from review_portal.imaging.models import IngestJob, Instance, Series, Study
from review_portal.storage import Storage
from review_portal.uploads import scratch

__all__ = ["check_case", "check_frames"]

# JPEG 2000 (Part 1 and High-Throughput): decoded once into an uncompressed copy.
TRANSCODED = frozenset({"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201",
                        "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"})
# A copy is made when the whole decoded file stays under this (it is built in memory in the sandbox).
TRANSCODE_MAX_BYTES = 48 * 1024 * 1024
# Frames decoded per sandbox call, so a long multi-frame file never runs into the per-call time limit.
FRAMES_PER_CALL = 32

# A checked frame up to this size renders in the web process; windowing works in float64, so this bounds what one
# rendering can take there (~130 MB with its intermediates). Larger frames keep rendering in the sandbox the first
# time each process shows them (sandboxed.render_frame): decoding within the limits does not prove windowing does.
IN_PROCESS_MAX_SAMPLES = 4 * 1024 * 1024


def renders_in_process(inst: Instance) -> bool:
    samples = 1 if str(inst.photometric_interpretation or "").startswith(("MONOCHROME", "PALETTE")) else 3
    return inst.pixels_checked_at is not None and int(inst.rows or 0) * int(inst.columns or 0) * samples \
        <= IN_PROCESS_MAX_SAMPLES


def check_frames(path: Path, start: int, stop: int, transcode_to: Path | None = None) -> int:
    """In the sandbox's worker: decode frames [start, stop), or (transcode_to) every frame into an uncompressed
    copy of the file written there. DicomRejected when a frame does not decode."""
    with reading._damaged_file_guard():
        loaded = reading._load(path)
        if transcode_to is not None:
            ds = dcmread(path)
            ds.decompress()  # decodes every frame with the same decoders the viewer uses
            ds.save_as(transcode_to, enforce_file_format=True)
            return loaded.frames
        stop = min(stop, loaded.frames)
        for index in range(start, stop):
            _decode_frame(loaded, index)
        return max(0, stop - start)


def _decoded_bytes(inst: Instance) -> int:
    samples = 1 if str(inst.photometric_interpretation or "").startswith("MONOCHROME") else 3
    return int(inst.rows or 0) * int(inst.columns or 0) * samples * 2 * stored_frames(inst.frames)


def check_instance(storage: Storage, inst: Instance) -> None:
    """Decode every frame of one instance in the sandbox (making its uncompressed copy for JPEG 2000)."""
    ts = UID(inst.transfer_syntax_uid or "1.2.840.10008.1.2.1")
    if not (ts.is_encapsulated or ts.is_deflated):
        return  # read straight from the file by the viewer, within the sizes ingest verified
    path = storage.verified_local_path(inst.blob_key)
    if str(ts) in TRANSCODED and _decoded_bytes(inst) <= TRANSCODE_MAX_BYTES:
        with scratch(storage) as workdir:
            copy = workdir / "decoded.dcm"
            sandboxed.check_pixels(path, 0, stored_frames(inst.frames), copy)
            inst.decoded_key = storage.put_file(copy)[0]
        return
    for start in range(0, stored_frames(inst.frames), FRAMES_PER_CALL):
        sandboxed.check_pixels(path, start, start + FRAMES_PER_CALL)


def check_case(db: Session, storage: Storage, case_id: int, *, now: datetime, ingest_id: int | None = None) -> list[int]:
    """Check every instance of the case not yet checked; returns the ids of the series still holding images.

    A refused file is removed (with its series and study when they are left empty) and moved from "added" to
    "skipped" in the report of upload `ingest_id`."""
    pending = list(db.scalars(select(Instance).join(Series).join(Study)
                              .where(Study.case_id == case_id, Instance.pixels_checked_at.is_(None))
                              .order_by(Instance.id)))
    job = db.get(IngestJob, ingest_id) if ingest_id is not None else None
    touched: set[int] = set()
    for inst in pending:
        try:
            check_instance(storage, inst)
        except reading.DicomRejected as exc:
            _refuse(db, job, inst, exc.reason)
            continue
        inst.pixels_checked_at = now
        touched.add(inst.series_id)
    db.flush()
    return sorted(s for s in touched if db.get(Series, s) is not None)


def _refuse(db: Session, job: IngestJob | None, inst: Instance, reason: str) -> None:
    series = inst.series
    name = inst.original_filename or inst.sop_instance_uid
    if job is not None:
        report = dict(job.report or {})
        stored = [list(x) for x in report.get("stored", [])]
        name = next((n for n, uid in stored if uid == inst.sop_instance_uid), name)
        report["stored"] = [[n, uid] for n, uid in stored if uid != inst.sop_instance_uid]
        report["accepted"] = max(0, int(report.get("accepted", 0)) - 1)
        report["rejected"] = [list(x) for x in report.get("rejected", [])] + [[name, reason]]
        job.report = report
    series.instances.remove(inst)
    db.delete(inst)
    db.flush()
    if not series.instances:
        study = series.study
        db.delete(series)
        db.flush()
        if not db.scalar(select(Series.id).where(Series.study_id == study.id).limit(1)):
            db.delete(study)
    db.flush()
