"""Opening and validating a DICOM file with pydicom: header facts, the DicomRejected error, size budgets.

Nothing here knows about Flask, the database or the storage layout. ``_load`` reads a file's
header (pixel data left on disk), refuses anything the portal could not store and show later
with a ``DicomRejected`` reason a clinician can act on, and returns the facts the decoding,
rendering and inspection modules share; ``_load_cached`` keeps recently parsed headers.
"""

from __future__ import annotations

import datetime
import io
import math
import re
import stat
import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.datadict import dictionary_description, keyword_dict
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import _read_file_meta_info, read_preamble
from pydicom.multival import MultiValue
from pydicom.pixels import get_decoder
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    MediaStorageDirectoryStorage,
)

from review_portal.imaging.limits import DEFAULT, ImageLimits

__all__ = ["DicomRejected"]

# Elements larger than this are left on disk while parsing, so inspecting a
# multi-gigabyte study never pulls its pixel data into memory.
_DEFER_SIZE = 256 * 1024

# Rows and Columns are 16-bit, so a hostile header can ask for a 4-gigapixel
# frame; rendering works in float64, so samples and bytes per frame are capped
# (ImageLimits.max_frame_pixels / max_frame_bytes) well below what would
# exhaust a web worker.

# Inflating a deflated dataset to measure it: output per step, so a bomb never
# costs more memory than this however well it compresses.
_INFLATE_STEP = 1024 * 1024

_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # Pixel, Float, Double Float
_UNDEFINED_LENGTH = 0xFFFFFFFF
_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_REQUIRED_UIDS = (
    ("SOPInstanceUID", "SOP Instance UID"),
    ("SeriesInstanceUID", "Series Instance UID"),
    ("StudyInstanceUID", "Study Instance UID"),
)


