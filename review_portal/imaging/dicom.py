"""DICOM intake and preview for the second-opinion portal.

This module owns everything the portal needs to know about uploaded imaging
files, and nothing else (no Flask, no database, no storage layout):

* ``inspect_dicom`` decides whether a file is a usable DICOM image, extracts
  the identifiers and descriptive metadata the portal indexes, and otherwise
  raises ``DicomRejected`` with a reason a clinician can act on.
* ``sort_key`` orders the instances of a series the way they are stacked in
  the patient.
* ``expand_zip`` unpacks an uploaded archive without letting it write outside
  its destination or exhaust the disk (``UploadRejected`` otherwise).
* ``render_frame`` / ``make_thumbnail`` turn one frame into an 8-bit PNG or
  JPEG preview with modality rescale, windowing and colour handling.
  These previews are for orientation in the browser, not for diagnosis.

All parsing and pixel decoding is delegated to pydicom and its installed
decoding plugins (pylibjpeg, pylibjpeg-libjpeg/openjpeg/rle, Pillow).
"""

from __future__ import annotations

import datetime
import io
import math
import posixpath
import re
import stat
import threading
import struct
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import (
    apply_color_lut,
    apply_modality_lut,
    apply_voi,
    apply_voi_lut,
    get_decoder,
    pixel_array,
)
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MediaStorageDirectoryStorage,
)

from review_portal.imaging import decoders

__all__ = [
    "CT_PRESETS",
    "DicomRejected",
    "dicom_json",
    "header_elements",
    "InstanceInfo",
    "UploadRejected",
    "expand_zip",
    "inspect_dicom",
    "make_thumbnail",
    "render_frame",
    "sort_key",
]

CT_PRESETS: dict[str, tuple[float, float]] = {
    "soft_tissue": (40.0, 400.0),
    "lung": (-600.0, 1500.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
    "liver": (60.0, 160.0),
    "mediastinum": (50.0, 350.0),
}

# Elements larger than this are left on disk while parsing, so inspecting a
# multi-gigabyte study never pulls its pixel data into memory.
_DEFER_SIZE = 256 * 1024

# Rows and Columns are 16-bit, so a hostile header can ask for a 4-gigapixel
# frame; rendering works in float64, so cap samples per frame well below what
# would exhaust a web worker (largest real single frames, e.g. mammography,
# are ~20 Mpx).
_MAX_FRAME_SAMPLES = 64 * 1024 * 1024

# When pydicom's file-based frame reader fails we retry on a fully parsed
# dataset (it tolerates mislabelled VRs and deflated files); that loads the
# whole file, which we only allow for files of reasonable size.
_MAX_FULL_READ_BYTES = 512 * 1024 * 1024

# The Rust-based decoders (pylibjpeg-rle, ...) surface corrupt input as a pyo3
# PanicException, which derives from BaseException and would sail past
# "except Exception"; decoding therefore catches everything except these.
_NEVER_SWALLOW = (KeyboardInterrupt, SystemExit, GeneratorExit)

_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # Pixel, Float, Double Float
_UNDEFINED_LENGTH = 0xFFFFFFFF
_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_REQUIRED_UIDS = (
    ("SOPInstanceUID", "SOP Instance UID"),
    ("SeriesInstanceUID", "Series Instance UID"),
    ("StudyInstanceUID", "Study Instance UID"),
)
# Colour spaces the decoders hand back as RGB (pydicom converts YBR_FULL and
# YBR_FULL_422; the JPEG 2000 codec undoes YBR_ICT/YBR_RCT itself).
_COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT")


class DicomRejected(Exception):
    """A single file cannot be accepted or shown; ``reason`` is for a clinician."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class UploadRejected(Exception):
    """A whole uploaded archive is refused; ``reason`` is for a clinician."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class InstanceInfo:
    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    modality: str
    study_date: datetime.date | None
    study_description: str
    series_description: str
    series_number: int | None
    instance_number: int | None
    slice_position: float | None
    number_of_frames: int
    rows: int
    columns: int
    photometric_interpretation: str
    window_center: float | None
    window_width: float | None
    transfer_syntax_uid: str
    sop_class_uid: str = ""


# --------------------------------------------------------------------------
# Reading and validation
# --------------------------------------------------------------------------


@contextmanager
def _damaged_file_guard() -> Iterator[None]:
    # pydicom converts element values lazily, so a corrupt element (unknown
    # VR, garbage number) only raises when first touched, from anywhere.
    # Callers are promised DicomRejected, never a stray parser exception.
    try:
        yield
    except DicomRejected:
        raise
    except Exception as exc:
        raise DicomRejected("the file is damaged and could not be read as DICOM") from exc


@dataclass
class _Loaded:
    """Header-level facts shared by inspection and rendering."""

    path: Path
    ds: Dataset
    transfer_syntax: UID
    has_file_meta_syntax: bool
    frames: int
    views: dict[int, Dataset] = field(default_factory=dict)


def _as_int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number) or number != int(number):
        return None
    return int(number)


def _as_float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _first(value: Any) -> Any:
    # Multi-valued elements (e.g. several window presets) come back as a
    # MultiValue; the portal only ever uses the first entry.
    if isinstance(value, (list, tuple, MultiValue)):
        return value[0] if len(value) else None
    return value


def _text(ds: Dataset, keyword: str) -> str:
    try:
        value = ds.get(keyword, "")
    except Exception:
        return ""
    if value is None:
        return ""
    return str(value).strip().strip("\x00")


