"""The pixel work on uploaded files, run in the sandbox's limited workers (review_portal.sandbox).

* `inspect_dicom`: the per-file check at ingest (headers and frame table; `decode=True` also test-decodes a
  compressed frame), always in a worker.
* `check_pixels`: the pixel check job's decoding of every frame (and JPEG 2000's uncompressed copy), in a worker.
* `make_thumbnail`: a series thumbnail (a background job), always in a worker.
* `render_frame`: a slice for the viewer or DICOMweb. A file that passed the pixel check (`checked`, see
  pixel_check.renders_in_process: every frame decoded in a worker, and frames small enough that windowing is
  bounded) renders in-process. Otherwise the first rendering of a (file, frame) in this process runs in a
  worker; once that succeeded, later renderings (the window dragged, the slice scrolled back to) run
  in-process, using the decoded-frame cache, at full speed. That set of frames is per process and bounded:
  forgetting one only costs a trip through a worker.

A limit that stops the work becomes `DicomRejected` with its reason ("needs more than 512 MB to decode"),
which the callers already turn into a refused file or a 400 answer.
"""
from __future__ import annotations

import dataclasses
import datetime
import threading
from collections import OrderedDict
from pathlib import Path

from review_portal import sandbox
from review_portal.imaging import inspection, pixels, rendering
from review_portal.imaging.limits import DEFAULT, ImageLimits
from review_portal.imaging.reading import DicomRejected

__all__ = ["check_pixels", "frame_pixels", "geometries", "inspect_dicom", "make_thumbnail", "measure", "render_frame", "warm_up"]

_CHECKED_MAX = 20000
_checked: OrderedDict[tuple[str, int], None] = OrderedDict()
_checked_lock = threading.Lock()


def _run(name: str, *args, **kwargs):
    try:
        return sandbox.run(f"{__name__}:{name}", *args, **kwargs)
    except sandbox.Refused as exc:
        raise DicomRejected(exc.reason) from exc


def inspect_dicom(path: Path, limits: ImageLimits = DEFAULT, *, decode: bool = True) -> inspection.InstanceInfo:
    """inspection.inspect_dicom, under the sandbox's limits (and the declared-size limits given)."""
    fields = _run("_inspect_in_child", str(path), dataclasses.asdict(limits), decode)
    if fields.get("study_date"):
        fields["study_date"] = datetime.date.fromisoformat(fields["study_date"])
    return inspection.InstanceInfo(**fields)


def make_thumbnail(path: Path, size: int = 128) -> bytes:
    """rendering.make_thumbnail, under the sandbox's limits."""
    return _run("_thumbnail_in_child", str(path), size)


def check_pixels(path: Path, start: int, stop: int, transcode_to: Path | None = None) -> int:
    """Decode frames [start, stop) of a file in a limited worker (pixel_check.py); with `transcode_to`, decode
    every frame and write the file there uncompressed instead. Returns the frames decoded."""
    return _run("_check_in_child", str(path), start, stop, str(transcode_to) if transcode_to else None)


def render_frame(path: Path, frame: int = 0, *, checked: bool = False, **options) -> bytes:
    """rendering.render_frame: in a limited worker the first time a frame of a file is shown, in-process after.

    `checked`: the file passed the pixel check (every frame decoded within the limits), so it renders in-process."""
    return _checked_first(rendering.render_frame, "_render_in_child", path, frame, checked=checked, **options)


def frame_pixels(path: Path, frame: int = 0, *, checked: bool = False) -> bytes:
    """pixels.frame_pixels (the stored values for the browser viewer), checked like render_frame."""
    return _checked_first(pixels.frame_pixels, "_pixels_in_child", path, frame, checked=checked)


def geometries(paths: list[Path]) -> list[dict | None]:
    """pixels.geometry of each file (None where the header cannot be read), in one worker call."""
    return _run("_geometries_in_child", [str(p) for p in paths])


def _checked_first(here, child: str, path: Path, frame: int, *, checked: bool = False, **options) -> bytes:
    if not isinstance(frame, int) or isinstance(frame, bool) or checked:
        return here(path, frame, **options)  # refused there, before any decoding; or the file passed the check
    key = (str(path), frame) if child == "_render_in_child" else (str(path), frame, child)
    with _checked_lock:
        checked = key in _checked
        if checked:
            _checked.move_to_end(key)
    if checked or not sandbox.enabled():
        return here(path, frame, **options)
    data = _run(child, str(path), frame, **options)
    with _checked_lock:
        _checked[key] = None
        while len(_checked) > _CHECKED_MAX:
            _checked.popitem(last=False)
    return data


def measure(path: Path, frame: int, kind: str, points) -> dict:
    """measured.measure_file (a measurement from the original pixels and geometry), under the sandbox's limits."""
    return _run("_measure_in_child", str(path), frame, kind, points)


def forget_checked() -> None:
    with _checked_lock:
        _checked.clear()


# -- run in the worker ---------------------------------------------------------------------------------

def warm_up() -> None:
    """Load the codecs before the worker's memory limit is set (SANDBOX_PRELOAD), so their code does not
    count against the budget of the first file."""
    import importlib

    for module in ("pylibjpeg", "libjpeg", "openjpeg", "rle", "imagecodecs", "PIL.Image"):
        try:
            importlib.import_module(module)
        except ImportError:
            pass


def _inspect_in_child(path: str, limits: dict, decode: bool = True) -> dict:
    fields = dataclasses.asdict(inspection.inspect_dicom(Path(path), ImageLimits(**limits), decode=decode))
    if fields.get("study_date") is not None:
        fields["study_date"] = fields["study_date"].isoformat()
    return fields


def _thumbnail_in_child(path: str, size: int) -> bytes:
    return rendering.make_thumbnail(Path(path), size)


def _measure_in_child(path: str, frame: int, kind: str, points) -> dict:
    from review_portal.imaging import measured

    return measured.measure_file(Path(path), frame, kind, points)


def _render_in_child(path: str, frame: int, **options) -> bytes:
    return rendering.render_frame(Path(path), frame, **options)


def _pixels_in_child(path: str, frame: int) -> bytes:
    return pixels.frame_pixels(Path(path), frame)


def _geometries_in_child(paths: list[str]) -> list[dict | None]:
    out: list[dict | None] = []
    for path in paths:
        try:
            out.append(pixels.geometry(Path(path)))
        except DicomRejected:
            out.append(None)
    return out


def _check_in_child(path: str, start: int, stop: int, transcode_to: str | None) -> int:
    from review_portal.imaging import pixel_check

    return pixel_check.check_frames(Path(path), start, stop, Path(transcode_to) if transcode_to else None)
