"""Inspecting an uploaded file as a displayable DICOM image (InstanceInfo) and ordering the instances of a series.

``inspect_dicom`` decides whether a file is a usable DICOM image, extracts the identifiers
and descriptive metadata the portal indexes, and otherwise raises ``DicomRejected``;
``sort_key`` orders the instances of a series the way they are stacked in the patient.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from review_portal.imaging.decoding import _decode_frame
from review_portal.imaging.limits import DEFAULT, ImageLimits
from review_portal.imaging.pixels import geometry_of
from review_portal.imaging.reading import (
    DicomRejected,
    _as_float,
    _as_int,
    _damaged_file_guard,
    _first,
    _frame_view,
    _load,
    _parse_date,
    _text,
)

__all__ = ["InstanceInfo", "inspect_dicom", "sort_key"]


@dataclass(frozen=True)
class InstanceInfo:
    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    modality: str
    study_date: datetime.date | None
    study_description: str
    series_description: str
    series_number: int | None
    instance_number: int | None
    slice_position: float | None
    number_of_frames: int
    rows: int
    columns: int
    photometric_interpretation: str
    window_center: float | None
    window_width: float | None
    transfer_syntax_uid: str
    sop_class_uid: str = ""
    # Who the file says the patient is (imaging.identity compares it with the referral).
    patient_name: str = ""
    patient_id: str = ""
    patient_id_issuer: str = ""
    patient_birth_date: str = ""
    patient_sex: str = ""
    other_patient_ids: str = ""  # "id\tissuer" lines from OtherPatientIDsSequence
    geometry: dict | None = None  # pixels.geometry_of: spacing, orientation, rescale, frame of reference


def _slice_position(view: Dataset) -> float | None:
    position = view.get("ImagePositionPatient")
    orientation = view.get("ImageOrientationPatient")
    if not position or not orientation:
        return None
    try:
        pos = [float(v) for v in position]
        ori = [float(v) for v in orientation]
    except (TypeError, ValueError):
        return None
    if len(pos) != 3 or len(ori) != 6:
        return None
    # np.cross spelled out (same float operations, same result): numpy's per-call overhead on
    # three-element vectors was a tenth of inspecting a file.
    (rx, ry, rz), (cx, cy, cz) = ori[:3], ori[3:]
    normal = np.array([ry * cz - rz * cy, rz * cx - rx * cz, rx * cy - ry * cx], dtype=float)
    value = float(np.dot(np.array(pos, dtype=float), normal))
    return value if math.isfinite(value) else None


# --------------------------------------------------------------------------
# Public: inspection and ordering
# --------------------------------------------------------------------------


def inspect_dicom(path: Path, limits: ImageLimits = DEFAULT, *, decode: bool = True) -> InstanceInfo:
    """Validate an uploaded file as a displayable DICOM image and describe it.

    Raises DicomRejected (with ``.reason``) for anything the portal could not
    store and show later. Compressed images get one frame test-decoded so a
    corrupt or unsupported stream is refused at upload, not at review time.
    Declared sizes (frames, pixels, inflated bytes) are checked against ``limits`` and against the
    data actually in the file; ``number_of_frames`` is the verified count. ``decode=False`` (ingest) checks the
    header and the encapsulated frame table only, leaving the decoding to the pixel check (pixel_check.py).
    """
    with _damaged_file_guard():
        return _inspect(Path(path), limits, decode)


def _inspect(path: Path, limits: ImageLimits, decode: bool = True) -> InstanceInfo:
    loaded = _load(path, limits)
    ds = loaded.ds
    if decode and (loaded.transfer_syntax.is_encapsulated or loaded.transfer_syntax.is_deflated):
        _decode_frame(loaded, 0)

    # Without functional groups a frame's attributes are the top-level ones: read them from
    # the dataset itself rather than copying them into a view (a third of inspection time).
    if "SharedFunctionalGroupsSequence" in ds or "PerFrameFunctionalGroupsSequence" in ds:
        view = _frame_view(ds, 0)
    else:
        view = ds
    return InstanceInfo(
        sop_instance_uid=_text(ds, "SOPInstanceUID"),
        series_instance_uid=_text(ds, "SeriesInstanceUID"),
        study_instance_uid=_text(ds, "StudyInstanceUID"),
        modality=_text(ds, "Modality"),
        study_date=_parse_date(ds.get("StudyDate")),
        study_description=_text(ds, "StudyDescription"),
        series_description=_text(ds, "SeriesDescription"),
        series_number=_as_int(ds.get("SeriesNumber")),
        instance_number=_as_int(ds.get("InstanceNumber")),
        slice_position=_slice_position(view),
        number_of_frames=loaded.frames,
        rows=int(ds.Rows),
        columns=int(ds.Columns),
        photometric_interpretation=_text(ds, "PhotometricInterpretation"),
        window_center=_as_float(_first(view.get("WindowCenter"))),
        window_width=_as_float(_first(view.get("WindowWidth"))),
        transfer_syntax_uid=str(loaded.transfer_syntax),
        sop_class_uid=_text(ds, "SOPClassUID")[:64],
        **_patient(ds),
        geometry=geometry_of(ds),
    )


def _patient_text(ds: Dataset, keyword: str) -> str:
    # A stray control character in a name is a reason to warn, not to refuse the image.
    try:
        return _text(ds, keyword)
    except DicomRejected:
        return "".join(c for c in str(ds.get(keyword, "")) if c.isprintable()).strip()


def _patient(ds: Dataset) -> dict:
    others = []
    try:
        for item in ds.get("OtherPatientIDsSequence") or []:
            others.append(f"{_patient_text(item, 'PatientID')}\t{_patient_text(item, 'IssuerOfPatientID')}")
    except (AttributeError, TypeError, ValueError, KeyError):  # a damaged sequence only loses the alternative IDs
        others = []
    return {"patient_name": _patient_text(ds, "PatientName"), "patient_id": _patient_text(ds, "PatientID"),
            "patient_id_issuer": _patient_text(ds, "IssuerOfPatientID"),
            "patient_birth_date": _patient_text(ds, "PatientBirthDate"),
            "patient_sex": _patient_text(ds, "PatientSex"), "other_patient_ids": "\n".join(others)}


def sort_key(info: InstanceInfo) -> tuple:
    """Stacking order within a series.

    Instances with a spatial position sort by it (ascending along the slice
    normal) and come before those without; Instance Number breaks ties (e.g.
    several phases at one position) and is the order when position is absent,
    because scanners renumber instances in reconstruction order, not anatomy.
    """
    has_position = info.slice_position is not None
    has_number = info.instance_number is not None
    return (
        0 if has_position else 1,
        info.slice_position if has_position else 0.0,
        0 if has_number else 1,
        info.instance_number if has_number else 0,
        info.sop_instance_uid,
    )
