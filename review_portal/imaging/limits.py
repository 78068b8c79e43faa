"""Size budgets for what an upload declares (frames, pixels, inflated bytes, zip entries), one object per app.

The image budgets (frames, pixels and bytes per frame, inflated bytes) have defaults that are also their
ceilings: configuration may tighten them, never loosen them, so the viewer, the DICOMweb door and the letter
can rely on `DEFAULT` to clamp anything read back from the database. Zip budgets are free to configure.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["DEFAULT", "ImageLimits", "from_config", "of_session", "stored_frames"]


@dataclass(frozen=True)
class ImageLimits:
    # Frames in one file. Real multi-frame objects: cine ultrasound and XA runs a few thousand frames,
    # enhanced MR time series ~10k; every frame becomes a slice the viewer lists, so this bounds that list.
    max_frames: int = 20_000
    # Samples in one frame (rows x columns x samples per pixel). Rendering works in float64; the largest
    # real single frames (mammography) are ~20 Mpx.
    max_frame_pixels: int = 64 * 1024 * 1024
    # Bytes of one decoded frame (rows x columns x samples x bits allocated / 8).
    max_frame_bytes: int = 256 * 1024 * 1024
    # A Deflated Explicit VR Little Endian dataset once inflated (pydicom inflates it in memory to parse it).
    max_inflated_bytes: int = 512 * 1024 * 1024
    # Zip uploads: entries, bytes of one entry and of the whole archive once extracted, and compression ratios.
    zip_max_entries: int = 20_000
    zip_max_entry_bytes: int = 2 * 1024**3 - 1  # an instance's size is a 32-bit column
    zip_max_total_bytes: int = 4 * 1024**3
    zip_max_ratio: int = 200
    # Below this an entry's high ratio is harmless (a blank 512 x 512 slice deflates ~1000:1).
    zip_ratio_min_bytes: int = 1024 * 1024
    # The whole archive: many small entries, each under zip_ratio_min_bytes, must not add up to a bomb.
    zip_max_archive_ratio: int = 100
    zip_archive_ratio_min_bytes: int = 64 * 1024 * 1024

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"image limit {f.name} must be a positive integer, not {value!r}")


DEFAULT = ImageLimits()
_CEILINGS = ("max_frames", "max_frame_pixels", "max_frame_bytes", "max_inflated_bytes")

# Configuration key for each field.
CONFIG_KEYS = {f.name: f"IMAGE_{f.name.upper()}" if not f.name.startswith("zip_") else f.name.upper()
               for f in fields(ImageLimits)}


def from_config(config: Mapping[str, Any]) -> ImageLimits:
    values = {}
    for name, key in CONFIG_KEYS.items():
        if config.get(key) is None:
            continue
        value = int(config[key])
        if name in _CEILINGS:
            value = min(value, getattr(DEFAULT, name))
        values[name] = value
    return ImageLimits(**values)


_SESSION_KEY = "image_limits"


def session_info(limits: ImageLimits) -> dict:
    """What the app factory puts in the database session's info, for the services to read."""
    return {_SESSION_KEY: limits}


def of_session(db) -> ImageLimits:
    return getattr(db, "info", {}).get(_SESSION_KEY) or DEFAULT


def stored_frames(frames: Any) -> int:
    """An instance's frame count as read back from the database, clamped: verified at ingest, trusted nowhere."""
    try:
        count = int(frames or 1)
    except (TypeError, ValueError):
        return 1
    return min(max(count, 1), DEFAULT.max_frames)
