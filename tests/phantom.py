"""A synthetic CT phantom built from a real DICOM file: known pixel spacing, a uniform disc and a square of known
size and Hounsfield value on a -1000 HU background."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.uid import generate_uid

from tests.conftest import testdata

SIZE = 128
SPACING = (0.7, 0.7)  # [row mm, column mm]
DISC = {"cx": 40.0, "cy": 40.0, "radius": 20.0, "hu": 40}  # centre in image coordinates (pixel centres at +0.5)
SQUARE = {"x0": 70, "y0": 80, "side": 30, "hu": 300}  # columns x0..x0+side-1, rows y0..y0+side-1
BACKGROUND_HU = -1000
INTERCEPT = -1024


def phantom_pixels() -> np.ndarray:
    """Stored values (HU - intercept), int16."""
    hu = np.full((SIZE, SIZE), BACKGROUND_HU, dtype=np.int32)
    ys, xs = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    hu[(xs - DISC["cx"]) ** 2 + (ys - DISC["cy"]) ** 2 <= DISC["radius"] ** 2] = DISC["hu"]
    s = SQUARE
    hu[s["y0"]:s["y0"] + s["side"], s["x0"]:s["x0"] + s["side"]] = s["hu"]
    return (hu - INTERCEPT).astype(np.int16)


def write_phantom(path: Path, *, spacing=SPACING, spacing_tag: str = "PixelSpacing", series_uid: str | None = None,
                  study_uid: str | None = None, z: float = 0.0, number: int = 1) -> Path:
    ds = dcmread(testdata("CT_small.dcm"))
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SeriesDescription = "Phantom"
    ds.Rows = ds.Columns = SIZE
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleSlope, ds.RescaleIntercept = 1, INTERCEPT
    ds.InstanceNumber = number
    ds.ImagePositionPatient = [0.0, 0.0, z]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SliceLocation = z
    del ds.PixelSpacing
    if spacing is not None:
        setattr(ds, spacing_tag, [spacing[0], spacing[1]])
    ds.PixelData = phantom_pixels().tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
