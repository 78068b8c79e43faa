"""Measurements on one frame, computed from its pixels and geometry: pure functions, no database, no files.

Points are in image pixel coordinates: x along the columns, y down the rows, floats, with pixel (row r, column c)
covering [c, c+1) x [r, r+1) (its centre at c+0.5, r+0.5). Distances become millimetres through the pixel
spacing ([row spacing, column spacing] in mm, as DICOM PixelSpacing gives it: row spacing is the distance between
rows, i.e. along y). Without a spacing the figures stay in pixels and say so (`calibrated: False`).

* length: two points; the distance.
* bidirectional (RECIST 1.1): the longest diameter (points 1-2) and the longest diameter perpendicular to it
  (points 3-4). The second is made perpendicular here, in millimetres (pixels need not be square): it keeps its
  centre and its extent along the perpendicular, whatever the browser sent.
* ellipse: two opposite corners of the box the (axis-aligned) ellipse fills; its area, and the mean, SD
  (population), minimum and maximum of the modality values (Hounsfield units for CT) of the pixels whose centres
  lie inside it.
* probe: one point; the modality value of the pixel under it.
* arrow: two points (tail, head); the text is the measurement's label, nothing is computed.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

KINDS = ("length", "bidirectional", "ellipse", "probe", "arrow")
POINT_COUNTS = {"length": 2, "bidirectional": 4, "ellipse": 2, "probe": 1, "arrow": 2}
NEEDS_PIXELS = ("ellipse", "probe")


class MeasurementRejected(ValueError):
    """The points do not make a measurement of this kind on this image; `reason` is for a person."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def check_points(kind: str, points, rows: int, columns: int) -> list[list[float]]:
    """The points as [[x, y], ...] floats inside the image, or MeasurementRejected."""
    if kind not in POINT_COUNTS:
        raise MeasurementRejected(f"unknown kind of measurement {str(kind)[:20]!r}")
    if not isinstance(points, (list, tuple)) or len(points) != POINT_COUNTS[kind]:
        raise MeasurementRejected(f"a {kind} measurement takes {POINT_COUNTS[kind]} point(s)")
    out = []
    for point in points:
        if not isinstance(point, (list, tuple)) or len(point) != 2:
            raise MeasurementRejected("each point is [x, y] in image pixels")
        try:
            x, y = float(point[0]), float(point[1])
        except (TypeError, ValueError):
            raise MeasurementRejected("each point is [x, y] in image pixels") from None
        if isinstance(point[0], bool) or isinstance(point[1], bool) or not (math.isfinite(x) and math.isfinite(y)):
            raise MeasurementRejected("each point is [x, y] in image pixels")
        if not (0 <= x <= columns and 0 <= y <= rows):
            raise MeasurementRejected(f"a point lies outside the image ({columns} x {rows} pixels)")
        out.append([x, y])
    return out


def _scale(spacing: Sequence[float] | None) -> tuple[float, float, bool]:
    """(mm per pixel along x, along y, calibrated)."""
    if spacing is None:
        return 1.0, 1.0, False
    row_mm, col_mm = float(spacing[0]), float(spacing[1])
    return col_mm, row_mm, True


def distance(p, q, spacing: Sequence[float] | None) -> float:
    sx, sy, _ = _scale(spacing)
    return math.hypot((q[0] - p[0]) * sx, (q[1] - p[1]) * sy)


def perpendicular_axis(points, spacing: Sequence[float] | None) -> list[list[float]]:
    """The 4 points with the short axis (3-4) made perpendicular to the long axis (1-2) in physical space."""
    sx, sy, _ = _scale(spacing)
    (x1, y1), (x2, y2), (x3, y3), (x4, y4) = points
    ux, uy = (x2 - x1) * sx, (y2 - y1) * sy
    norm = math.hypot(ux, uy)
    if norm == 0:
        raise MeasurementRejected("the long axis has no length")
    vx, vy = -uy / norm, ux / norm  # unit perpendicular, in mm
    half = ((x4 - x3) * sx * vx + (y4 - y3) * sy * vy) / 2.0  # signed half extent along the perpendicular
    cx, cy = (x3 + x4) / 2.0, (y3 + y4) / 2.0
    return [[x1, y1], [x2, y2], [cx - half * vx / sx, cy - half * vy / sy], [cx + half * vx / sx, cy + half * vy / sy]]