def _parse_date(value: Any) -> datetime.date | None:
    if isinstance(value, datetime.date):
        return value
    text = str(value or "").strip()
    if not text:
        return None
    # Old ACR-NEMA style dates use dots (YYYY.MM.DD) and still turn up.
    text = text.replace(".", "")
    try:
        return datetime.datetime.strptime(text[:8], "%Y%m%d").date()
    except ValueError:
        return None


def _frame_count(ds: Dataset) -> int:
    count = _as_int(ds.get("NumberOfFrames"))
    return count if count and count > 0 else 1


def _expected_native_bytes(ds: Dataset, frames: int) -> int:
    # Same arithmetic as pydicom.pixels.utils.get_expected_length, but with
    # our own tolerant frame count so a malformed NumberOfFrames cannot raise.
    samples = int(ds.Rows) * int(ds.Columns) * int(ds.SamplesPerPixel) * frames
    bits = int(ds.BitsAllocated)
    if bits == 1:
        length = samples // 8 + (samples % 8 > 0)
    else:
        length = samples * (bits // 8)
    if ds.get("PhotometricInterpretation") == "YBR_FULL_422":
        length = length // 3 * 2
    return length


def _read_dataset(path: Path) -> Dataset:
    try:
        return dcmread(path, defer_size=_DEFER_SIZE)
    except InvalidDicomError:
        pass  # no DICM preamble: maybe a bare dataset, tried below
    except OSError as exc:
        raise DicomRejected("the file could not be read from storage") from exc
    except Exception as exc:
        raise DicomRejected("the file is damaged and could not be read as DICOM") from exc

    # Files written without the 128-byte preamble (old equipment, some PACS
    # exports) are still legitimate, but force=True will happily "parse" any
    # bytes, so only accept the result if it carries DICOM identifiers.
    try:
        ds = dcmread(path, force=True, defer_size=_DEFER_SIZE)
        looks_dicom = any(
            _text(ds, kw) for kw in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
        )
    except Exception as exc:
        raise DicomRejected("not a DICOM file") from exc
    if not looks_dicom:
        raise DicomRejected("not a DICOM file")
    return ds


def _transfer_syntax(ds: Dataset) -> tuple[UID, bool]:
    meta = getattr(ds, "file_meta", None)
    declared = meta.get("TransferSyntaxUID") if meta is not None else None
    if declared:
        return UID(str(declared)), True
    # No file meta: pydicom guessed the encoding while reading, so name the
    # matching uncompressed syntax for the decoders.
    implicit, little = getattr(ds, "original_encoding", (None, None))
    if little is False:
        return ExplicitVRBigEndian, False
    if implicit is False:
        return ExplicitVRLittleEndian, False
    return ImplicitVRLittleEndian, False


def _check_not_truncated(ds: Dataset, file_size: int) -> None:
    # pydicom reads short values at EOF without complaint and only warns, so
    # compare every top-level element's declared extent with the file size.
    for tag in list(ds.keys()):
        elem = ds.get_item(tag, keep_deferred=True)
        if not isinstance(elem, RawDataElement) or elem.length == _UNDEFINED_LENGTH:
            continue
        if elem.value_tell is not None and elem.value_tell + elem.length > file_size:
            raise DicomRejected("the file is truncated (incomplete upload or copy)")


def _load(path: Path) -> _Loaded:
    path = Path(path)
    try:
        st = path.stat()
    except OSError as exc:
        raise DicomRejected("the file could not be found") from exc
    if not stat.S_ISREG(st.st_mode):
        raise DicomRejected("not a regular file")
    if st.st_size == 0:
        raise DicomRejected("the file is empty")

    ds = _read_dataset(path)
    ts, has_meta_syntax = _transfer_syntax(ds)
    if not ts.is_transfer_syntax:
        # Don't echo the value: in damaged headers it is binary garbage.
        raise DicomRejected("the file header names an unknown encoding (transfer syntax)")

    # In deflated files element offsets refer to the inflated stream, so they
    # cannot be compared with the size on disk.
    if not ts.is_deflated:
        _check_not_truncated(ds, st.st_size)

    meta = getattr(ds, "file_meta", None)
    if (meta is not None and meta.get("MediaStorageSOPClassUID") == MediaStorageDirectoryStorage) or (
        "DirectoryRecordSequence" in ds
    ):
        raise DicomRejected("no image data (this is a DICOMDIR index file, not an image)")

    for keyword, label in _REQUIRED_UIDS:
        value = _text(ds, keyword)
        if not value:
            raise DicomRejected(f"missing {label}")
        # UIDs become URL segments and file names elsewhere in the portal, so
        # anything outside the DICOM UID alphabet (PS3.5 9.1: digits and
        # dots, at most 64 characters) is refused rather than escaped later.
        if len(value) > 64 or not _UID_RE.match(value):
            raise DicomRejected(f"malformed {label}")

    if not any(tag in ds for tag in _PIXEL_TAGS):
        if "Rows" in ds and "Columns" in ds:
            raise DicomRejected("no image data (the image header is present, so the file may be truncated)")
        kind = ""
        sop_class = _text(ds, "SOPClassUID")
        if sop_class:
            name = UID(sop_class).name
            if name and name != sop_class:
                kind = f" (object type: {name})"
        raise DicomRejected(f"no image data{kind}")

    for keyword, label in (
        ("Rows", "Rows"),
        ("Columns", "Columns"),
        ("BitsAllocated", "Bits Allocated"),
        ("SamplesPerPixel", "Samples per Pixel"),
        ("PhotometricInterpretation", "Photometric Interpretation"),
    ):
        if ds.get(keyword) in (None, ""):
            raise DicomRejected(f"image header incomplete: missing {label}")
    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
        samples, bits = int(ds.SamplesPerPixel), int(ds.BitsAllocated)
    except (TypeError, ValueError) as exc:
        raise DicomRejected("image header incomplete: invalid image dimensions") from exc
    if rows <= 0 or columns <= 0 or samples not in (1, 3) or bits not in (1, 8, 16, 32, 64):
        raise DicomRejected("image header incomplete: invalid image dimensions")
    if rows * columns * samples > _MAX_FRAME_SAMPLES:
        raise DicomRejected(f"the image is too large to display ({columns} x {rows})")

    frames = _frame_count(ds)

    if ts.is_encapsulated:
        try:
            decoder = get_decoder(ts)
        except NotImplementedError as exc:
            raise DicomRejected(f"unsupported image compression ({ts.name})") from exc
        if not decoder.is_available:
            raise DicomRejected(f"no decoder installed for this image compression ({ts.name})")
    else:
        pixel_tag = next(tag for tag in _PIXEL_TAGS if tag in ds)
        elem = ds.get_item(pixel_tag, keep_deferred=True)
        if isinstance(elem, RawDataElement):
            actual = elem.length if elem.value is None else len(elem.value)
        else:
            actual = len(elem.value or b"")
        # Undefined length is not allowed for native pixel data and is what a
        # compressed stream mislabelled as uncompressed looks like.
        if actual == _UNDEFINED_LENGTH or actual < _expected_native_bytes(ds, frames):
            raise DicomRejected("pixel data size does not match the header")

    return _Loaded(path=path, ds=ds, transfer_syntax=ts, has_file_meta_syntax=has_meta_syntax, frames=frames)


def _read_native_frame(loaded: _Loaded, index: int) -> np.ndarray | None:
    """Read one uncompressed little-endian greyscale frame straight from its file offset.

    The common case for scrolling (plain CT/MR slices): pydicom's reader would parse the
    header a second time, which costs more than the read itself. Anything unusual
    (big endian, colour, 1-bit, float pixels, odd bit depths) returns None and goes
    through pydicom. Stored bits above BitsStored are cleared or sign-extended exactly as
    pydicom does.
    """
    ds = loaded.ds
    if loaded.transfer_syntax not in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
        return None
    if 0x7FE00010 not in ds:
        return None
    elem = ds.get_item(0x7FE00010, keep_deferred=True)
    if not isinstance(elem, RawDataElement) or (elem.value is None and elem.value_tell is None):
        return None
    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
        allocated, stored = int(ds.BitsAllocated), int(ds.get("BitsStored", ds.BitsAllocated))
        signed = int(ds.get("PixelRepresentation", 0)) == 1
        samples = int(ds.SamplesPerPixel)
    except (TypeError, ValueError):
        return None
    if samples != 1 or allocated not in (8, 16) or not 1 <= stored <= allocated:
        return None
    dtype = np.dtype(f"<{'i' if signed else 'u'}{allocated // 8}")
    count = rows * columns
    start = index * count * dtype.itemsize
    if elem.value is not None:  # small files: already read with the header
        if len(elem.value) < start + count * dtype.itemsize:
            return None
        frame = np.frombuffer(elem.value, dtype=dtype, count=count, offset=start).copy()
    else:
        with open(loaded.path, "rb") as fh:
            fh.seek(elem.value_tell + start)
            frame = np.fromfile(fh, dtype=dtype, count=count)
    if frame.size != count:
        return None
    frame = frame.reshape(rows, columns)
    if stored < allocated:
        unused = allocated - stored
        if signed:
            frame = (frame << unused) >> unused
        else:
            frame &= (1 << stored) - 1
    return frame


# Parsed headers of recently rendered files. Scrolling renders every slice of a series
# again at each window change, and re-parsing the header costs more than reading the
# pixels. Safe because blobs are content-addressed and never rewritten; the key still
# includes size and mtime so a replaced file is never served from a stale header.
_LOADED_CACHE: OrderedDict[tuple, _Loaded] = OrderedDict()
_LOADED_CACHE_SIZE = 512
_LOADED_CACHE_LOCK = threading.Lock()


def _load_cached(path: Path) -> _Loaded:
    try:
        st = path.stat()
    except OSError as exc:
        raise DicomRejected("the file could not be found") from exc
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _LOADED_CACHE_LOCK:
        hit = _LOADED_CACHE.get(key)
        if hit is not None:
            _LOADED_CACHE.move_to_end(key)
            return hit
    loaded = _load(path)
    elem = loaded.ds.get_item(0x7FE00010, keep_deferred=True) if 0x7FE00010 in loaded.ds else None
    if isinstance(elem, RawDataElement) and elem.value is not None and len(elem.value) > 64 * 1024:
        return loaded  # pixel data held in memory: not worth keeping
    with _LOADED_CACHE_LOCK:
        _LOADED_CACHE[key] = loaded
        while len(_LOADED_CACHE) > _LOADED_CACHE_SIZE:
            _LOADED_CACHE.popitem(last=False)
    return loaded


# Decoded frames of compressed images, for re-rendering the slice on screen at another window
# (dragging the window re-renders one slice many times, and decoding dominates). Bounded by
# bytes, not entries: a handful of CT slices, or one large frame. Arrays are read-only, so
# nothing downstream can alter a cached frame in place.
_FRAME_CACHE: OrderedDict[tuple, np.ndarray] = OrderedDict()
_FRAME_CACHE_BYTES = 24 * 1024 * 1024
_frame_cache_used = 0
_FRAME_CACHE_LOCK = threading.Lock()


def _frame_cache_key(loaded: _Loaded, index: int) -> tuple | None:
    try:
        st = loaded.path.stat()
    except OSError:
        return None
    return (str(loaded.path), st.st_size, st.st_mtime_ns, index)


def _frame_cache_get(key: tuple) -> np.ndarray | None:
    with _FRAME_CACHE_LOCK:
        hit = _FRAME_CACHE.get(key)
        if hit is not None:
            _FRAME_CACHE.move_to_end(key)
        return hit


def _frame_cache_put(key: tuple, frame: np.ndarray) -> None:
    global _frame_cache_used
    if frame.nbytes > _FRAME_CACHE_BYTES // 4:
        return
    frame.flags.writeable = False
    with _FRAME_CACHE_LOCK:
        if key in _FRAME_CACHE:
            return
        _FRAME_CACHE[key] = frame
        _frame_cache_used += frame.nbytes
        while _frame_cache_used > _FRAME_CACHE_BYTES:
            _, old = _FRAME_CACHE.popitem(last=False)
            _frame_cache_used -= old.nbytes


def _pixels_in_memory(ds: Dataset) -> bool:
    if 0x7FE00010 not in ds:
        return False
    elem = ds.get_item(0x7FE00010, keep_deferred=True)
    return not isinstance(elem, RawDataElement) or elem.value is not None


def _decode_frame(loaded: _Loaded, index: int, *, cache: bool = False) -> np.ndarray:
    """Decode one frame (RGB for colour), reading as little of the file as pydicom allows.

    ``cache`` keeps decoded compressed frames in a small LRU for the viewer; ingest leaves it
    off so an upload of many files never fills it with frames nobody is looking at.
    """
    if not 0 <= index < loaded.frames:
        plural = "s" if loaded.frames != 1 else ""
        raise DicomRejected(f"frame {index} does not exist (the image has {loaded.frames} frame{plural})")
    ts = loaded.transfer_syntax
    fast = _read_native_frame(loaded, index)
    if fast is not None:
        return fast
    key = _frame_cache_key(loaded, index) if cache else None
    if key is not None:
        hit = _frame_cache_get(key)
        if hit is not None:
            return hit
    frame = _decode_with_pydicom(loaded, index)
    if key is not None:
        _frame_cache_put(key, frame)
    return frame


def _decode_with_pydicom(loaded: _Loaded, index: int) -> np.ndarray:
    ts = loaded.transfer_syntax
    kwargs: dict[str, Any] = {}
    if not loaded.has_file_meta_syntax:
        kwargs["transfer_syntax_uid"] = ts

    # A small file's pixel data was read along with its header: decode from the parsed dataset
    # instead of letting pydicom parse the file a second time (about a millisecond per slice).
    source: Any = loaded.path
    if loaded.has_file_meta_syntax and not ts.is_deflated and _pixels_in_memory(loaded.ds):
        source = loaded.ds

    plugin = decoders.preferred_plugin(ts) if ts.is_encapsulated else None
    if plugin is not None and not ts.is_deflated:
        try:
            return pixel_array(source, index=index, decoding_plugin=plugin, **kwargs)
        except _NEVER_SWALLOW:
            raise
        except BaseException:  # see _NEVER_SWALLOW; pydicom's own plugins have the last word
            pass

    first_error: BaseException | None = None
    if not ts.is_deflated:  # the file-based reader cannot inflate
        try:
            return pixel_array(source, index=index, **kwargs)
        except _NEVER_SWALLOW:
            raise
        except BaseException as exc:  # see _NEVER_SWALLOW
            first_error = exc

    # The file-based reader trusts the declared encoding literally; the full
    # parser copes with e.g. implicit-VR data labelled explicit. Costs memory.
    reason = f"the image data could not be decoded ({ts.name})"
    if loaded.path.stat().st_size > _MAX_FULL_READ_BYTES:
        raise DicomRejected(reason) from first_error
    try:
        full = dcmread(loaded.path, force=True)
        if not loaded.has_file_meta_syntax:
            full.file_meta.TransferSyntaxUID = ts
        return pixel_array(full, index=index)
    except _NEVER_SWALLOW:
        raise
    except BaseException as exc:
        raise DicomRejected(reason) from (first_error or exc)


# --------------------------------------------------------------------------
# Per-frame attributes
# --------------------------------------------------------------------------

_VIEW_KEYWORDS = (
    "PhotometricInterpretation",
    "SamplesPerPixel",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "RescaleSlope",
    "RescaleIntercept",
    "RescaleType",
    "ModalityLUTSequence",
    "WindowCenter",
    "WindowWidth",
    "VOILUTFunction",
    "VOILUTSequence",
    "ImagePositionPatient",
    "ImageOrientationPatient",
)


def _frame_view(ds: Dataset, index: int) -> Dataset:
    """Image attributes that apply to one frame, including enhanced multi-frame macros.

    Enhanced CT/MR/PET keep rescale, window and geometry inside functional
    group sequences instead of at top level; without them presets would be
    applied to raw stored values instead of Hounsfield units.
    """
    view = Dataset()
    for keyword in _VIEW_KEYWORDS:
        if keyword in ds:
            view[keyword] = ds[keyword]
    groups: list[Dataset] = []
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        groups.append(shared[0])
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame and index < len(per_frame):
        groups.append(per_frame[index])  # per-frame values override shared ones
    for group in groups:
        for macro in (
            "PixelValueTransformationSequence",
            "FrameVOILUTSequence",
            "PlanePositionSequence",
            "PlaneOrientationSequence",
        ):
            items = group.get(macro)
            if items:
                for elem in items[0]:
                    view[elem.tag] = elem
    meta = getattr(ds, "file_meta", None)
    if meta is not None and meta.get("TransferSyntaxUID"):
        view.file_meta = meta  # LUTs stored as OW need the byte order
    else:
        implicit, little = getattr(ds, "original_encoding", (None, None))
        view.set_original_encoding(implicit, little)
    return view


def _slice_position(view: Dataset) -> float | None:
    position = view.get("ImagePositionPatient")
    orientation = view.get("ImageOrientationPatient")
    if not position or not orientation:
        return None
    try:
        pos = [float(v) for v in position]
        ori = [float(v) for v in orientation]
    except (TypeError, ValueError):
        return None
    if len(pos) != 3 or len(ori) != 6:
        return None
    # np.cross spelled out (same float operations, same result): numpy's per-call overhead on
    # three-element vectors was a tenth of inspecting a file.
    (rx, ry, rz), (cx, cy, cz) = ori[:3], ori[3:]
    normal = np.array([ry * cz - rz * cy, rz * cx - rx * cz, rx * cy - ry * cx], dtype=float)
    value = float(np.dot(np.array(pos, dtype=float), normal))
    return value if math.isfinite(value) else None


# --------------------------------------------------------------------------
# Public: inspection and ordering
# --------------------------------------------------------------------------


def inspect_dicom(path: Path) -> InstanceInfo:
    """Validate an uploaded file as a displayable DICOM image and describe it.

    Raises DicomRejected (with ``.reason``) for anything the portal could not
    store and show later. Compressed images get one frame test-decoded so a
    corrupt or unsupported stream is refused at upload, not at review time.
    """
    with _damaged_file_guard():
        return _inspect(Path(path))


def _inspect(path: Path) -> InstanceInfo:
    loaded = _load(path)
    ds = loaded.ds
    if loaded.transfer_syntax.is_encapsulated or loaded.transfer_syntax.is_deflated:
        _decode_frame(loaded, 0)

    # Without functional groups a frame's attributes are the top-level ones: read them from
    # the dataset itself rather than copying them into a view (a third of inspection time).
    if "SharedFunctionalGroupsSequence" in ds or "PerFrameFunctionalGroupsSequence" in ds:
        view = _frame_view(ds, 0)
    else:
        view = ds
    return InstanceInfo(
        sop_instance_uid=_text(ds, "SOPInstanceUID"),
        series_instance_uid=_text(ds, "SeriesInstanceUID"),
        study_instance_uid=_text(ds, "StudyInstanceUID"),
        modality=_text(ds, "Modality"),
        study_date=_parse_date(ds.get("StudyDate")),
        study_description=_text(ds, "StudyDescription"),
        series_description=_text(ds, "SeriesDescription"),
        series_number=_as_int(ds.get("SeriesNumber")),
        instance_number=_as_int(ds.get("InstanceNumber")),
        slice_position=_slice_position(view),
        number_of_frames=loaded.frames,
        rows=int(ds.Rows),
        columns=int(ds.Columns),
        photometric_interpretation=_text(ds, "PhotometricInterpretation"),
        window_center=_as_float(_first(view.get("WindowCenter"))),
        window_width=_as_float(_first(view.get("WindowWidth"))),
        transfer_syntax_uid=str(loaded.transfer_syntax),
        sop_class_uid=_text(ds, "SOPClassUID")[:64],
    )


def sort_key(info: InstanceInfo) -> tuple:
    """Stacking order within a series.

    Instances with a spatial position sort by it (ascending along the slice
    normal) and come before those without; Instance Number breaks ties (e.g.
    several phases at one position) and is the order when position is absent,
    because scanners renumber instances in reconstruction order, not anatomy.
    """
    has_position = info.slice_position is not None
    has_number = info.instance_number is not None
    return (
        0 if has_position else 1,
        info.slice_position if has_position else 0.0,
        0 if has_number else 1,
        info.instance_number if has_number else 0,
        info.sop_instance_uid,
    )


# --------------------------------------------------------------------------
# Public: archive extraction
# --------------------------------------------------------------------------

_CHUNK = 1024 * 1024

# Below this size a high compression ratio is harmless (think of a blank 512 x
# 512 slice, which deflates ~1000:1); the ratio test exists to catch bombs,
# and any bomb's output is far larger than this.
_RATIO_MIN_BYTES = 1024 * 1024


def _safe_member_name(name: str) -> str | None:
    """Normalised relative path for an entry, or None when it is to be skipped."""
    if "\x00" in name:
        raise UploadRejected("the archive contains an invalid file name")
    # Windows tools sometimes write backslashes; treat them as separators so
    # "..\\evil" is recognised as traversal on every platform.
    cleaned = name.replace("\\", "/")
    if cleaned.startswith("/") or re.match(r"^[A-Za-z]:", cleaned):
        raise UploadRejected(f"the archive contains an absolute path ({name!r})")
    normalised = posixpath.normpath(cleaned)
    if normalised == ".." or normalised.startswith("../"):
        raise UploadRejected(f"the archive contains a path that escapes its folder ({name!r})")
    if normalised in ("", "."):
        return None
    parts = normalised.split("/")
    if parts[0] == "__MACOSX" or any(part.startswith(".") for part in parts):
        return None
    return normalised


def expand_zip(
    zip_path: Path,
    dest_dir: Path,
    *,
    max_entries: int = 20000,
    max_total_bytes: int = 4 * 1024**3,
    max_ratio: int = 200,
) -> list[tuple[str, Path]]:
    """Extract a user-supplied zip into ``dest_dir`` safely.

    The whole archive is vetted before anything is written, so a refused
    upload leaves nothing behind; if extraction still fails midway (lying
    headers, corrupt data) the files written so far are removed.
    Returns (name inside archive, extracted path) for each regular file kept.
    """
    dest_dir = Path(dest_dir)
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise UploadRejected("not a valid .zip archive") from exc

    with archive:
        infos = archive.infolist()
        if len(infos) > max_entries:
            raise UploadRejected(f"the archive has too many entries ({len(infos)}; limit {max_entries})")

        root = dest_dir.resolve()
        plan: list[tuple[zipfile.ZipInfo, Path]] = []
        seen: set[str] = set()
        declared_total = 0
        for info in infos:
            # Vet every name first, even ones we skip, so a hostile entry
            # can't hide behind a directory flag or a __MACOSX prefix.
            relative = _safe_member_name(info.filename)
            target = (root / relative).resolve() if relative else None
            if target is not None and target != root and root not in target.parents:
                raise UploadRejected(
                    f"the archive contains a path that escapes its folder ({info.filename!r})"
                )

            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise UploadRejected(f"the archive contains a symbolic link ({info.filename!r})")
            if info.is_dir() or relative is None or target is None:
                continue
            if info.flag_bits & 0x1:
                raise UploadRejected("password-protected archives are not supported")
            if relative in seen:
                # Duplicate names are a known trick for smuggling content
                # past whoever looked at the first copy.
                raise UploadRejected(f"the archive contains the same file twice ({info.filename!r})")
            seen.add(relative)

            declared_total += info.file_size
            if declared_total > max_total_bytes:
                raise UploadRejected("the archive expands to more data than the upload limit allows")
            ratio_exceeded = info.file_size > max_ratio * max(info.compress_size, 1)
            if info.file_size >= _RATIO_MIN_BYTES and ratio_exceeded:
                raise UploadRejected(
                    f"the archive looks like a zip bomb ({info.filename!r} compresses suspiciously well)"
                )
            plan.append((info, target))

        # Only now, with the whole archive vetted, does anything touch disk.
        dest_dir.mkdir(parents=True, exist_ok=True)

        written_paths: list[Path] = []
        extracted: list[tuple[str, Path]] = []
        total_written = 0
        try:
            for info, target in plan:
                target.parent.mkdir(parents=True, exist_ok=True)
                entry_written = 0
                # "xb": never overwrite or follow something already at target.
                with archive.open(info) as source, open(target, "xb") as sink:
                    written_paths.append(target)
                    while True:
                        chunk = source.read(_CHUNK)
                        if not chunk:
                            break
                        entry_written += len(chunk)
                        total_written += len(chunk)
                        # Headers are attacker-controlled; count real bytes.
                        if entry_written > info.file_size:
                            raise UploadRejected(
                                f"the archive is corrupt ({info.filename!r} is larger than its header says)"
                            )
                        if total_written > max_total_bytes:
                            raise UploadRejected(
                                "the archive expands to more data than the upload limit allows"
                            )
                        sink.write(chunk)
                extracted.append((info.filename, target))
        except UploadRejected:
            _remove_all(written_paths)
            raise
        except (
            zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError, ValueError
        ) as exc:
            # BadZipFile covers CRC mismatches, i.e. content that differs from
            # what the headers promised; RuntimeError/NotImplementedError are
            # encryption or compression methods zipfile can't read (deflate64).
            _remove_all(written_paths)
            raise UploadRejected("the archive is corrupt or uses an unsupported format") from exc
        except OSError as exc:
            _remove_all(written_paths)
            raise UploadRejected(
                "the archive could not be extracted (conflicting or invalid file names)"
            ) from exc
        except BaseException:
            _remove_all(written_paths)
            raise
    return extracted


def _remove_all(paths: list[Path]) -> None:
    for path in paths:
        try:
            path.unlink()
        except OSError:
            pass


# --------------------------------------------------------------------------
# Public: rendering
# --------------------------------------------------------------------------


def _scale_to_uint8(values: np.ndarray, low: float, high: float) -> np.ndarray:
    if not high > low:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (values.astype(np.float64) - low) * (255.0 / (high - low))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _file_voi(values: np.ndarray, view: Dataset) -> np.ndarray | None:
    """Apply the file's own VOI LUT or window; None if it has none usable."""
    lut_items = view.get("VOILUTSequence")
    has_lut = bool(
        lut_items and lut_items[0].get("LUTDescriptor") and lut_items[0].get("LUTData") is not None
    )
    has_window = view.get("WindowCenter") not in (None, "") and view.get("WindowWidth") not in (None, "")
    try:
        if has_lut:
            # LUTs index integer values; the output range is whatever the LUT
            # itself spans (often 12 bits inside a 16-bit descriptor).
            descriptor = lut_items[0].LUTDescriptor
            entries = int(descriptor[0]) or 65536
            first_mapped = int(descriptor[1])
            table = apply_voi(np.arange(first_mapped, first_mapped + entries, dtype=np.int64), view)
            out = apply_voi(np.rint(values).astype(np.int64), view)
            return _scale_to_uint8(out, float(table.min()), float(table.max()))
        if has_window:
            # pydicom maps the window onto the stored-value range, which
            # depends on bit depth and rescale; probing with +-inf yields
            # exactly that range for LINEAR, LINEAR_EXACT and SIGMOID.
            with np.errstate(over="ignore", invalid="ignore"):
                low, high = apply_voi_lut(np.array([-np.inf, np.inf]), view, prefer_lut=False)
            out = apply_voi_lut(values.astype(np.float64), view, prefer_lut=False)
            if not (math.isfinite(low) and math.isfinite(high)):
                return None
            return _scale_to_uint8(out, float(low), float(high))
    except Exception:
        # Nonsense windows (width 0, unknown function) shouldn't block the
        # preview: fall back to the frame's own range.
        return None
    return None


def _monochrome_to_uint8(
    frame: np.ndarray, view: Dataset, center: float | None, width: float | None
) -> np.ndarray:
    values = np.asarray(apply_modality_lut(frame, view))
    if center is not None and width is not None:
        low = center - width / 2.0
        out = _scale_to_uint8(values, low, low + width)
    else:
        out = _file_voi(values, view)
        if out is None:
            finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
            if finite.size:
                out = _scale_to_uint8(values, float(finite.min()), float(finite.max()))
            else:
                out = np.zeros(values.shape, dtype=np.uint8)
    if view.get("PhotometricInterpretation") == "MONOCHROME1":
        out = 255 - out  # MONOCHROME1 means low values are displayed white
    return out


# A lookup table is only worth building when it has fewer entries than the frame has pixels
# (a CT slice spans a few thousand stored values, a 512 x 512 frame has 262144 pixels).
def _monochrome_via_lut(
    frame: np.ndarray, view: Dataset, center: float | None, width: float | None
) -> np.ndarray | None:
    """The same result as _monochrome_to_uint8, computed once per stored value instead of per pixel.

    Every step of the grey-scale pipeline (modality rescale or LUT, window or VOI LUT, the
    min/max fallback, MONOCHROME1 inversion) maps each stored value independently, and the
    table's domain [min, max] has the same extremes as the frame, so indexing a uint8 table
    by the stored values gives byte-identical output about ten times faster than the
    float64 path over every pixel.
    """
    if frame.dtype.kind not in "iu" or frame.dtype.itemsize > 2 or frame.size < 4096:
        return None
    low, high = int(frame.min()), int(frame.max())
    entries = high - low + 1
    if entries * 4 > frame.size:
        return None
    domain = np.arange(low, high + 1, dtype=np.int64).astype(frame.dtype).reshape(1, entries)
    table = _monochrome_to_uint8(domain, view, center, width).reshape(entries)
    index = frame.astype(np.intp)
    if low:
        index -= low
    return np.take(table, index)


def _colour_to_uint8(frame: np.ndarray, ds: Dataset) -> np.ndarray:
    if frame.dtype == np.uint8:
        return frame
    bits = _as_int(ds.get("BitsStored")) or frame.dtype.itemsize * 8
    return _scale_to_uint8(frame, 0.0, float(2**bits - 1))


def _palette_to_uint8(frame: np.ndarray, ds: Dataset) -> np.ndarray:
    rgb = apply_color_lut(frame, ds)
    descriptor = ds.get("RedPaletteColorLookupTableDescriptor")
    bits = int(descriptor[2]) if descriptor else rgb.dtype.itemsize * 8
    if rgb.ndim == 3 and rgb.shape[-1] == 4:
        rgb = rgb[..., :3]  # alpha palette: not meaningful in a preview
    return rgb if bits == 8 and rgb.dtype == np.uint8 else _scale_to_uint8(rgb, 0.0, float(2**bits - 1))


def render_frame(
    path: Path,
    frame: int = 0,
    *,
    center: float | None = None,
    width: float | None = None,
    fmt: str = "png",
    max_size: int | None = None,
    png_compression: int = 1,
) -> bytes:
    """Render one frame as PNG/JPEG bytes for the browser viewer.

    Monochrome: modality rescale, then the requested window (both ``center``
    and ``width`` given), else the file's VOI LUT/window, else the frame's
    min/max; MONOCHROME1 is inverted last. Colour images are shown as decoded
    (YBR converted to RGB) and ignore windowing.

    ``png_compression`` is zlib's level: 1 (the default) is what scrolling needs, since
    entropy coding dominates render time; stored key images can afford 6.
    """
    fmt_key = fmt.lower()
    if fmt_key not in ("png", "jpeg", "jpg"):
        raise ValueError(f"unsupported output format {fmt!r}")
    if (center is None) != (width is None):
        raise ValueError("center and width must be given together")
    if center is not None and not (math.isfinite(center) and math.isfinite(width)):
        raise ValueError("window center and width must be finite numbers")
    if width is not None and not width > 0:
        raise ValueError("window width must be positive")
    if not 0 <= png_compression <= 9:
        raise ValueError("png_compression must be between 0 and 9")
    if max_size is not None and max_size < 1:
        raise ValueError("max_size must be positive")
    if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)):
        raise DicomRejected(f"invalid frame number {frame!r}")
    with _damaged_file_guard():
        return _render(_load_cached(Path(path)), int(frame), center, width, fmt_key, max_size, png_compression)


