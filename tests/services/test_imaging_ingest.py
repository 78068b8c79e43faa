"""Ingest jobs and key images, on real sample DICOM files (the rendering paths: tests/unit/test_dicom_rendering.py)."""
from __future__ import annotations

import zipfile

import pytest
from PIL import Image
from pydicom import dcmread
from sqlalchemy import func, select

from review_portal.workflow.assignments import accept_offer
from review_portal.audit.models import AuditEvent
from review_portal.uploads import UploadedFile
from review_portal.errors import PermissionDenied
from review_portal.imaging import services
from review_portal.imaging.models import IngestJob, KeyImage
from tests.conftest import NOW, testdata
from tests.imaging_helpers import synth_series


def uploads(paths):
    return [UploadedFile(p.name, p) for p in paths]


def count_instances(db, case_id):
    return len([i for s in services.series_of_case(db, case_id) for i in s.instances])


def test_ingest_orders_slices_by_position_and_lists_rejects(db, storage, make_case, users, tmp_path):
    case = make_case("assigned")
    paths = synth_series(tmp_path / "s", 6)
    junk = tmp_path / "notes.txt"
    junk.write_text("not an image")
    truncated = tmp_path / "cut.dcm"
    truncated.write_bytes(paths[0].read_bytes()[:-500])
    job = services.create_ingest(db, storage, case, uploads(paths + [junk, truncated]), by=users["referring"], ip="1.2.3.4", now=NOW)
    services.process_ingest(db, storage, job.id, now=NOW)
    assert (job.status, job.total, job.processed) == ("done", 8, 8)
    rejected = dict(services.IngestReport.of(job).rejected)
    assert rejected == {"notes.txt": "not a DICOM file", "cut.dcm": "the file is truncated (incomplete upload or copy)"}
    [series] = services.series_of_case(db, case.id)
    slices = services.ordered_slices(series)
    assert [s.instance.slice_position for s in slices] == [0.0, 2.5, 5.0, 7.5, 10.0, 12.5]
    assert [s.instance.instance_number for s in slices] == [1, 2, 3, 4, 5, 6]
    assert series.thumbnail_key and storage.exists(series.thumbnail_key)
    # Originals are kept byte for byte under their sha256.
    import hashlib
    for inst in series.instances:
        assert hashlib.sha256(storage.local_path(inst.blob_key).read_bytes()).hexdigest() == inst.blob_key


def test_reupload_and_rerun_are_idempotent(db, storage, make_case, users, tmp_path):
    case = make_case("assigned")
    paths = synth_series(tmp_path / "s", 4)
    job = services.create_ingest(db, storage, case, uploads(paths), by=users["referring"], ip="", now=NOW)
    services.process_ingest(db, storage, job.id, now=NOW)
    assert services.process_ingest(db, storage, job.id, now=NOW).report["accepted"] == 4  # a finished job is left as is
    again = services.create_ingest(db, storage, case, uploads(paths[:2]), by=users["referring"], ip="", now=NOW)
    services.process_ingest(db, storage, again.id, now=NOW)
    assert (again.report["accepted"], again.report["duplicates"]) == (0, 2)
    assert count_instances(db, case.id) == 4


def test_interrupted_job_resumes_without_duplicates(db, storage, make_case, users, tmp_path):
    """A worker crash after a progress commit: re-running continues where it stopped."""
    case = make_case("assigned")
    paths = synth_series(tmp_path / "s", 7)
    job = services.create_ingest(db, storage, case, uploads(paths), by=users["referring"], ip="", now=NOW)
    db.commit()

    class Crash(Exception):
        pass

    def commit_then_crash(j):
        db.commit()  # what the worker does at each progress report
        raise Crash

    old = services.PROGRESS_EVERY
    services.PROGRESS_EVERY = 3
    try:
        with pytest.raises(Crash):
            services.process_ingest(db, storage, job.id, now=NOW, on_progress=commit_then_crash)
    finally:
        services.PROGRESS_EVERY = old
    db.rollback()
    db.expire_all()
    job = db.get(IngestJob, job.id)
    assert (job.status, job.processed) == ("running", 3)
    assert count_instances(db, case.id) == 3
    services.process_ingest(db, storage, job.id, now=NOW)
    assert job.status == "done" and job.report["accepted"] == 7
    assert count_instances(db, case.id) == 7


