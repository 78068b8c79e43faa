"""Server-rendered SVG charts: no script, no style attribute (the CSP forbids both), no CDN.

Colours are SVG presentation attributes, so the same markup looks right in the browser and in the
WeasyPrint PDF; the class names let portal.css restyle them. Every chart sits beside a table with
the same numbers, so the chart may round freely and stays readable at a glance.
"""
from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup, escape

PALETTE = {"primary": "#1b7f86", "secondary": "#1f3a5f", "accent": "#c77d12", "muted": "#9aa7b6",
           "ok": "#1e7b45", "bad": "#b3261e"}
LABEL_WIDTH = 190  # the narrowest label column; it widens up to MAX_LABEL_WIDTH for long labels, then they wrap
MAX_LABEL_WIDTH = 300
CHAR_WIDTH = 6.8  # DejaVu Sans at 11 px, a little over its average advance, so an estimate never clips
PLOT_WIDTH = 380
ROW_HEIGHT = 26
FONT = 'font-family="DejaVu Sans, sans-serif" font-size="11"'


@dataclass(frozen=True)
class Series:
    name: str
    colour: str = "primary"


@dataclass(frozen=True)
class Bar:
    """One row of a horizontal bar chart: a value per series, an optional interval and reference mark."""

    label: str
    values: tuple[float | None, ...]
    intervals: tuple[tuple[float, float] | None, ...] = ()
    reference: float | None = None


def _num(x: float) -> str:
    return f"{x:.1f}"


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000):
        if value <= step:
            return float(step)
    return float(value)


def _legend(series: list[Series], reference_label: str | None, y: float) -> list[str]:
    parts, x = [], LABEL_WIDTH
    for s in series:
        parts.append(f'<rect x="{x}" y="{_num(y - 9)}" width="10" height="10" fill="{PALETTE[s.colour]}" class="chart-{s.colour}"/>')
        parts.append(f'<text x="{x + 14}" y="{_num(y)}" {FONT} fill="#1c2533">{escape(s.name)}</text>')
        x += 24 + 7 * len(s.name)
    if reference_label:
        parts.append(f'<line x1="{x}" y1="{_num(y - 10)}" x2="{x}" y2="{_num(y + 1)}" stroke="{PALETTE["accent"]}" '
                     f'stroke-width="3" class="chart-reference"/>')
        parts.append(f'<text x="{x + 6}" y="{_num(y)}" {FONT} fill="#1c2533">{escape(reference_label)}</text>')
    return parts


def _label_lines(label: str, max_chars: int) -> list[str]:
    """A row label in at most two lines of `max_chars`, broken at spaces; a longer one ends in an ellipsis
    (the table beside the chart carries it whole)."""
    if len(label) <= max_chars:
        return [label]
    lines, line = [], ""
    for word in label.split():
        if line and len(line) + 1 + len(word) > max_chars:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    lines = [ln if len(ln) <= max_chars else ln[:max_chars - 1] + "…" for ln in lines]
    if len(lines) > 2:
        lines = [lines[0], (lines[1][:max_chars - 1] + "…") if len(lines[1]) >= max_chars else lines[1] + "…"]
    return lines


def label_width(labels: list[str]) -> tuple[int, int]:
    """The label column's width for these labels, and how many characters fit on one of its lines."""
    longest = max((len(label) for label in labels), default=0)
    width = max(LABEL_WIDTH, min(MAX_LABEL_WIDTH, int(16 + longest * CHAR_WIDTH)))
    return width, int((width - 16) / CHAR_WIDTH)


