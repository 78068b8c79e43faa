"""Synthetic series built from pydicom's public sample slices (new UIDs, positions, varied pixels)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.uid import generate_uid

from tests.conftest import testdata


def synth_series(dest: Path, count: int, source: str = "CT_small.dcm", *, shuffle: bool = True) -> list[Path]:
    """`count` slices of one new series, 2.5 mm apart, written in scrambled order (so sorting matters)."""
    dest.mkdir(parents=True, exist_ok=True)
    base = dcmread(testdata(source))
    study, series, frame_of_ref = generate_uid(), generate_uid(), generate_uid()
    pixels = base.pixel_array
    rng = np.random.default_rng(3)
    order = rng.permutation(count) if shuffle else np.arange(count)
    paths = []
    for n, z_index in enumerate(order):
        ds = base.copy()
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame_of_ref
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = int(z_index) + 1
        x, y, _ = (float(v) for v in base.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y, float(z_index) * 2.5]
        ds.SliceLocation = float(z_index) * 2.5
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SeriesDescription = "Synthetic chest"
        ds.PixelData = (pixels + int(z_index) * 7).astype(pixels.dtype).tobytes()
        path = dest / f"slice{n:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
