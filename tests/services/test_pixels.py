"""imaging/pixels.py on real files: the stored values the browser viewer windows itself, and the geometry it needs."""
from __future__ import annotations

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.pixels import apply_color_lut

from review_portal.imaging import pixels
from review_portal.imaging.reading import DicomRejected
from tests.conftest import testdata

NUMPY = {"int16": "<i2", "uint16": "<u2", "uint8": "u1"}


def _values(path, frame=0):
    dtype, rows, columns, samples, raw = pixels.unpack(pixels.frame_pixels(path, frame))
    return dtype, np.frombuffer(raw, dtype=NUMPY[dtype]).reshape(rows, columns, samples)


@pytest.mark.parametrize("name, dtype", [
    ("CT_small.dcm", "int16"),            # signed 16-bit
    ("MR2_J2KR.dcm", "uint16"),           # unsigned 16-bit, JPEG 2000 lossless: decoded on the server
    ("emri_small_big_endian.dcm", "uint16"),  # big endian in the file, little endian on the wire
    ("vlut_04.dcm", "uint8"),             # 8-bit greyscale
    ("SC_rgb_rle.dcm", "uint8"),          # RGB, RLE
])
def test_stored_values_round_trip(name, dtype):
    path = testdata(name)
    got_dtype, values = _values(path)
    expected = dcmread(path).pixel_array
    if expected.ndim == 3 and expected.shape[-1] != 3:
        expected = expected[0]  # multi-frame: the first frame
    assert got_dtype == dtype
    assert np.array_equal(values.reshape(expected.shape), expected)


def test_a_later_frame_of_a_multiframe_file():
    path = testdata("emri_small.dcm")
    _, values = _values(path, 7)
    assert np.array_equal(values[..., 0], dcmread(path).pixel_array[7])
    with pytest.raises(DicomRejected):
        pixels.frame_pixels(path, 10)


def test_palette_colour_is_expanded_to_rgb():
    path = testdata("OBXXXX1A.dcm")
    dtype, values = _values(path)
    ds = dcmread(path)
    rgb = apply_color_lut(ds.pixel_array, ds)
    assert dtype == "uint8" and values.shape == (ds.Rows, ds.Columns, 3)
    bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
    expected = np.rint(rgb.astype(np.float64) * 255 / (2**bits - 1))  # the palette's range onto 8 bits
    assert np.abs(values.astype(int) - expected).max() <= 1
    assert len(np.unique(values.reshape(-1, 3), axis=0)) > 20


def test_geometry_from_the_header(tmp_path):
    ct = dcmread(testdata("CT_small.dcm"))
    g = pixels.geometry(testdata("CT_small.dcm"))
    assert g["pixel_spacing"] == [float(v) for v in ct.PixelSpacing] and g["spacing_source"] == "PixelSpacing"
    assert g["image_orientation"] == [float(v) for v in ct.ImageOrientationPatient]
    assert g["image_position"] == [float(v) for v in ct.ImagePositionPatient]
    assert (g["slice_thickness"], g["rescale_slope"], g["rescale_intercept"]) == (
        float(ct.SliceThickness), float(ct.RescaleSlope), float(ct.RescaleIntercept))
    assert (g["bits_stored"], g["pixel_representation"], g["samples_per_pixel"]) == (16, 1, 1)
    assert g["frame_of_reference_uid"] == ct.FrameOfReferenceUID

    # Projection radiography: only the detector's spacing. Then none at all: uncalibrated.
    del ct.PixelSpacing
    ct.ImagerPixelSpacing = [0.2, 0.25]
    ct.save_as(tmp_path / "cr.dcm")
    g = pixels.geometry(tmp_path / "cr.dcm")
    assert (g["pixel_spacing"], g["spacing_source"]) == ([0.2, 0.25], "ImagerPixelSpacing")
    del ct.ImagerPixelSpacing
    ct.ImageOrientationPatient = [1, 0, 0, 0, 1]  # damaged: five values
    ct.save_as(tmp_path / "none.dcm")
    g = pixels.geometry(tmp_path / "none.dcm")
    assert (g["pixel_spacing"], g["spacing_source"], g["image_orientation"]) == (None, "", None)
