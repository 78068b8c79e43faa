"""Pixel decoding of one frame (native fast path, preferred plugins, pydicom fallbacks) and the decoded-frame cache.

All decoding is delegated to pydicom and its installed plugins (pylibjpeg,
pylibjpeg-libjpeg/openjpeg/rle, Pillow), with the faster lossless JPEG decoder from
``decoders`` tried first where it applies.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np
from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.pixels import pixel_array
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from review_portal.imaging import decoders
from review_portal.imaging.reading import DicomRejected, _Loaded

# When pydicom's file-based frame reader fails we retry on a fully parsed
# dataset (it tolerates mislabelled VRs and deflated files); that loads the
# whole file, which we only allow for files of reasonable size.
_MAX_FULL_READ_BYTES = 512 * 1024 * 1024

# The Rust-based decoders (pylibjpeg-rle, ...) surface corrupt input as a pyo3
# PanicException, which derives from BaseException and would sail past
# "except Exception"; decoding therefore catches everything except these.
_NEVER_SWALLOW = (KeyboardInterrupt, SystemExit, GeneratorExit)


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


# Decoded frames of compressed images, for re-rendering the slice on screen at another window
# (dragging the window re-renders one slice many times, and decoding dominates). Bounded by
# bytes, not entries (FRAME_CACHE_MB, see set_frame_cache_bytes; 24 MB until configured). Arrays are
# read-only, so nothing downstream can alter a cached frame in place.
_FRAME_CACHE: OrderedDict[tuple, np.ndarray] = OrderedDict()
_FRAME_CACHE_BYTES = 24 * 1024 * 1024
_frame_cache_used = 0
_FRAME_CACHE_LOCK = threading.Lock()


def set_frame_cache_bytes(limit: int) -> None:
    """Bound the decoded-frame cache (FRAME_CACHE_MB, set by render_cache.cache_of), dropping frames over it."""
    global _FRAME_CACHE_BYTES, _frame_cache_used
    with _FRAME_CACHE_LOCK:
        _FRAME_CACHE_BYTES = max(0, int(limit))
        while _FRAME_CACHE and _frame_cache_used > _FRAME_CACHE_BYTES:
            _, old = _FRAME_CACHE.popitem(last=False)
            _frame_cache_used -= old.nbytes


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
