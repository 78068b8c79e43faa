"""Where a key image (or anything else anchored to an image) stands in a series today.

Key images and measurements are anchored to (instance, frame), never to a slice index: scans added to a series
later shift every index after them. The index is looked up from the anchor each time it is shown.
"""
from __future__ import annotations

from collections.abc import Sequence


def anchored_index(slices: Sequence, instance_id: int | None, frame: int) -> int | None:
    """The position of (instance, frame) in `slices` (ordered Slice objects), or None if it is not there."""
    if instance_id is None:
        return None
    return next((n for n, s in enumerate(slices) if s.instance.id == instance_id and s.frame == frame), None)


def index_of_uid(slices: Sequence, sop_instance_uid: str, frame: int) -> int | None:
    """The position of the frame of the instance with this SOP Instance UID, or None."""
    return next((n for n, s in enumerate(slices)
                 if s.instance.sop_instance_uid == sop_instance_uid and s.frame == frame), None)
