"""Decoding uploaded images under hard limits (review_portal.sandbox): a decompression bomb, a frame too
large to render, and a decode that takes too long are each refused with a readable reason, in a worker
process that is then replaced, while the web process keeps answering requests.

The hostile files are built here, in code: RLE Lossless frames of one repeated value, where every 128
samples cost two bytes, so a 2 MB file declares a 128 MB frame. TestConfig gives the workers 64 MB.
"""
from __future__ import annotations

import os
import shutil
import signal
import struct
import time
from pathlib import Path

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import RLELossless, SecondaryCaptureImageStorage, generate_uid
from sqlalchemy import select

from review_portal import sandbox
from review_portal.imaging import sandboxed
from review_portal.imaging.services import series_of_case
from review_portal.jobs import BackgroundJob
from tests.conftest import testdata
from tests.imaging_helpers import synth_series

FETCH = {"X-Requested-With": "fetch"}


def rle_frame_file(path: Path, rows: int, columns: int) -> Path:
    """A valid 16-bit RLE Lossless DICOM file whose one frame is rows x columns zeros."""
    samples = rows * columns
    segment = b"\x81\x00" * (samples // 128)  # PackBits: 0x81 = "repeat the next byte 128 times"
    if samples % 128:
        segment += bytes([257 - samples % 128, 0])
    header = struct.pack("<16I", 2, 64, 64 + len(segment), *([0] * 13))  # two segments: high and low bytes
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = RLELossless
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = generate_uid(), generate_uid(), "OT"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = rows, columns, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = encapsulate([header + segment + segment])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path


def upload(client, case, paths):
    files = [(open(p, "rb"), p.name) for p in paths]
    try:
        r = client.post(f"/cases/{case.id}/scans", data={"scans": files}, headers=FETCH)
    finally:
        for fh, _ in files:
            fh.close()
    assert r.status_code == 200, r.data
    return r.json["ingest"]


def test_a_decompression_bomb_is_refused_at_ingest_and_the_portal_keeps_serving(app, db, make_case, login_as, tmp_path):
    limit = app.config["SANDBOX_MEMORY_MB"]
    bomb = rle_frame_file(tmp_path / "bomb.dcm", 8000, 8000)
    decoded_mb = 8000 * 8000 * 2 / 2**20
    assert bomb.stat().st_size < 3 * 2**20 and decoded_mb > 1.5 * limit  # a small file asking for far too much

    case = make_case("assigned")
    client = login_as("referring")
    started = time.monotonic()
    ingest = upload(client, case, [bomb] + synth_series(tmp_path / "ct", 2))
    assert time.monotonic() - started < 60
    assert ingest["accepted"] == 2
    assert ingest["rejected"] == [{"name": "bomb.dcm", "reason": f"needs more than {limit} MB to decode"}]

    # The web process is unharmed: pages and the accepted slices are served, by a fresh worker.
    assert client.get(f"/cases/{case.id}/viewer").status_code == 200
    [series] = series_of_case(db, case.id)
    assert client.get(f"/cases/{case.id}/series/{series.id}/slices/0.png").status_code == 200
    page = client.get(f"/cases/{case.id}/ingests/{ingest['id']}")
    assert page.status_code == 200 and b"needs more than" in page.data


def test_a_frame_too_large_to_render_is_refused_in_the_worker_not_in_the_web_process(app, db, make_case, login_as,
                                                                                     tmp_path):
    """2500 x 2500 decodes within the limit (so ingest accepts it) but not windowed for display."""
    limit = app.config["SANDBOX_MEMORY_MB"]
    wide = rle_frame_file(tmp_path / "wide.dcm", 2500, 2500)
    case = make_case("assigned")
    client = login_as("referring")
    ingest = upload(client, case, [wide])
    assert (ingest["accepted"], ingest["rejected"]) == (1, [])

    [series] = series_of_case(db, case.id)
    assert series.thumbnail_key is None
    job = db.scalar(select(BackgroundJob).where(BackgroundJob.name == "imaging.series_thumbnail",
                                                BackgroundJob.case_id == case.id))
    assert job.is_done and job.result == f"no thumbnail: needs more than {limit} MB to decode"

    r = client.get(f"/cases/{case.id}/series/{series.id}/slices/0.png")
    assert r.status_code == 400
    assert f"needs more than {limit} MB to decode" in r.get_data(as_text=True)
    assert client.get(f"/cases/{case.id}/series/{series.id}.json").status_code == 200
    assert client.get(f"/cases/{case.id}/viewer").status_code == 200


def test_a_frame_renders_in_a_worker_once_then_in_process(app, db, make_case, login_as, tmp_path, monkeypatch):
    calls = []
    real_run = sandbox.run

    def counting(target, *args, **kwargs):
        calls.append(target.rsplit(":", 1)[-1])
        return real_run(target, *args, **kwargs)

    case = make_case("assigned")
    client = login_as("referring")
    rle = tmp_path / "mr_rle.dcm"
    shutil.copy(testdata("MR_small_RLE.dcm"), rle)
    assert upload(client, case, [rle])["accepted"] == 1
    [series] = series_of_case(db, case.id)
    [inst] = series.instances
    monkeypatch.setattr(sandbox, "run", counting)
    # Until its pixel check has passed (here: undone, as while the job is still queued), a frame is rendered in a
    # worker the first time this process shows it, and in-process after.
    inst.pixels_checked_at = None
    db.commit()
    sandboxed.forget_checked()
    first = client.get(f"/cases/{case.id}/series/{series.id}/slices/0.png?wc=600&ww=1200")
    again = client.get(f"/cases/{case.id}/series/{series.id}/slices/0.png?wc=500&ww=1000")
    assert (first.status_code, again.status_code) == (200, 200)
    assert calls == ["_render_in_child"]  # the second window: the frame was checked, rendered in-process
    assert first.data != again.data
    # Once the pixel check (every frame decoded in a worker) has passed, no rendering needs a worker.
    from review_portal.imaging.pixel_check import check_case

    assert check_case(db, app.extensions["storage"], case.id, now=inst.series.study.created_at) == [series.id]
    db.commit()
    assert calls[-1] == "_check_in_child"
    sandboxed.forget_checked()
    calls.clear()
    assert client.get(f"/cases/{case.id}/series/{series.id}/slices/0.png?wc=400&ww=900").status_code == 200
    assert calls == []


def test_a_worker_that_died_is_replaced(app, tmp_path):
    path = testdata("MR_small_RLE.dcm")
    assert sandboxed.inspect_dicom(path).rows == 64
    [pid] = sandbox.current().pids()
    os.kill(pid, signal.SIGKILL)
    stat = Path(f"/proc/{pid}/stat")
    deadline = time.monotonic() + 10
    while stat.exists() and stat.read_text().split(") ")[-1][0] != "Z" and time.monotonic() < deadline:
        time.sleep(0.05)  # until it is really dead (a zombie): killed between calls, not during one
    assert sandboxed.inspect_dicom(path).rows == 64
    [new_pid] = sandbox.current().pids()
    assert new_pid != pid


class TestTimeLimit:
    @pytest.fixture
    def app_overrides(self):
        from config import TestConfig

        return {"SANDBOX_SECONDS": 1, "SANDBOX_PRELOAD": TestConfig.SANDBOX_PRELOAD + ("tests.sandbox_hooks:slow_decoding",)}

    def test_a_file_that_decodes_too_slowly_is_refused_and_the_portal_keeps_serving(self, make_case, login_as,
                                                                                      tmp_path):
        slow = tmp_path / "slow.dcm"
        shutil.copy(testdata("MR_small_RLE.dcm"), slow)  # compressed: ingest test-decodes it (slowed in the worker)
        case = make_case("assigned")
        client = login_as("referring")
        started = time.monotonic()
        ingest = upload(client, case, [slow] + synth_series(tmp_path / "ct", 2))
        assert time.monotonic() - started < 60  # the worker's sleep is 120 s: it was stopped, not waited for
        assert ingest["accepted"] == 2
        assert ingest["rejected"] == [{"name": "slow.dcm", "reason": "takes longer than 1 second to decode"}]
        assert client.get(f"/cases/{case.id}/viewer").status_code == 200


class TestDisabled:
    @pytest.fixture
    def app_overrides(self):
        return {"SANDBOX_ENABLED": False}

    def test_disabled_the_work_runs_in_process(self, app, tmp_path):
        """SANDBOX_ENABLED=0, for a debugger or profiler: same results and refusals, no worker process."""
        assert sandboxed.inspect_dicom(testdata("MR_small_RLE.dcm")).rows == 64
        with pytest.raises(sandboxed.DicomRejected, match="not a DICOM file"):
            sandboxed.inspect_dicom(Path(__file__))
        assert sandbox.current().pids() == []
