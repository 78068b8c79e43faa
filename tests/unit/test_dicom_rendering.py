"""Rendering fast paths on real sample DICOM files: every compressed transfer syntax, the lookup-table and
native-frame shortcuts against the slow references, PNG encoding. No app, no database."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from pydicom.pixels import pixel_array

from review_portal.imaging import decoding, inspection, reading, rendering
from tests.conftest import testdata


@pytest.mark.parametrize("name, syntax", [
    ("SC_rgb_jpeg_dcmtk.dcm", "1.2.840.10008.1.2.4.50"),      # JPEG baseline
    ("JPGLosslessP14SV1_1s_1f_8b.dcm", "1.2.840.10008.1.2.4.70"),  # JPEG lossless SV1
    ("693_J2KR.dcm", "1.2.840.10008.1.2.4.90"),                # JPEG 2000 lossless (pydicom-data)
    ("J2K_pixelrep_mismatch.dcm", "1.2.840.10008.1.2.4.90"),
    ("693_J2KI.dcm", "1.2.840.10008.1.2.4.91"),                # JPEG 2000
    ("MR_small_RLE.dcm", "1.2.840.10008.1.2.5"),               # RLE lossless
])
def test_each_compressed_transfer_syntax_renders(name, syntax):
    path = testdata(name)
    info = inspection.inspect_dicom(path)
    assert info.transfer_syntax_uid == syntax
    for fmt in ("png", "jpeg"):
        image = Image.open(io.BytesIO(rendering.render_frame(path, fmt=fmt)))
        image.load()
        assert image.size == (info.columns, info.rows)
        assert np.asarray(image).std() > 1  # a real picture, not a blank


@pytest.mark.parametrize("name", ["693_UNCR.dcm", "CT_small.dcm", "RG1_UNCR.dcm", "693_J2KR.dcm", "MR_small.dcm"])
@pytest.mark.parametrize("window", [(None, None), (40.0, 400.0), (-600.0, 1500.0)])
def test_lookup_table_path_gives_the_same_pixels_as_the_float_path(name, window, monkeypatch):
    path = testdata(name)
    fast = np.asarray(Image.open(io.BytesIO(rendering.render_frame(path, center=window[0], width=window[1]))))
    monkeypatch.setattr(rendering, "_monochrome_via_lut", lambda *a, **k: None)
    slow = np.asarray(Image.open(io.BytesIO(rendering.render_frame(path, center=window[0], width=window[1]))))
    assert np.array_equal(fast, slow)


@pytest.mark.parametrize("name", ["693_UNCR.dcm", "RG1_UNCR.dcm", "CT_small.dcm", "OBXXXX1A.dcm"])
def test_direct_native_frame_read_matches_pydicom(name):
    path = testdata(name)
    loaded = reading._load(path)
    ours = decoding._read_native_frame(loaded, 0)
    ref = pixel_array(path, index=0)
    assert ours is not None and ours.dtype == ref.dtype and np.array_equal(ours, ref)


def test_encode_png_round_trips():
    rng = np.random.default_rng(1)
    for array in (rng.integers(0, 256, (37, 53), dtype=np.uint8), rng.integers(0, 256, (20, 9, 3), dtype=np.uint8)):
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(rendering.encode_png(array)))), array)
