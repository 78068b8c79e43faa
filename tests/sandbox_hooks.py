"""Hooks a test names in SANDBOX_PRELOAD: run inside each sandbox worker before its limits apply."""
from __future__ import annotations


def slow_decoding() -> None:
    """Every pydicom decode in this worker first sleeps far longer than any test's time limit."""
    import time

    from review_portal.imaging import decoding

    original = decoding._decode_with_pydicom

    def slow(loaded, index):
        time.sleep(120)
        return original(loaded, index)

    decoding._decode_with_pydicom = slow
