"""A faster decoder for lossless JPEG (Process 14), plugged into pydicom's decoder registry.

pydicom decodes JPEG Lossless with GDCM or pylibjpeg-libjpeg, both ~12 ms for a 512 x 512
16-bit CT slice: most of the time a reviewer waits while scrolling such a series. libjpeg-turbo
(through imagecodecs) decodes the same stream in ~2 ms. Lossless JPEG has exactly one correct
output, so swapping the decoder cannot change a pixel; lossy JPEG (baseline/extended) is left to
pydicom's own plugins, since IDCT and colour conversion legitimately differ between libraries.

``preferred_plugin(ts)`` names the plugin to try first for a transfer syntax (None: let pydicom
choose); the caller falls back to pydicom's plugins on any failure, so an exotic stream that
libjpeg-turbo refuses (e.g. a hierarchical process) is still decoded the old way.
"""
from __future__ import annotations

import threading

from pydicom import uid
from pydicom.pixels import get_decoder

PLUGIN = "imagecodecs-ljpeg"
_SYNTAXES = (uid.JPEGLossless, uid.JPEGLosslessSV1)
DECODER_DEPENDENCIES = {ts: ("imagecodecs>=2024.1",) for ts in _SYNTAXES}  # pydicom reads this for unavailable plugins
_registered: dict[str, bool] = {}
_lock = threading.Lock()


def is_available(transfer_syntax: str) -> bool:
    if transfer_syntax not in _SYNTAXES:
        return False
    try:
        import imagecodecs
    except ImportError:
        return False
    return bool(getattr(imagecodecs, "JPEG8", None) and imagecodecs.JPEG8.available)


def _decode_frame(src: bytes, runner) -> bytes:
    """pydicom plugin hook: one frame's JPEG stream in, the raw samples out (as pylibjpeg returns them)."""
    import imagecodecs

    if runner.samples_per_pixel != 1:
        # Colour lossless JPEG: leave the component handling to the reference plugins.
        raise ValueError("imagecodecs plugin only decodes single-sample lossless JPEG")
    arr = imagecodecs.jpeg8_decode(src)
    if arr.ndim != 2 or arr.shape != (runner.rows, runner.columns):
        raise ValueError("the decoded frame does not match the image header")
    bits = runner.bits_allocated
    # libjpeg-turbo returns the sample precision's container (uint8 up to 8 bits, uint16 above),
    # which is what pydicom's runner expects for bits_allocated 8 and 16.
    if (bits == 8 and arr.dtype.itemsize != 1) or (bits == 16 and arr.dtype.itemsize != 2) or bits not in (8, 16):
        raise ValueError("unexpected sample container for this image")
    return arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()


def preferred_plugin(transfer_syntax: str) -> str | None:
    """Register (once) and name the fast plugin for this syntax, or None when there is none."""
    ts = uid.UID(str(transfer_syntax))
    key = str(ts)
    with _lock:
        known = _registered.get(key)
        if known is None:
            known = False
            if is_available(ts):
                decoder = get_decoder(ts)
                if PLUGIN not in decoder.available_plugins:
                    decoder.add_plugin(PLUGIN, (__name__, "_decode_frame"))
                known = PLUGIN in decoder.available_plugins
            _registered[key] = known
    return PLUGIN if known else None