def make_zip(path, entries):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def test_zip_slip_and_bomb_are_refused_and_the_rest_kept(db, storage, make_case, users, tmp_path):
    case = make_case("assigned")
    good = synth_series(tmp_path / "s", 2)
    study_zip = make_zip(tmp_path / "study.zip", {f"DICOM/{p.name}": p.read_bytes() for p in good})
    evil_zip = make_zip(tmp_path / "evil.zip", {"../../escape.dcm": good[0].read_bytes()})
    bomb_zip = make_zip(tmp_path / "bomb.zip", {"zeros.dcm": b"\0" * (30 * 1024 * 1024)})
    job = services.create_ingest(db, storage, case, uploads([study_zip, evil_zip, bomb_zip]), by=users["referring"], ip="", now=NOW)
    services.process_ingest(db, storage, job.id, now=NOW)
    rejected = dict(services.IngestReport.of(job).rejected)
    assert "escapes its folder" in rejected["evil.zip"]
    assert "zip bomb" in rejected["bomb.zip"]
    assert job.report["accepted"] == 2
    assert not (tmp_path / "escape.dcm").exists()


def test_pixel_data_size_mismatch_refused(db, storage, make_case, users, tmp_path):
    case = make_case("assigned")
    ds = dcmread(testdata("CT_small.dcm"))
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
    short = tmp_path / "short.dcm"
    ds.save_as(short)
    job = services.create_ingest(db, storage, case, uploads([short]), by=users["referring"], ip="", now=NOW)
    services.process_ingest(db, storage, job.id, now=NOW)
    assert services.IngestReport.of(job).rejected == [("short.dcm", "pixel data size does not match the header")]
    assert count_instances(db, case.id) == 0


def test_only_the_referrer_or_staff_add_scans_to_an_open_case(db, storage, make_case, users, tmp_path):
    case = make_case("assigned")
    path = synth_series(tmp_path / "s", 1)
    for key in ("reviewer", "other_referring"):
        with pytest.raises(PermissionDenied):
            services.create_ingest(db, storage, case, uploads(path), by=users[key], ip="", now=NOW)
    services.create_ingest(db, storage, case, uploads(path), by=users["coordinator"], ip="", now=NOW)
    closed = make_case("closed")
    with pytest.raises(PermissionDenied):
        services.create_ingest(db, storage, closed, uploads(path), by=users["referring"], ip="", now=NOW)


def test_key_images_for_letter_and_audit(db, storage, make_case, users, tmp_path):
    case = make_case("assigned")
    job = services.create_ingest(db, storage, case, uploads(synth_series(tmp_path / "s", 5)), by=users["referring"], ip="", now=NOW)
    services.process_ingest(db, storage, job.id, now=NOW)
    [series] = services.series_of_case(db, case.id)
    reviewer = case.reviewer
    for not_yet in (users["referring"], reviewer):  # the reviewer has only been offered the case so far
        with pytest.raises(PermissionDenied):
            services.mark_key_image(db, storage, case, series, slice_index=1, center=None, width=None, caption="x",
                                    by=not_yet, ip="", now=NOW)
    accept_offer(db, case.active_assignment, by=reviewer, ip="", now=NOW)
    key = services.mark_key_image(db, storage, case, series, slice_index=3, center=-600.0, width=1500.0,
                                  caption="Spiculated nodule", by=reviewer, ip="10.0.0.1", now=NOW)
    services.mark_key_image(db, storage, case, series, slice_index=0, center=None, width=None, caption="",
                            by=reviewer, ip="10.0.0.1", now=NOW)
    letter = services.key_images_for_letter(db, case.id)
    assert [set(d) for d in letter] == [{"caption", "series_label", "slice_label", "window_label", "png_key"}] * 2
    assert letter[1] == {"caption": "Spiculated nodule", "series_label": "CT Synthetic chest (series 1)",
                         "slice_label": "Slice 4 of 5, position 7.5 mm", "window_label": "W 1500 / L -600",
                         "png_key": key.png_key}
    assert letter[0]["window_label"] == "Window from the file"
    assert Image.open(storage.local_path(key.png_key)).format == "PNG"
    services.unmark_key_image(db, case, key.id, by=reviewer, ip="10.0.0.1", now=NOW)
    assert db.scalar(select(func.count(KeyImage.id))) == 1
    actions = set(db.scalars(select(AuditEvent.action).where(AuditEvent.case_id == case.id)))
    assert {"key_image.marked", "key_image.unmarked", "scans.uploaded", "scans.ingested"} <= actions
