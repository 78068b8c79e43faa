"""Measurements burned into a key image for the letter: drawn with Pillow on the slice the server rendered.

The PNG is one the portal rendered itself at full size (imaging.rendering), so image pixel coordinates are its
pixel coordinates: pixel (row r, column c) spans [c, c+1) x [r, r+1).
"""
from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from review_portal.imaging.rendering import encode_png

COLOUR = (255, 215, 0)  # the viewer's measurement yellow
SHADOW = (0, 0, 0)


def _font(size: int):
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default()


def _arrow_head(draw, tail, head, width: int, length: float) -> None:
    angle = math.atan2(head[1] - tail[1], head[0] - tail[0])
    for side in (-0.45, 0.45):
        end = (head[0] - length * math.cos(angle + side), head[1] - length * math.sin(angle + side))
        draw.line([head, end], fill=COLOUR, width=width)


def burn_in(png: bytes, marks: list[dict]) -> bytes:
    """The PNG with each mark drawn: {"kind", "points" ([[x, y], ...] image pixels), "text"} as in the viewer."""
    image = Image.open(io.BytesIO(png))
    image.load()
    image = image.convert("RGB")
    scale = max(1, round(max(image.size) / 256))
    width, font = scale, _font(10 * scale)
    draw = ImageDraw.Draw(image)
    for mark in marks:
        points = [(float(x), float(y)) for x, y in mark.get("points") or []]
        kind, text = mark.get("kind"), str(mark.get("text") or "")
        if not points:
            continue
        if kind in ("length", "arrow") and len(points) == 2:
            draw.line(points, fill=COLOUR, width=width)
            if kind == "arrow":
                _arrow_head(draw, points[0], points[1], width, 6 * scale)
        elif kind == "bidirectional" and len(points) == 4:
            draw.line(points[:2], fill=COLOUR, width=width)
            draw.line(points[2:], fill=COLOUR, width=width)
        elif kind == "ellipse" and len(points) == 2:
            (x1, y1), (x2, y2) = points
            draw.ellipse([min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)], outline=COLOUR, width=width)
        elif kind == "probe":
            x, y = points[0]
            r = 3 * scale
            draw.line([(x - r, y), (x + r, y)], fill=COLOUR, width=width)
            draw.line([(x, y - r), (x, y + r)], fill=COLOUR, width=width)
        if text:
            x, y = points[0]
            at = (min(max(x + 3 * scale, 0), image.width - 10), min(max(y + 3 * scale, 0), image.height - 12 * scale))
            draw.text((at[0] + 1, at[1] + 1), text, fill=SHADOW, font=font)
            draw.text(at, text, fill=COLOUR, font=font)
    return encode_png(np.asarray(image), 6)
