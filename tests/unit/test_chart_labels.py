"""Row labels of the horizontal bar charts (RADPEER, concordance, workload) are never clipped on the left."""
import re

from review_portal.analytics import charts

LONG = "Radiology read: discrepancy that would likely change management"


def _label_x_and_width(svg: str) -> tuple[float, float]:
    width = float(re.search(r'viewBox="0 0 ([\d.]+) ', svg).group(1))
    x = float(re.search(r'<text x="([\d.]+)"[^>]*text-anchor="end"><tspan', svg).group(1))
    return x, width


def test_a_short_label_keeps_the_narrow_column():
    svg = charts.hbar_chart([charts.Bar("Agree", (40.0,))], [charts.Series("Share")], title="t")
    x, _ = _label_x_and_width(svg)
    assert x == charts.LABEL_WIDTH - 8
    assert svg.count("<tspan") == 1


def test_a_long_label_widens_the_column_then_wraps_within_it():
    svg = charts.hbar_chart([charts.Bar(LONG, (40.0,)), charts.Bar("Agree", (60.0,))], [charts.Series("Share")], title="t")
    x, _ = _label_x_and_width(svg)
    assert x == charts.MAX_LABEL_WIDTH - 8
    lines = re.findall(r"<tspan[^>]*>([^<]*)</tspan>", svg)[:2]
    assert " ".join(lines) == LONG
    # Each line fits the label column at the estimated glyph width: nothing starts left of x = 0.
    assert all(len(line) * charts.CHAR_WIDTH <= x for line in lines)


def test_a_label_too_long_for_two_lines_ends_in_an_ellipsis():
    lines = charts._label_lines("word " * 40, 20)
    assert len(lines) == 2 and lines[1].endswith("…") and all(len(line) <= 20 for line in lines)


def test_charts_have_an_accessible_name():
    svg = charts.hbar_chart([charts.Bar("Agree", (40.0,))], [charts.Series("Share")], title="RADPEER scores")
    assert 'role="img" aria-label="RADPEER scores"' in svg
    col = charts.column_chart(["2026-W01"], [(1.0,)], [charts.Series("Cases")], title="Volume")
    assert 'role="img" aria-label="Volume"' in col