def hbar_chart(bars: list[Bar], series: list[Series], *, title: str, unit: str = "", max_value: float | None = None,
               reference_label: str | None = None) -> Markup:
    """Horizontal bars, one group per row; whiskers for confidence intervals; a tick for a reference value."""
    if not bars:
        return Markup("")
    top = max([v for b in bars for v in b.values if v is not None]
              + [hi for b in bars for iv in b.intervals if iv for hi in (iv[1],)]
              + [b.reference for b in bars if b.reference is not None] + [0])
    scale_max = max_value if max_value is not None else _nice_max(top)
    per_row = max(1, len(series))
    bar_h = (ROW_HEIGHT - 8) / per_row
    height = 20 + len(bars) * ROW_HEIGHT + 40
    label_w, max_chars = label_width([b.label for b in bars])
    width = label_w + PLOT_WIDTH + 60

    def x_of(v: float) -> float:
        return label_w + PLOT_WIDTH * max(0.0, min(v, scale_max)) / scale_max

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
             f'aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}"><title>{escape(title)}</title>']
    for tick in range(5):
        v = scale_max * tick / 4
        x = x_of(v)
        parts.append(f'<line x1="{_num(x)}" y1="14" x2="{_num(x)}" y2="{_num(20 + len(bars) * ROW_HEIGHT)}" '
                     f'stroke="#d9e0e8" stroke-width="1" class="chart-grid"/>')
        label = f"{v:g}{unit}"
        parts.append(f'<text x="{_num(x)}" y="10" {FONT} fill="#5d6b7e" text-anchor="middle">{escape(label)}</text>')
    for i, bar in enumerate(bars):
        y0 = 20 + i * ROW_HEIGHT
        lines = _label_lines(bar.label, max_chars)
        first_y = y0 + ROW_HEIGHT / 2 + 4 - (len(lines) - 1) * 6
        parts.append(f'<text x="{label_w - 8}" y="{_num(first_y)}" {FONT} fill="#1c2533" text-anchor="end">'
                     + "".join(f'<tspan x="{label_w - 8}" dy="{0 if k == 0 else 12}">{escape(line)}</tspan>'
                               for k, line in enumerate(lines)) + "</text>")
        for j, value in enumerate(bar.values):
            s = series[j] if j < len(series) else series[-1]
            y = y0 + 4 + j * bar_h
            if value is not None:
                w = x_of(value) - label_w
                parts.append(f'<rect x="{label_w}" y="{_num(y)}" width="{_num(w)}" height="{_num(bar_h - 2)}" '
                             f'fill="{PALETTE[s.colour]}" class="chart-{s.colour}"><title>{escape(s.name)}: '
                             f'{escape(_num(value))}{escape(unit)}</title></rect>')
            interval = bar.intervals[j] if j < len(bar.intervals) else None
            if interval is not None:
                lo, hi = x_of(interval[0]), x_of(interval[1])
                mid = y + (bar_h - 2) / 2
                parts.append(f'<path d="M{_num(lo)} {_num(mid)} H{_num(hi)} M{_num(lo)} {_num(mid - 4)} V{_num(mid + 4)} '
                             f'M{_num(hi)} {_num(mid - 4)} V{_num(mid + 4)}" stroke="#1c2533" stroke-width="1.2" '
                             f'fill="none" class="chart-interval"/>')
        if bar.reference is not None:
            x = x_of(bar.reference)
            parts.append(f'<line x1="{_num(x)}" y1="{_num(y0 + 1)}" x2="{_num(x)}" y2="{_num(y0 + ROW_HEIGHT - 1)}" '
                         f'stroke="{PALETTE["accent"]}" stroke-width="3" class="chart-reference"/>')
    parts += _legend(series, reference_label, 20 + len(bars) * ROW_HEIGHT + 26)
    parts.append("</svg>")
    # Every text in `parts` went through escape(); the rest is numbers we formatted.
    return Markup("".join(parts))  # nosec B704


def column_chart(labels: list[str], values: list[tuple[float, ...]], series: list[Series], *, title: str) -> Markup:
    """Vertical columns over time (volume by week), one column per series side by side."""
    if not labels:
        return Markup("")
    left, plot_h, plot_w = 36, 150, 560
    width, height = left + plot_w + 10, plot_h + 70
    # Counts: a maximum divisible by four keeps the quarter gridlines on whole numbers.
    top = float(max(4, -(-int(max([v for row in values for v in row] + [0])) // 4) * 4))
    slot = plot_w / len(labels)
    col_w = max(1.0, (slot - 2) / max(1, len(series)))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
             f'aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}"><title>{escape(title)}</title>']
    for tick in range(5):
        v = top * tick / 4
        y = 10 + plot_h - plot_h * v / top
        parts.append(f'<line x1="{left}" y1="{_num(y)}" x2="{left + plot_w}" y2="{_num(y)}" stroke="#d9e0e8" '
                     f'stroke-width="1" class="chart-grid"/>')
        parts.append(f'<text x="{left - 4}" y="{_num(y + 4)}" {FONT} fill="#5d6b7e" text-anchor="end">{v:g}</text>')
    every = max(1, -(-len(labels) // 10))
    for i, (label, row) in enumerate(zip(labels, values)):
        x0 = left + i * slot + 1
        for j, v in enumerate(row):
            s = series[j]
            h = plot_h * v / top
            parts.append(f'<rect x="{_num(x0 + j * col_w)}" y="{_num(10 + plot_h - h)}" width="{_num(col_w)}" '
                         f'height="{_num(h)}" fill="{PALETTE[s.colour]}" class="chart-{s.colour}"><title>'
                         f'{escape(label)} {escape(s.name)}: {v:g}</title></rect>')
        if i % every == 0:
            # "2026-W19" → "W19", "2026-05" stays: the table beside the chart carries the full label.
            short = label.split("-", 1)[1] if "-W" in label else label
            parts.append(f'<text x="{_num(x0)}" y="{10 + plot_h + 14}" {FONT} fill="#5d6b7e">{escape(short)}</text>')
    x = left
    for s in series:
        parts.append(f'<rect x="{x}" y="{height - 20}" width="10" height="10" fill="{PALETTE[s.colour]}" class="chart-{s.colour}"/>')
        parts.append(f'<text x="{x + 14}" y="{height - 11}" {FONT} fill="#1c2533">{escape(s.name)}</text>')
        x += 24 + 7 * len(s.name)
    parts.append("</svg>")
    # Every text in `parts` went through escape(); the rest is numbers we formatted.
    return Markup("".join(parts))  # nosec B704