def ellipse_mask(points, rows: int, columns: int) -> np.ndarray:
    """Pixels whose centres lie inside the ellipse filling the box between the two points."""
    (x1, y1), (x2, y2) = points
    cx, cy, rx, ry = (x1 + x2) / 2.0, (y1 + y2) / 2.0, abs(x2 - x1) / 2.0, abs(y2 - y1) / 2.0
    if rx == 0 or ry == 0:
        return np.zeros((rows, columns), dtype=bool)
    ys = (np.arange(rows, dtype=np.float64) + 0.5 - cy) / ry
    xs = (np.arange(columns, dtype=np.float64) + 0.5 - cx) / rx
    return xs[np.newaxis, :] ** 2 + ys[:, np.newaxis] ** 2 <= 1.0


def compute(kind: str, points, *, rows: int, columns: int, spacing: Sequence[float] | None = None,
            spacing_source: str = "", values: np.ndarray | None = None, value_unit: str = "") -> tuple[list, dict]:
    """(points as kept, values) for one measurement. `values` are the frame's modality values (rows x columns),
    needed for ellipse and probe only; `value_unit` is "HU" for CT, "" for raw values."""
    points = check_points(kind, points, rows, columns)
    if spacing is not None and not all(math.isfinite(float(s)) and float(s) > 0 for s in spacing):
        spacing, spacing_source = None, ""
    _, _, calibrated = _scale(spacing)
    unit = "mm" if calibrated else "px"
    out: dict = {"calibrated": calibrated, "spacing_source": spacing_source if calibrated else "", "unit": unit}
    if kind == "length":
        out["length"] = distance(points[0], points[1], spacing)
    elif kind == "bidirectional":
        points = perpendicular_axis(points, spacing)
        a, b = distance(points[0], points[1], spacing), distance(points[2], points[3], spacing)
        out["long"], out["short"] = max(a, b), min(a, b)
    elif kind == "ellipse":
        sx, sy, _ = _scale(spacing)
        (x1, y1), (x2, y2) = points
        out["area"] = math.pi * abs(x2 - x1) / 2.0 * sx * abs(y2 - y1) / 2.0 * sy
        out["area_unit"] = "mm²" if calibrated else "px²"
        out.update(_roi_stats(values, ellipse_mask(points, rows, columns), value_unit))
    elif kind == "probe":
        x, y = points[0]
        out["value_unit"] = value_unit
        out["value"] = _value_at(values, x, y, rows, columns)
    return points, out


def _grey(values: np.ndarray | None) -> np.ndarray | None:
    return values if values is not None and values.ndim == 2 else None


def _roi_stats(values: np.ndarray | None, mask: np.ndarray, value_unit: str) -> dict:
    grey = _grey(values)
    stats = {"value_unit": value_unit, "pixels": int(mask.sum()), "mean": None, "sd": None, "min": None, "max": None}
    if grey is None or not stats["pixels"]:
        return stats
    inside = grey[mask].astype(np.float64)
    stats.update(mean=float(inside.mean()), sd=float(inside.std()), min=float(inside.min()), max=float(inside.max()))
    return stats


def _value_at(values: np.ndarray | None, x: float, y: float, rows: int, columns: int) -> float | None:
    grey = _grey(values)
    if grey is None:
        return None
    return float(grey[min(int(y), rows - 1), min(int(x), columns - 1)])


def _num(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def describe(kind: str, values: dict) -> str:
    """The measurement as the letter and the list print it: "23.4 mm", "23.4 × 12.1 mm", "area 120.5 mm², ..."."""
    unit = values.get("unit", "mm")
    flag = "" if values.get("calibrated", True) else " (uncalibrated)"
    if kind == "length":
        return f"{_num(values.get('length'))} {unit}{flag}"
    if kind == "bidirectional":
        return f"{_num(values.get('long'))} × {_num(values.get('short'))} {unit}{flag}"
    value_unit = values.get("value_unit") or ""
    suffix = f" {value_unit}" if value_unit else ""
    if kind == "ellipse":
        text = f"area {_num(values.get('area'))} {values.get('area_unit', 'mm²')}"
        if values.get("mean") is not None:
            text += (f", mean {_num(values['mean'])}{suffix} (SD {_num(values['sd'])}, "
                     f"min {_num(values['min'])}, max {_num(values['max'])})")
        return text + flag
    if kind == "probe":
        return f"{_num(values.get('value'))}{suffix}"
    return ""