def make_thumbnail(path: Path, size: int = 128) -> bytes:
    """PNG of the middle frame (file's own window), fitted inside size x size."""
    if size < 1:
        raise ValueError("size must be positive")
    with _damaged_file_guard():
        loaded = _load(Path(path))
        return _render(loaded, loaded.frames // 2, None, None, "png", size, 6)


def _png_chunk(tag: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))


def encode_png(array: np.ndarray, level: int = 1) -> bytes:
    """8-bit greyscale or RGB PNG with the "Up" filter on every row.

    Pillow's encoder tries adaptive filters per row, which costs more than the deflate
    itself at level 1; neighbouring rows of a medical image are so alike that "Up" alone
    compresses as well, at about half the time.
    """
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise ValueError("encode_png takes a uint8 greyscale or RGB array")
    height, width = array.shape[:2]
    row_bytes = array.reshape(height, -1)
    filtered = np.empty((height, row_bytes.shape[1] + 1), dtype=np.uint8)
    filtered[:, 0] = 2  # filter type Up
    filtered[0, 1:] = row_bytes[0]
    np.subtract(row_bytes[1:], row_bytes[:-1], out=filtered[1:, 1:])
    colour_type = 0 if array.ndim == 2 else 2
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(filtered.tobytes(), level))
        + _png_chunk(b"IEND", b"")
    )


