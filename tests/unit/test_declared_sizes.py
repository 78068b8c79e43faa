"""Declared sizes the data does not back (frames, pixels, inflated bytes, zip entries), and values fitted to
their index columns: refused with a reason, or handled at the cost of a normal file. Files built in code."""
from __future__ import annotations

import time
import tracemalloc
import zipfile

import pytest

from review_portal.imaging import indexing
from review_portal.imaging.archives import UploadRejected, expand_zip
from review_portal.imaging.inspection import inspect_dicom
from review_portal.imaging.limits import DEFAULT, ImageLimits, from_config, stored_frames
from review_portal.imaging.models import Instance, Series
from review_portal.imaging.reading import DicomRejected
from tests.hostile_dicom import (
    declaring_frames,
    deflate_bomb,
    encapsulated_declaring_frames,
    encapsulated_frames,
    huge_frame,
    image,
    save,
    zip_of,
)


def refused(path, limits=DEFAULT) -> str:
    with pytest.raises(DicomRejected) as caught:
        inspect_dicom(path, limits)
    return caught.value.reason


def test_a_tiny_file_declaring_two_billion_frames_is_refused_for_its_frames(tmp_path):
    path = declaring_frames(tmp_path / "x.dcm", 2_000_000_000)
    assert path.stat().st_size < 4096
    started = time.perf_counter()
    assert refused(path) == f"the header declares 2000000000 frames; the portal accepts at most {DEFAULT.max_frames} per file"
    assert time.perf_counter() - started < 1


def test_native_frames_are_checked_against_the_pixel_data_length(tmp_path):
    # Under the frame cap, the count must still be backed: 16 x 16 x 2 bytes per frame, one frame there.
    assert refused(declaring_frames(tmp_path / "x.dcm", 7)) == "the header declares 7 frames but the image data holds 1"


def test_a_4_gigapixel_frame_over_10_bytes_is_refused(tmp_path):
    assert refused(huge_frame(tmp_path / "x.dcm")) == "the image is too large to display (65535 x 65535)"


def test_pixels_and_bytes_per_frame_follow_the_configured_limits(tmp_path):
    path = save(image(rows=64, columns=64), tmp_path / "x.dcm")
    assert inspect_dicom(path).rows == 64
    assert refused(path, ImageLimits(max_frame_pixels=64 * 63)) == "the image is too large to display (64 x 64)"
    assert refused(path, ImageLimits(max_frame_bytes=64 * 64)) == "the image is too large to display (64 x 64)"


def test_encapsulated_data_declaring_a_million_frames_with_one_fragment_is_refused(tmp_path):
    path = encapsulated_declaring_frames(tmp_path / "x.dcm", 10**6)
    assert refused(path) == f"the header declares 1000000 frames; the portal accepts at most {DEFAULT.max_frames} per file"
    # Even where a million frames were allowed, the fragments actually there are counted, not the header believed.
    started = time.perf_counter()
    assert refused(path, ImageLimits(max_frames=2 * 10**6)) == "the header declares 1000000 frames but the image data holds 1"
    assert time.perf_counter() - started < 1


def test_encapsulated_frames_are_counted_from_the_offset_table_or_the_fragments(tmp_path):
    with_table = encapsulated_declaring_frames(tmp_path / "t.dcm", 3, offset_table=True)
    assert refused(with_table) == "the header declares 3 frames but the image data holds 1"
    assert inspect_dicom(encapsulated_declaring_frames(tmp_path / "one.dcm", 1, offset_table=True)).number_of_frames == 1
    assert inspect_dicom(encapsulated_frames(tmp_path / "five.dcm", 5)).number_of_frames == 5


def test_the_frame_cap_is_configurable(tmp_path):
    path = encapsulated_frames(tmp_path / "five.dcm", 5)
    assert refused(path, ImageLimits(max_frames=4)) == "the header declares 5 frames; the portal accepts at most 4 per file"


def test_a_deflate_bomb_is_measured_with_a_bounded_inflater_and_refused(tmp_path):
    bomb = deflate_bomb(tmp_path / "bomb.dcm", 64 * 1024 * 1024)
    assert bomb.stat().st_size < 256 * 1024  # ~1000:1
    tracemalloc.start()
    try:
        reason = refused(bomb, ImageLimits(max_inflated_bytes=1024 * 1024))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert reason == "the compressed (deflated) file expands to more than 1 MB, the most the portal accepts"
    assert peak < 8 * 1024 * 1024  # inflating it whole, as pydicom does, would hold 64 MB


