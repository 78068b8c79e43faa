"""The browser viewer's data: each frame's geometry in the series JSON, and its stored values as a raw typed array."""
from __future__ import annotations

import gzip

import numpy as np
import pytest
from pydicom import dcmread
from sqlalchemy import select, update

from review_portal.audit.models import AuditEvent
from review_portal.imaging.models import Instance, Series
from review_portal.imaging.services import create_ingest, process_ingest, series_of_case
from review_portal.uploads import UploadedFile
from tests.conftest import NOW, testdata
from tests.imaging_helpers import synth_series


def _ingest(db, storage, case, users, paths):
    job = create_ingest(db, storage, case, [UploadedFile(p.name, p) for p in paths], by=users["referring"], ip="", now=NOW)
    process_ingest(db, storage, job.id, now=NOW)
    db.commit()
    return series_of_case(db, case.id)


def _pixels(client, url, **headers):
    r = client.get(url, headers=headers)
    assert r.status_code == 200, r.data[:200]
    assert r.headers["Content-Type"] == "application/octet-stream" and r.headers["Content-Encoding"] == "gzip"
    dtype = {"int16": "<i2", "uint16": "<u2", "uint8": "u1"}[r.headers["X-Pixel-Dtype"]]
    shape = (int(r.headers["X-Rows"]), int(r.headers["X-Columns"]), int(r.headers["X-Samples"]))
    return r, np.frombuffer(gzip.decompress(r.data), dtype=dtype).reshape(shape)


@pytest.mark.parametrize("name, dtype, samples", [
    ("CT_small.dcm", "int16", 1), ("vlut_04.dcm", "uint8", 1), ("SC_rgb.dcm", "uint8", 3), ("MR_small.dcm", "int16", 1),
])
def test_pixels_round_trip_the_decoded_values(name, dtype, samples, make_case, users, db, storage, login_as):
    case = make_case("assigned")
    [series] = _ingest(db, storage, case, users, [testdata(name)])
    c = login_as("reviewer")
    info = c.get(f"/cases/{case.id}/series/{series.id}.json").json
    [frame] = info["frames"]
    source = dcmread(testdata(name))
    assert (frame["rows"], frame["columns"], frame["samples_per_pixel"]) == (source.Rows, source.Columns, samples)
    assert frame["sop_instance_uid"] == source.SOPInstanceUID and frame["frame"] == 0
    r, values = _pixels(c, frame["pixels_url"])
    assert r.headers["X-Pixel-Dtype"] == dtype and r.headers["Cache-Control"] == "no-store"
    expected = source.pixel_array.reshape(values.shape)
    assert np.array_equal(values, expected)
    assert values.dtype.itemsize == np.dtype(dtype).itemsize
    again = c.get(frame["pixels_url"], headers={"If-None-Match": r.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""


def test_series_json_carries_the_geometry(make_case, users, db, storage, login_as, tmp_path):
    case = make_case("assigned")
    [series] = _ingest(db, storage, case, users, synth_series(tmp_path / "s", 4))
    info = login_as("reviewer").get(f"/cases/{case.id}/series/{series.id}.json").json
    source = dcmread(testdata("CT_small.dcm"))
    assert [f["index"] for f in info["frames"]] == [0, 1, 2, 3]
    assert [f["slice_position"] for f in info["frames"]] == [0.0, 2.5, 5.0, 7.5]
    first = info["frames"][0]
    assert first["pixel_spacing"] == [float(v) for v in source.PixelSpacing] and first["spacing_source"] == "PixelSpacing"
    assert first["image_orientation"] == [1, 0, 0, 0, 1, 0] and first["image_position"][2] == 0.0
    assert first["rescale_slope"] == float(source.RescaleSlope) and first["rescale_intercept"] == float(source.RescaleIntercept)
    assert first["slice_thickness"] == float(source.SliceThickness) and first["photometric"] == "MONOCHROME2"
    assert info["frame_of_reference_uid"] and info["frame_of_reference_uid"] == db.get(Series, series.id).frame_of_reference_uid
    assert info["patient"] == {"name": case.patient_name, "id": case.patient_mrn, "study_date": source.StudyDate[:4] + "-"
                               + source.StudyDate[4:6] + "-" + source.StudyDate[6:], "series_description": "Synthetic chest",
                               "modality": "CT"}


def test_geometry_of_older_rows_is_read_on_first_view(make_case, users, db, storage, login_as, tmp_path):
    case = make_case("assigned")
    [series] = _ingest(db, storage, case, users, synth_series(tmp_path / "s", 3))
    # As ingested before migration 0004: no geometry at all.
    db.execute(update(Instance).where(Instance.series_id == series.id).values(
        pixel_spacing=None, spacing_source="", image_orientation=None, image_position=None, slice_thickness=None,
        rescale_slope=None, rescale_intercept=None, bits_stored=None, pixel_representation=None, samples_per_pixel=None))
    db.execute(update(Series).where(Series.id == series.id).values(frame_of_reference_uid=""))
    db.commit()
    info = login_as("reviewer").get(f"/cases/{case.id}/series/{series.id}.json").json
    assert all(f["pixel_spacing"] == [0.661468, 0.661468] for f in info["frames"])
    assert info["frame_of_reference_uid"] != ""
    db.expire_all()
    rows = db.scalars(select(Instance).where(Instance.series_id == series.id)).all()
    assert {(i.samples_per_pixel, i.bits_stored, i.pixel_representation) for i in rows} == {(1, 16, 1)}


@pytest.mark.parametrize("role, status", [("other_reviewer", 404), ("other_referring", 404), ("referring", 200)])
def test_pixels_only_for_who_may_see_the_case(role, status, make_case, users, db, storage, login_as):
    case = make_case("assigned")
    [series] = _ingest(db, storage, case, users, [testdata("CT_small.dcm")])
    [inst] = db.get(Series, series.id).instances
    r = login_as(role).get(f"/cases/{case.id}/instances/{inst.id}/frames/0/pixels")
    assert r.status_code == status


def test_pixels_of_another_case_or_frame_are_not_found_and_reading_is_audited(make_case, users, db, storage, login_as):
    case, other = make_case("assigned"), make_case("assigned")
    [series] = _ingest(db, storage, case, users, [testdata("CT_small.dcm")])
    [inst] = db.get(Series, series.id).instances
    c = login_as("reviewer")
    assert c.get(f"/cases/{other.id}/instances/{inst.id}/frames/0/pixels").status_code == 404
    assert c.get(f"/cases/{case.id}/instances/{inst.id}/frames/1/pixels").status_code == 404
    assert c.get(f"/cases/{case.id}/instances/{inst.id}/frames/0/pixels").status_code == 200
    events = db.scalars(select(AuditEvent).where(AuditEvent.action == "images.viewed", AuditEvent.case_id == case.id,
                                                 AuditEvent.object_id == str(series.id))).all()
    assert len(events) == 1 and "pixels of image" in events[0].detail
