"""Ingest at parse-and-store speed: headers and the frame table are checked at upload, every frame is decoded
afterwards by the pixel check job (in the sandbox), which removes a file that does not decode, keeps the rest,
stores JPEG 2000 pixels once uncompressed for the viewer, and then makes the thumbnails."""
from __future__ import annotations

import shutil
import struct

from pydicom import dcmread
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless, RLELossless
from sqlalchemy import select

from review_portal import jobs
from review_portal.imaging import pixel_check, rendering, services
from review_portal.imaging.models import Instance, Series
from review_portal.uploads import UploadedFile
from tests.conftest import testdata
from tests.hostile_dicom import image, save
from tests.imaging_helpers import synth_series


class HeldRunner:
    """A queue nobody works yet (as with RQ before a worker picks the job up)."""

    name = "held"

    def __init__(self):
        self.held: list[jobs.BackgroundJob] = []

    def submitted(self, db, storage, job, now):
        self.held.append(job)

    def dispatch(self, job_ids):
        pass


def _undecodable(path):
    """A valid header and frame table around an RLE stream whose segment offsets point past its end."""
    ds = image()
    ds.compress(RLELossless)
    ds.PixelData = encapsulate([struct.pack("<16I", 1, 64_000, *([0] * 14)) + b"\x00" * 32])
    return save(ds, path)


def _j2k(path):
    ds = dcmread(testdata("CT_small.dcm"))
    ds.compress(JPEG2000Lossless, encoding_plugin="pylibjpeg")
    ds.save_as(path, enforce_file_format=True)
    return path


def test_the_study_is_visible_before_its_pixels_are_decoded(app, db, storage, make_case, users, tmp_path, clock):
    case = make_case("assigned")
    runner = HeldRunner()
    app.extensions["jobs"] = runner
    rle = tmp_path / "mr_rle.dcm"
    shutil.copy(testdata("MR_small_RLE.dcm"), rle)
    files = [UploadedFile(p.name, p) for p in [*synth_series(tmp_path / "ct", 3), rle, _undecodable(tmp_path / "bad.dcm")]]
    ingest = services.create_ingest(db, storage, case, files, by=users["referring"], ip="", now=clock.now())
    with app.app_context():  # the app's runner: here, the held queue
        services.process_ingest(db, storage, ingest.id, now=clock.now())
        db.commit()  # leaving the context ends its session
    # Indexed at once, headers only: all five listed, nothing decoded, no thumbnail yet.
    assert services.IngestReport.of(ingest).accepted == 5
    assert all(i.pixels_checked_at is None for i in db.scalars(select(Instance)))
    assert all(s.thumbnail_key is None for s in services.series_of_case(db, case.id))
    [check] = runner.held
    check = db.get(jobs.BackgroundJob, check.id)
    assert check.name == "imaging.pixel_check"

    jobs.run_inline(db, storage, check, now=clock.now())
    assert check.is_done, check.error
    report = services.IngestReport.of(db.get(type(ingest), ingest.id))
    assert report.accepted == 4
    [(name, reason)] = report.rejected
    assert name == "bad.dcm" and "could not be decoded" in reason
    remaining = list(db.scalars(select(Instance)))
    assert len(remaining) == 4 and all(i.pixels_checked_at is not None for i in remaining)
    assert "bad.dcm" not in {i.original_filename for i in remaining}
    series = services.series_of_case(db, case.id)
    assert len(series) == 2 and all(s.thumbnail_key for s in series)  # the bad file's own series is gone
    # Running the job again finds nothing left to do.
    assert pixel_check.check_case(db, storage, case.id, now=clock.now()) == []


def test_jpeg_2000_is_stored_once_uncompressed_and_renders_the_same(db, storage, make_case, users, tmp_path, clock):
    case = make_case("assigned")
    original = _j2k(tmp_path / "ct_j2k.dcm")
    services.ingest_scans(db, storage, case, [UploadedFile("ct_j2k.dcm", original)], by=users["referring"], ip="",
                          now=clock.now())
    [inst] = db.scalars(select(Instance))
    assert inst.pixels_checked_at is not None and inst.decoded_key and inst.decoded_key != inst.blob_key
    copy = storage.local_path(inst.decoded_key)
    assert not dcmread(copy).file_meta.TransferSyntaxUID.is_compressed
    assert (dcmread(copy).pixel_array == dcmread(original).pixel_array).all()
    for fmt in ("png", "jpeg"):
        assert rendering.render_frame(copy, center=40.0, width=400.0, fmt=fmt) == \
            rendering.render_frame(original, center=40.0, width=400.0, fmt=fmt)
    # Listed among the blob references, as derived bytes (backed up, never the one served as the original).
    from review_portal.models import BLOB_REFERENCES

    assert any(r.table == "instances" and r.column == "decoded_key" and r.derived for r in BLOB_REFERENCES)
    [series] = db.scalars(select(Series))
    assert series.thumbnail_key
