"""Rendered slices kept on this host's disk, shared by all its web workers, so a slice shown once at a window is
never decoded again for the same window.

The key is what the image's ETag names (blob, frame, window, format; `cache_key`): the blob key is the sha256 of
the original, which is never rewritten, so a cached rendering can never go stale. Files are written to a temporary name and renamed into
place, so a worker reading concurrently sees a whole file or none. Size is bounded (RENDER_CACHE_MB); a hit
touches the file's mtime, and when the cache grows past its bound the least recently used files are removed
until it is back under 90% of it. Which worker evicts does not matter: every worker's view of the directory is the
same, and a file removed under a reader is just a miss.

The decoded-frame cache of each process (decoding.py) is sized from config here too (FRAME_CACHE_MB): it serves a
window being dragged on one slice; this cache serves the same slice and window asked again, by any worker.

Not for key images: they are stored blobs, rendered once when marked.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from review_portal.imaging import decoding

__all__ = ["RenderCache", "cache_key", "cache_of", "rendered"]

AREA = "render-cache"
_HEADROOM = 0.9  # evict down to this share of the bound, so eviction does not run on every write


class RenderCache:
    def __init__(self, directory: Path, max_bytes: int):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max(0, int(max_bytes))
        self._lock = threading.Lock()
        # Bytes this process wrote since it last measured the directory: measuring (one scandir) happens when
        # that passes a sixteenth of the bound, so a busy cache is checked often and an idle one never.
        self._written_since_check = 0
        self.hits = 0
        self.misses = 0

    def _path(self, etag: str) -> Path:
        name = hashlib.sha256(etag.encode()).hexdigest()
        return self.directory / name[:2] / name

    def get(self, etag: str) -> bytes | None:
        if not self.max_bytes:
            return None
        path = self._path(etag)
        try:
            with open(path, "rb") as fh:
                data = fh.read()
            os.utime(path)  # least recently used is what eviction removes first
        except OSError:  # absent, or evicted by another worker just now
            with self._lock:
                self.misses += 1
            return None
        with self._lock:
            self.hits += 1
        return data

    def put(self, etag: str, data: bytes) -> None:
        if not self.max_bytes or len(data) > self.max_bytes // 8:
            return
        path = self._path(etag)
        try:
            path.parent.mkdir(exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                os.replace(tmp, path)  # atomic: readers see the whole file or none
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
        except OSError:
            return  # a full or read-only disk costs a rendering, never a request
        with self._lock:
            self._written_since_check += len(data)
            due = self._written_since_check >= max(self.max_bytes // 16, 1)
            if due:
                self._written_since_check = 0
        if due:
            self.evict()

    def usage(self) -> tuple[int, list[tuple[float, int, str]]]:
        total, files = 0, []
        for shard in os.scandir(self.directory):
            if not shard.is_dir(follow_symlinks=False):
                continue
            for entry in os.scandir(shard.path):
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if entry.name.startswith(".part-"):
                    if st.st_mtime < time.time() - 3600:  # left by a worker killed mid-write
                        _unlink(entry.path)
                    continue
                total += st.st_size
                files.append((st.st_mtime, st.st_size, entry.path))
        return total, files

    def evict(self) -> int:
        """Remove least recently used files until the cache is under 90% of its bound; returns how many."""
        total, files = self.usage()
        if total <= self.max_bytes:
            return 0
        removed = 0
        target = self.max_bytes * _HEADROOM
        for _mtime, size, path in sorted(files):
            if total <= target:
                break
            if _unlink(path):
                removed += 1
            total -= size
        return removed


def _unlink(path: str) -> bool:
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def cache_of(app, storage) -> RenderCache:
    """The app's render cache (created on first use), in the storage's host area."""
    cache = app.extensions.get("imaging_render_cache")
    if cache is None:
        decoding.set_frame_cache_bytes(int(float(app.config.get("FRAME_CACHE_MB", 64)) * 1024 * 1024))
        cache = RenderCache(storage.host_area(AREA), int(float(app.config.get("RENDER_CACHE_MB", 512)) * 1024 * 1024))
        app.extensions["imaging_render_cache"] = cache
    return cache


def cache_key(blob_key: str, frame: int, center: float | None, width: float | None, fmt: str) -> str:
    """One name for one rendering, whichever door asks for it (the viewer counts frames from 0, DICOMweb from 1;
    their ETags differ, the cache key does not)."""
    fmt = "jpeg" if fmt in ("jpg", "jpeg") else fmt
    window = "file" if center is None else f"{float(center)!r}/{float(width)!r}"
    return f"{blob_key}/{int(frame)}/{window}/{fmt}"


def rendered(app, storage, key: str, render: Callable[[], bytes]) -> bytes:
    """The bytes for `key` (see cache_key) from the cache, else `render()`d and kept."""
    cache = cache_of(app, storage)
    data = cache.get(key)
    if data is None:
        data = render()
        cache.put(key, data)
    return data
