"""A measurement computed from a stored DICOM file: its frame's modality values and pixel spacing, read here,
the arithmetic in `measuring`. Called in a sandbox worker (see sandboxed.measure): decoding is an upload's risk."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut

from review_portal.imaging.decoding import _decode_frame
from review_portal.imaging.measuring import NEEDS_PIXELS, compute
from review_portal.imaging.reading import DicomRejected, _damaged_file_guard, _frame_view, _load_cached, _text


def _pair(value) -> list[float] | None:
    try:
        pair = [float(value[0]), float(value[1])]
    except (TypeError, ValueError, IndexError, KeyError):
        return None
    return pair if all(math.isfinite(v) and v > 0 for v in pair) else None


def pixel_spacing(ds: Dataset, frame: int = 0) -> tuple[list[float] | None, str]:
    """([row mm, column mm], source): PixelSpacing (top level, else the enhanced Pixel Measures macro),
    then ImagerPixelSpacing (the detector plane: projection images), else (None, "")."""
    spacing = _pair(ds.get("PixelSpacing"))
    if spacing is None:
        groups = []
        per_frame = ds.get("PerFrameFunctionalGroupsSequence")
        if per_frame and frame < len(per_frame):
            groups.append(per_frame[frame])
        shared = ds.get("SharedFunctionalGroupsSequence")
        if shared:
            groups.append(shared[0])
        for group in groups:
            measures = group.get("PixelMeasuresSequence")
            if measures and (spacing := _pair(measures[0].get("PixelSpacing"))) is not None:
                break
    if spacing is not None:
        return spacing, "PixelSpacing"
    spacing = _pair(ds.get("ImagerPixelSpacing"))
    return (spacing, "ImagerPixelSpacing") if spacing is not None else (None, "")


def _finite(values: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in values.items()}


def measure_file(path: Path, frame: int, kind: str, points) -> dict:
    """{"points": as kept, "values": the figures} for one measurement on frame `frame` of the file."""
    with _damaged_file_guard():
        loaded = _load_cached(Path(path))
        ds = loaded.ds
        if isinstance(frame, bool) or not isinstance(frame, int) or not 0 <= frame < loaded.frames:
            raise DicomRejected(f"frame {frame} does not exist in this image")
        spacing, source = pixel_spacing(ds, frame)
        values, unit = None, ""
        if kind in NEEDS_PIXELS:
            pixels = _decode_frame(loaded, frame, cache=True)
            if pixels.ndim == 2:
                values = np.asarray(apply_modality_lut(pixels, _frame_view(ds, frame)), dtype=np.float64)
                unit = "HU" if _text(ds, "Modality") == "CT" else ""
        kept, out = compute(kind, points, rows=int(ds.Rows), columns=int(ds.Columns), spacing=spacing,
                            spacing_source=source, values=values, value_unit=unit)
    return {"points": kept, "values": _finite(out)}
