"""Measurements from pixels and geometry, on a synthetic CT phantom of known size, spacing and value:
within 1% or 1 pixel; the ROI mean and SD of a uniform disc exactly."""
import math

import pytest

from review_portal.imaging.measured import measure_file
from review_portal.imaging.measuring import MeasurementRejected, compute, describe, perpendicular_axis
from review_portal.imaging.reading import DicomRejected
from tests.phantom import DISC, SIZE, SPACING, SQUARE, write_phantom


@pytest.fixture
def phantom(tmp_path):
    return write_phantom(tmp_path / "phantom.dcm")


def _close(measured, expected, pixel_mm):
    assert abs(measured - expected) <= max(0.01 * expected, pixel_mm), (measured, expected)


def test_length_across_the_square_and_the_disc_in_mm(phantom):
    s = SQUARE
    edge = measure_file(phantom, 0, "length", [[s["x0"], s["y0"] + 5], [s["x0"] + s["side"], s["y0"] + 5]])["values"]
    assert edge["calibrated"] is True and edge["unit"] == "mm" and edge["spacing_source"] == "PixelSpacing"
    _close(edge["length"], s["side"] * SPACING[1], SPACING[1])
    assert edge["length"] == pytest.approx(21.0)
    diagonal = measure_file(phantom, 0, "length", [[s["x0"], s["y0"]], [s["x0"] + s["side"], s["y0"] + s["side"]]])
    assert diagonal["values"]["length"] == pytest.approx(s["side"] * math.sqrt(2) * 0.7)
    r = DISC["radius"]
    vertical = measure_file(phantom, 0, "length", [[DISC["cx"], DISC["cy"] - r], [DISC["cx"], DISC["cy"] + r]])
    _close(vertical["values"]["length"], 2 * r * SPACING[0], SPACING[0])


def test_spacing_is_per_axis_imager_spacing_is_the_fallback_and_none_is_flagged(tmp_path):
    square = write_phantom(tmp_path / "aniso.dcm", spacing=(0.5, 0.8))  # rows 0.5 mm apart, columns 0.8 mm
    s = SQUARE
    across = measure_file(square, 0, "length", [[s["x0"], s["y0"]], [s["x0"] + s["side"], s["y0"]]])["values"]
    down = measure_file(square, 0, "length", [[s["x0"], s["y0"]], [s["x0"], s["y0"] + s["side"]]])["values"]
    assert across["length"] == pytest.approx(24.0) and down["length"] == pytest.approx(15.0)

    imager = write_phantom(tmp_path / "imager.dcm", spacing=(0.2, 0.2), spacing_tag="ImagerPixelSpacing")
    values = measure_file(imager, 0, "length", [[0, 0], [10, 0]])["values"]
    assert values == {"calibrated": True, "spacing_source": "ImagerPixelSpacing", "unit": "mm",
                      "length": pytest.approx(2.0)}

    bare = write_phantom(tmp_path / "bare.dcm", spacing=None)
    values = measure_file(bare, 0, "length", [[0, 0], [30, 40]])["values"]
    assert values["calibrated"] is False and values["unit"] == "px" and values["length"] == pytest.approx(50.0)
    assert describe("length", values) == "50.0 px (uncalibrated)"


def test_ellipse_inside_the_uniform_disc_gives_its_value_exactly(phantom):
    r = DISC["radius"] - 1
    box = [[DISC["cx"] - r, DISC["cy"] - r], [DISC["cx"] + r, DISC["cy"] + r]]
    values = measure_file(phantom, 0, "ellipse", box)["values"]
    assert values["value_unit"] == "HU"
    assert values["mean"] == DISC["hu"] and values["sd"] == 0.0
    assert values["min"] == values["max"] == DISC["hu"]
    assert values["area"] == pytest.approx(math.pi * (r * 0.7) ** 2)
    assert describe("ellipse", values) == "area 555.7 mm², mean 40.0 HU (SD 0.0, min 40.0, max 40.0)"