def _render(
    loaded: _Loaded,
    frame: int,
    center: float | None,
    width: float | None,
    fmt_key: str,
    max_size: int | None,
    png_compression: int = 1,
) -> bytes:
    ds = loaded.ds
    pixels = _decode_frame(loaded, frame, cache=True)
    photometric = _text(ds, "PhotometricInterpretation")

    try:
        if photometric == "PALETTE COLOR":
            array = _palette_to_uint8(pixels, ds)
        elif pixels.ndim == 2:
            # Unknown single-sample interpretations are shown as greyscale.
            view = loaded.views.get(frame)
            if view is None:
                view = loaded.views[frame] = _frame_view(ds, frame)
            array = _monochrome_via_lut(pixels, view, center, width)
            if array is None:
                array = _monochrome_to_uint8(pixels, view, center, width)
        elif photometric in _COLOUR and pixels.ndim == 3 and pixels.shape[-1] == 3:
            array = _colour_to_uint8(pixels, ds)
        else:
            raise DicomRejected(f"unsupported colour format {photometric!r}")
        image = Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8))
    except DicomRejected:
        raise
    except Exception as exc:
        raise DicomRejected("the image could not be converted for display") from exc

    if max_size is not None:
        image.thumbnail((max_size, max_size), Image.Resampling.LANCZOS)

    buffer = io.BytesIO()
    if fmt_key == "png":
        return encode_png(np.asarray(image), png_compression)
    else:
        image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