def test_a_deflated_file_within_the_budget_is_kept(tmp_path):
    path = deflate_bomb(tmp_path / "ok.dcm", 4 * 1024 * 1024)
    assert inspect_dicom(path, ImageLimits(max_inflated_bytes=8 * 1024 * 1024)).number_of_frames == 2


def test_limits_from_config_may_tighten_but_never_loosen_the_image_budgets():
    limits = from_config({"IMAGE_MAX_FRAMES": 10**9, "IMAGE_MAX_INFLATED_BYTES": 1024, "ZIP_MAX_RATIO": 5000})
    assert (limits.max_frames, limits.max_inflated_bytes, limits.zip_max_ratio) == (DEFAULT.max_frames, 1024, 5000)
    with pytest.raises(ValueError):
        ImageLimits(max_frames=0)


def test_frame_counts_read_back_from_the_database_are_clamped():
    assert [stored_frames(v) for v in (None, 0, -5, 1, 12, 2_000_000_000, "x")] == [1, 1, 1, 1, 12, DEFAULT.max_frames, 1]


# ---------------------------------------------------------------- zip archives


def test_a_zip_bomb_entry_is_refused_by_its_real_ratio_whatever_its_header_says(tmp_path):
    archive = zip_of(tmp_path / "a.zip", {"bomb.dcm": bytes(1024 * 1024)})  # ~1 KB -> 1 MB
    assert zipfile.ZipFile(archive).infolist()[0].compress_size < 2048
    with pytest.raises(UploadRejected, match="zip bomb"):
        expand_zip(archive, tmp_path / "out", ratio_min_bytes=64 * 1024)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_many_small_entries_adding_up_to_a_bomb_are_refused_for_the_whole_archive(tmp_path):
    # Each entry is under the per-entry ratio threshold; together they are 20 MB from ~20 KB.
    archive = zip_of(tmp_path / "many.zip", {f"e{n}.dcm": bytes(512 * 1024) for n in range(40)})
    expand_zip(archive, tmp_path / "ok")  # under the default thresholds: an ordinary archive of blank slices
    with pytest.raises(UploadRejected, match="its files compress suspiciously well"):
        expand_zip(archive, tmp_path / "out", archive_ratio_min_bytes=4 * 1024 * 1024)
    with pytest.raises(UploadRejected, match="more data than the upload limit"):
        expand_zip(archive, tmp_path / "out2", max_total_bytes=10 * 1024 * 1024)


def test_an_entry_larger_than_the_entry_limit_is_refused_whatever_its_ratio(tmp_path):
    import os

    archive = zip_of(tmp_path / "big.zip", {"big.dcm": os.urandom(200 * 1024), "small.dcm": b"x" * 100})
    with pytest.raises(UploadRejected, match="larger than the upload limit allows"):
        expand_zip(archive, tmp_path / "out", max_entry_bytes=100 * 1024)


def test_entry_limits_are_checked_on_real_bytes_when_the_header_lies(tmp_path):
    archive = zip_of(tmp_path / "lie.zip", {"bomb.dcm": bytes(1024 * 1024)})
    data = bytearray(archive.read_bytes())
    # Shrink the declared size in both headers: vetting passes, the stream must still stop the entry.
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.find(signature)
        data[at + offset:at + offset + 4] = (1000).to_bytes(4, "little")
    archive.write_bytes(bytes(data))
    with pytest.raises(UploadRejected):
        expand_zip(archive, tmp_path / "out", ratio_min_bytes=64 * 1024)


# ---------------------------------------------------------------- index columns


def test_values_past_their_columns_are_refused_cut_or_dropped():
    fitted = indexing.fit(Instance, {"instance_number": 2**40, "sop_class_uid": "1." * 40,
                                     "photometric_interpretation": "MONO\x00CHROME2", "window_center": float("inf")})
    assert fitted == {"instance_number": None, "sop_class_uid": ("1." * 40)[:64],
                      "photometric_interpretation": "MONOCHROME2", "window_center": None}
    assert indexing.fit(Series, {"series_number": -(2**31) - 1})["series_number"] is None
    assert indexing.fit(Series, {"series_number": 2**31 - 1})["series_number"] == 2**31 - 1
    with pytest.raises(DicomRejected, match="file size"):
        indexing.fit(Instance, {"size": 2**31})
    with pytest.raises(DicomRejected, match="SOP Instance UID is longer than the 64"):
        indexing.fit(Instance, {"sop_instance_uid": "1" * 65})
    with pytest.raises(DicomRejected, match="Rows"):
        indexing.fit(Instance, {"rows": None})
