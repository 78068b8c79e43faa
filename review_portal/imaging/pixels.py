"""Stored pixel values and image geometry for the browser viewer (static/js/viewer.js).

The browser does window/level, invert, zoom and pan itself, so it needs each frame's stored values once,
exactly (a PNG holds 8 bits per channel): `frame_pixels` gives them as a little-endian typed array, with a
small header saying how to read it. `geometry` reads what the viewer and its measurement tools need from a
file's header: pixel spacing (PixelSpacing, else ImagerPixelSpacing), orientation, position, slice thickness,
modality rescale, bits stored, pixel representation, samples per pixel, and the frame of reference.
"""
from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from review_portal.imaging.decoding import _decode_frame
from review_portal.imaging.reading import (
    DicomRejected,
    _as_float,
    _as_int,
    _damaged_file_guard,
    _first,
    _frame_view,
    _load,
    _load_cached,
    _text,
)

__all__ = ["DTYPES", "GEOMETRY_FIELDS", "frame_pixels", "geometry", "geometry_of", "unpack"]

# Header of the packed answer: magic, dtype code, rows, columns, samples per pixel.
_HEAD = struct.Struct("<4sBIIB")
_MAGIC = b"PXv1"
DTYPES = {1: "int16", 2: "uint16", 3: "uint8"}
_CODES = {v: k for k, v in DTYPES.items()}

GEOMETRY_FIELDS = ("pixel_spacing", "spacing_source", "image_orientation", "image_position", "slice_thickness",
                   "rescale_slope", "rescale_intercept", "bits_stored", "pixel_representation", "samples_per_pixel")


def _floats(value: Any, n: int) -> list[float] | None:
    if value is None or isinstance(value, (str, bytes)):
        return None
    try:
        out = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    if len(out) != n or not all(math.isfinite(v) for v in out):
        return None
    return out


def _in_groups(ds: Dataset, macro: str, keyword: str) -> Any:
    """A value from the enhanced multi-frame functional groups (first frame's, else the shared one)."""
    for seq_name in ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence"):
        groups = ds.get(seq_name)
        if groups:
            items = groups[0].get(macro)
            if items and keyword in items[0]:
                return items[0].get(keyword)
    return None


def geometry_of(ds: Dataset) -> dict:
    """The geometry fields of an instance (first frame) from its parsed header; missing values are None."""
    view = _frame_view(ds, 0) if ("SharedFunctionalGroupsSequence" in ds or "PerFrameFunctionalGroupsSequence" in ds) else ds
    spacing = _floats(ds.get("PixelSpacing") or _in_groups(ds, "PixelMeasuresSequence", "PixelSpacing"), 2)
    source = "PixelSpacing" if spacing else ""
    if not spacing:
        spacing = _floats(ds.get("ImagerPixelSpacing"), 2)
        source = "ImagerPixelSpacing" if spacing else ""
    if spacing and not all(v > 0 for v in spacing):
        spacing, source = None, ""
    thickness = _as_float(ds.get("SliceThickness"))
    if thickness is None:
        thickness = _as_float(_in_groups(ds, "PixelMeasuresSequence", "SliceThickness"))
    slope = _as_float(_first(view.get("RescaleSlope")))
    intercept = _as_float(_first(view.get("RescaleIntercept")))
    return {
        "pixel_spacing": spacing,
        "spacing_source": source,
        "image_orientation": _floats(view.get("ImageOrientationPatient"), 6),
        "image_position": _floats(view.get("ImagePositionPatient"), 3),
        "slice_thickness": thickness,
        "rescale_slope": slope,
        "rescale_intercept": intercept,
        "bits_stored": _as_int(ds.get("BitsStored")),
        "pixel_representation": _as_int(ds.get("PixelRepresentation")),
        "samples_per_pixel": _as_int(ds.get("SamplesPerPixel")) or 1,
        "frame_of_reference_uid": _text(ds, "FrameOfReferenceUID")[:64],
    }


def geometry(path: Path) -> dict:
    """geometry_of a stored file (header only; DicomRejected if it cannot be read)."""
    with _damaged_file_guard():
        return geometry_of(_load(Path(path)).ds)


def frame_pixels(path: Path, frame: int = 0) -> bytes:
    """One frame's stored values (before rescale), packed: a header, then the little-endian array.

    int16 when signed, uint16 when unsigned and wider than 8 bits, uint8 for 8-bit and colour (RGB interleaved,
    YBR converted by the decoder; palette colour expanded to RGB here, the browser has no palette).
    """
    if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)):
        raise DicomRejected(f"invalid frame number {frame!r}")
    with _damaged_file_guard():
        loaded = _load_cached(Path(path))
        ds = loaded.ds
        values = _decode_frame(loaded, int(frame), cache=True)
        photometric = _text(ds, "PhotometricInterpretation").upper()
        if photometric == "PALETTE COLOR":
            from review_portal.imaging.rendering import _palette_to_uint8

            values = _palette_to_uint8(values, ds)
        if values.dtype.kind == "f" or values.dtype.itemsize > 2:
            raise DicomRejected("its pixel values are wider than 16 bits, which the browser viewer does not take")
        samples = values.shape[-1] if values.ndim == 3 else 1
        if samples not in (1, 3):
            raise DicomRejected("it has an unusual number of colour samples")
        if samples == 3 or (values.dtype.itemsize == 1 and values.dtype.kind == "u"):
            dtype = "uint8"
        elif values.dtype.kind == "i":
            dtype = "int16"
        else:
            dtype = "uint16"
        array = np.ascontiguousarray(values.astype("<" + np.dtype(dtype).str[1:], copy=False))
        rows, columns = values.shape[0], values.shape[1]
        return _HEAD.pack(_MAGIC, _CODES[dtype], rows, columns, samples) + array.tobytes()


def unpack(blob: bytes) -> tuple[str, int, int, int, bytes]:
    """(dtype, rows, columns, samples, raw little-endian values) from frame_pixels' answer."""
    magic, code, rows, columns, samples = _HEAD.unpack_from(blob)
    if magic != _MAGIC or code not in DTYPES:
        raise DicomRejected("the decoded pixels came back damaged")
    return DTYPES[code], rows, columns, samples, blob[_HEAD.size:]