class DicomRejected(Exception):
    """A single file cannot be accepted or shown; ``reason`` is for a clinician."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


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


# DICOM pads values to an even length: text with a trailing space, UIDs with a trailing NUL. Some writers
# pad with NUL everywhere. Padding is stripped when a value is read; a control character INSIDE a value
# (which the indexed VRs do not allow, and PostgreSQL cannot store if it is NUL) refuses the file with a
# reason. ESC stays: it switches character sets in ISO 2022 encoded text (PS3.5 6.1.2.5.3).
_PADDING = "\x00 \t\r\n\f\v"
_EMBEDDED_CONTROL = re.compile("[\x00-\x1a\x1c-\x1f\x7f\ufffe\uffff\ud800-\udfff]")


def _unpadded(value: Any) -> Any:
    return value.strip(_PADDING) if isinstance(value, str) else value


def _as_int(value: Any) -> int | None:
    value = _unpadded(value)
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
    value = _unpadded(value)
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
    text = str(value).strip(_PADDING)
    embedded = _EMBEDDED_CONTROL.search(text)
    if embedded:
        label = dictionary_description(keyword) if keyword_dict.get(keyword) else keyword
        raise DicomRejected(f"the {label} contains a control character (U+{ord(embedded.group()):04X}) "
                            "inside its value")
    return text


def _parse_date(value: Any) -> datetime.date | None:
    if isinstance(value, datetime.date):
        return value
    text = str(value or "").strip(_PADDING)
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


def _inflated_size_within(path: Path, budget: int) -> None:
    """Refuse a Deflated Explicit VR Little Endian file whose dataset inflates past ``budget`` bytes.

    pydicom inflates such a dataset whole, in memory, before parsing it, so a deflate bomb (kilobytes
    on disk, gigabytes inflated) is measured here first with a bounded streaming inflater.
    """
    try:
        with open(path, "rb") as fh:
            read_preamble(fh, True)
            meta = _read_file_meta_info(fh)
            if meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
                return
            inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            total = 0
            pending = b""
            while True:
                if not pending:
                    pending = fh.read(_INFLATE_STEP)
                    if not pending:
                        break
                out = inflater.decompress(pending, _INFLATE_STEP)
                pending = inflater.unconsumed_tail
                total += len(out)
                if total > budget:
                    raise DicomRejected(
                        f"the compressed (deflated) file expands to more than {budget // (1024 * 1024) or 1} MB, "
                        "the most the portal accepts"
                    )
                if inflater.eof:
                    break
    except DicomRejected:
        raise
    except Exception:
        return  # not a readable file meta or stream: the full reader below gives the reason


def _load(path: Path, limits: ImageLimits = DEFAULT) -> _Loaded:
    path = Path(path)
    try:
        st = path.stat()
    except OSError as exc:
        raise DicomRejected("the file could not be found") from exc
    if not stat.S_ISREG(st.st_mode):
        raise DicomRejected("not a regular file")
    if st.st_size == 0:
        raise DicomRejected("the file is empty")

    _inflated_size_within(path, limits.max_inflated_bytes)
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
    if rows * columns * samples > limits.max_frame_pixels or rows * columns * samples * bits // 8 > limits.max_frame_bytes:
        raise DicomRejected(f"the image is too large to display ({columns} x {rows})")

    # Every frame becomes a slice the viewer, DICOMweb and the letter list: the declared count is checked
    # against the data actually there before anything counts on it.
    frames = _frame_count(ds)
    if frames > limits.max_frames:
        raise DicomRejected(
            f"the header declares {frames} frames; the portal accepts at most {limits.max_frames} per file"
        )

    if ts.is_encapsulated:
        try:
            decoder = get_decoder(ts)
        except NotImplementedError as exc:
            raise DicomRejected(f"unsupported image compression ({ts.name})") from exc
        if not decoder.is_available:
            raise DicomRejected(f"no decoder installed for this image compression ({ts.name})")
        present = _encapsulated_frames_present(ds, path, frames)
        if present < frames:
            raise DicomRejected(
                f"the header declares {frames} frames but the image data holds {present}"
            )
    else:
        pixel_tag = next(tag for tag in _PIXEL_TAGS if tag in ds)
        elem = ds.get_item(pixel_tag, keep_deferred=True)
        if isinstance(elem, RawDataElement):
            actual = elem.length if elem.value is None else len(elem.value)
        else:
            actual = len(elem.value or b"")
        # Undefined length is not allowed for native pixel data and is what a
        # compressed stream mislabelled as uncompressed looks like.
        if actual == _UNDEFINED_LENGTH:
            raise DicomRejected("pixel data size does not match the header")
        if frames > 1 and actual < _expected_native_bytes(ds, frames):
            per_frame = max(_expected_native_bytes(ds, 1), 1)
            raise DicomRejected(
                f"the header declares {frames} frames but the image data holds {actual // per_frame}"
            )
        if actual < _expected_native_bytes(ds, frames):
            raise DicomRejected("pixel data size does not match the header")

    return _Loaded(path=path, ds=ds, transfer_syntax=ts, has_file_meta_syntax=has_meta_syntax, frames=frames)


def _encapsulated_frames_present(ds: Dataset, path: Path, declared: int) -> int:
    """How many frames the encapsulated pixel data can hold: the offset table's entries, else its fragments.

    Counts at most ``declared`` fragment headers (each frame needs at least one), seeking over their
    contents, so a header declaring a million frames costs no more than the fragments really there.
    """
    eot = ds.get_item(0x7FE00001, keep_deferred=True) if 0x7FE00001 in ds else None
    if eot is not None:
        length = eot.length if isinstance(eot, RawDataElement) and eot.value is None else len(eot.value or b"")
        if length and length != _UNDEFINED_LENGTH:
            return length // 8
    elem = ds.get_item(0x7FE00010, keep_deferred=True)
    if isinstance(elem, RawDataElement) and elem.value is None:
        if elem.value_tell is None:
            return 0
        with open(path, "rb") as fh:
            fh.seek(elem.value_tell)
            end = elem.value_tell + (elem.length if elem.length != _UNDEFINED_LENGTH else path.stat().st_size)
            return _count_fragments(fh, end, declared)
    value = elem.value if isinstance(elem, RawDataElement) else elem.value
    if not isinstance(value, (bytes, bytearray)):
        return 0
    return _count_fragments(io.BytesIO(value), len(value), declared)


def _count_fragments(fh, end: int, wanted: int) -> int:
    def item() -> int | None:
        header = fh.read(8)
        if len(header) < 8:
            return None
        group, element, length = int.from_bytes(header[0:2], "little"), int.from_bytes(header[2:4], "little"), \
            int.from_bytes(header[4:8], "little")
        if (group, element) != (0xFFFE, 0xE000) or length == _UNDEFINED_LENGTH or fh.tell() + length > end:
            return None
        return length

    bot_length = item()  # the Basic Offset Table item comes first, possibly empty
    if bot_length is None:
        return 0
    if bot_length:
        # A non-empty table lists one offset per frame.
        entries = bot_length // 4
        fh.seek(bot_length, 1)
        return entries if _fragments_at_least(fh, end, 1, item) else 0
    fragments = 0
    while fragments < wanted:
        length = item()
        if length is None:
            break
        fragments += 1
        fh.seek(length, 1)
    return fragments


def _fragments_at_least(fh, end: int, n: int, item) -> bool:
    for _ in range(n):
        length = item()
        if length is None:
            return False
        fh.seek(length, 1)
    return True


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