# --------------------------------------------------------------------------
# Public: header for display and for DICOMweb
# --------------------------------------------------------------------------

_HEADER_VALUE_CHARS = 120


def header_elements(path: Path) -> list[dict[str, str]]:
    """Top-level header elements (no pixel data) for the viewer's tag panel, as plain strings."""
    with _damaged_file_guard():
        ds = dcmread(Path(path), stop_before_pixels=True, defer_size=_DEFER_SIZE)
        rows: list[dict[str, str]] = []
        for dataset in (getattr(ds, "file_meta", None), ds):
            if dataset is None:
                continue
            for tag in list(dataset.keys()):
                elem = dataset.get_item(tag, keep_deferred=True)
                if isinstance(elem, RawDataElement) and elem.value is None:
                    value = f"({elem.length} bytes, not shown)"
                    name, vr = _tag_name(tag), str(elem.VR or "")
                else:
                    full = dataset[tag]
                    name, vr = full.name, str(full.VR)
                    if vr == "SQ":
                        value = f"({len(full.value)} item(s))"
                    elif vr in ("OB", "OW", "OF", "OD", "OL", "OV", "UN"):
                        value = f"({len(full.value or b'')} bytes)"
                    else:
                        value = str(full.value)
                if len(value) > _HEADER_VALUE_CHARS:
                    value = value[: _HEADER_VALUE_CHARS - 1] + "…"
                rows.append({"tag": f"({tag.group:04X},{tag.element:04X})", "name": name, "vr": vr, "value": value})
        return rows


def _tag_name(tag) -> str:
    from pydicom.datadict import dictionary_description

    try:
        return dictionary_description(tag)
    except KeyError:
        return "Private tag"


def dicom_json(path: Path, bulk_uri=None) -> dict:
    """The instance's header as DICOM JSON (PS3.18 F.2), pixel data and large binaries as BulkDataURIs.

    ``bulk_uri(tag_string) -> str`` names where a client may fetch a binary value; without it
    large binaries are left out.
    """
    with _damaged_file_guard():
        ds = dcmread(Path(path), stop_before_pixels=True)

        def handler(elem) -> str:
            return bulk_uri(f"{elem.tag.group:04X}{elem.tag.element:04X}") if bulk_uri else ""

        out = ds.to_json_dict(bulk_data_threshold=1024, bulk_data_element_handler=handler, suppress_invalid_tags=True)
        if bulk_uri is None:
            out = {k: v for k, v in out.items() if "BulkDataURI" not in v or v["BulkDataURI"]}
        return out
