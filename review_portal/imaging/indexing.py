"""Fitting an inspected file's values to the index columns (types and lengths from imaging/models.py).

A value that parses as DICOM can still be one the database refuses (PostgreSQL raises on an integer past
32 bits, SQLite on one past 64, PostgreSQL on a NUL in text), and a refusal there would undo the whole
upload. So every value is fitted here before insert:

- identifiers and sizes the portal needs (UIDs, rows, columns, frames, file size): out of range refuses the
  file, with a reason;
- descriptive text (descriptions, modality, SOP class, photometric name, file name): cut to its column, the
  original file keeps the full value;
- numbers that only label or order (Series Number, Instance Number) and floats: out of range becomes NULL,
  and the image is still kept: slices then order by position and SOP Instance UID, which is what the viewer
  does for any file without them. Clamping would invent ties at the boundary; NULL says "unknown".
"""
from __future__ import annotations

import math
from typing import Any

from sqlalchemy import Float, Integer, String

from review_portal.imaging.reading import DicomRejected

__all__ = ["INT32_MAX", "INT32_MIN", "fit", "geometry_columns"]

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

# Columns whose text is descriptive and may be cut to fit; any other text column must fit as it is.
_CUT_TO_FIT = {
    ("studies", "description"), ("series", "modality"), ("series", "description"), ("instances", "sop_class_uid"),
    ("instances", "photometric_interpretation"), ("instances", "original_filename"),
    *(("studies", c) for c in ("patient_name", "patient_id", "patient_id_issuer", "patient_birth_date", "patient_sex",
                               "other_patient_ids")),
}

_LABELS = {
    "study_instance_uid": "Study Instance UID", "series_instance_uid": "Series Instance UID",
    "sop_instance_uid": "SOP Instance UID", "transfer_syntax_uid": "transfer syntax", "rows": "Rows",
    "columns": "Columns", "frames": "Number of Frames", "size": "file size", "blob_key": "storage key",
}


def _label(name: str) -> str:
    return _LABELS.get(name, name.replace("_", " "))


def _clean_text(value: Any) -> str:
    # NUL is refused by PostgreSQL text columns, lone surrogates by every UTF-8 encoder.
    text = str(value).replace("\x00", "")
    return text.encode("utf-8", "replace").decode("utf-8")


def fit(model, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` for a row of ``model``, fitted to its columns; raises DicomRejected for an essential misfit."""
    table = model.__table__
    fitted: dict[str, Any] = {}
    for name, value in values.items():
        column = table.columns[name]
        kind = column.type
        if value is None:
            if not column.nullable and column.default is None and not column.primary_key:
                raise DicomRejected(f"the file has no {_label(name)}")
        elif isinstance(kind, String):
            value = _clean_text(value)
            if kind.length and len(value) > kind.length:
                if (table.name, name) not in _CUT_TO_FIT:
                    raise DicomRejected(f"the {_label(name)} is longer than the {kind.length} characters allowed")
                value = value[: kind.length]
        elif isinstance(kind, Integer):
            if isinstance(value, bool) or not isinstance(value, int) or not INT32_MIN <= value <= INT32_MAX:
                if not column.nullable:
                    raise DicomRejected(f"the {_label(name)} ({value}) is out of the range the portal can index")
                value = None
        elif isinstance(kind, Float):
            try:
                value = float(value)
            except (TypeError, ValueError, OverflowError):
                value = None
            if value is not None and not math.isfinite(value):
                value = None
            if value is None and not column.nullable:
                raise DicomRejected(f"the {_label(name)} is not a number")
        fitted[name] = value
    return fitted


_GEOMETRY_COLUMNS = ("pixel_spacing", "spacing_source", "image_orientation", "image_position", "slice_thickness",
                     "rescale_slope", "rescale_intercept", "bits_stored", "pixel_representation", "samples_per_pixel")


def geometry_columns(geometry: dict | None) -> dict[str, Any]:
    """An instance's geometry columns from pixels.geometry_of (lists of finite floats, checked there)."""
    if not geometry:
        return {}
    return {name: geometry.get(name) if name != "spacing_source" else geometry.get(name) or "" for name in _GEOMETRY_COLUMNS}