def test_ellipse_on_the_disc_outline_has_the_disc_area_within_one_percent(phantom):
    r = DISC["radius"]
    box = [[DISC["cx"] - r, DISC["cy"] - r], [DISC["cx"] + r, DISC["cy"] + r]]
    values = measure_file(phantom, 0, "ellipse", box)["values"]
    true_area = math.pi * (r * 0.7) ** 2
    assert abs(values["area"] - true_area) <= 0.01 * true_area
    assert abs(values["pixels"] * 0.49 - true_area) <= 0.01 * true_area  # the pixels counted are the disc's
    assert values["mean"] == DISC["hu"] and values["sd"] == 0.0


def test_ellipse_straddling_two_values_has_their_mean_and_sd(phantom):
    # Half over the square (300 HU), half over background (-1000 HU): a 2 x 2 box at the square's left edge.
    s = SQUARE
    values = measure_file(phantom, 0, "ellipse", [[s["x0"] - 1, s["y0"] + 10], [s["x0"] + 1, s["y0"] + 12]])["values"]
    assert values["pixels"] == 4
    assert values["mean"] == pytest.approx(-350.0) and values["sd"] == pytest.approx(650.0)
    assert (values["min"], values["max"]) == (-1000.0, 300.0)


def test_probe_reads_the_hounsfield_value_under_the_point(phantom):
    inside = measure_file(phantom, 0, "probe", [[DISC["cx"], DISC["cy"]]])["values"]
    outside = measure_file(phantom, 0, "probe", [[2.5, 2.5]])["values"]
    square = measure_file(phantom, 0, "probe", [[SQUARE["x0"] + 0.2, SQUARE["y0"] + 0.2]])["values"]
    assert (inside["value"], outside["value"], square["value"]) == (40.0, -1000.0, 300.0)
    assert describe("probe", inside) == "40.0 HU"


def test_bidirectional_reports_long_and_perpendicular_short_axis(phantom):
    s = SQUARE
    # Long axis: the square's diagonal; short axis sent skewed: kept at its centre, made perpendicular.
    long_axis = [[s["x0"], s["y0"]], [s["x0"] + s["side"], s["y0"] + s["side"]]]
    short_axis = [[s["x0"] + s["side"] - 4, s["y0"] + 2], [s["x0"] + 2, s["y0"] + s["side"] - 2]]
    result = measure_file(phantom, 0, "bidirectional", long_axis + short_axis)
    p = result["points"]
    ux, uy = p[1][0] - p[0][0], p[1][1] - p[0][1]
    vx, vy = p[3][0] - p[2][0], p[3][1] - p[2][1]
    assert ux * vx + uy * vy == pytest.approx(0.0, abs=1e-9)
    assert result["values"]["long"] == pytest.approx(s["side"] * math.sqrt(2) * 0.7)
    # The extent of the sent short axis along the perpendicular: ((-24, 26) . (-1, 1)/sqrt 2) = 50 / sqrt 2 px.
    assert result["values"]["short"] == pytest.approx(50 / math.sqrt(2) * 0.7)
    assert describe("bidirectional", result["values"]) == "29.7 × 24.7 mm"


def test_perpendicular_is_in_millimetres_when_pixels_are_not_square():
    points = perpendicular_axis([[0, 0], [10, 10], [5, 0], [5, 10]], (1.0, 2.0))  # rows 1 mm, columns 2 mm
    (x1, y1), (x2, y2), (x3, y3), (x4, y4) = points
    assert (x2 - x1) * 2 * (x4 - x3) * 2 + (y2 - y1) * (y4 - y3) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("kind, points, reason", [
    ("length", [[0, 0]], "takes 2 point"),
    ("length", [[0, 0], [SIZE + 1, 0]], "outside the image"),
    ("length", [[0, 0], ["a", 0]], "[x, y]"),
    ("length", [[0, 0], [float("nan"), 0]], "[x, y]"),
    ("probe", [[1, 2, 3]], "[x, y]"),
    ("circle", [[0, 0]], "unknown kind"),
    ("bidirectional", [[5, 5], [5, 5], [1, 1], [2, 2]], "no length"),
])
def test_impossible_points_are_refused_with_a_reason(kind, points, reason):
    with pytest.raises(MeasurementRejected) as caught:
        compute(kind, points, rows=SIZE, columns=SIZE, spacing=SPACING)
    assert reason in caught.value.reason


def test_a_frame_the_file_does_not_have_is_refused(phantom):
    with pytest.raises(DicomRejected):
        measure_file(phantom, 1, "length", [[0, 0], [1, 1]])
