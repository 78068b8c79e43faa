"""Files a request sends, spooled to a private scratch directory before any domain looks at them.

Every door that takes files (the referral form, add-scans, answers to requests, the API, STOW-RS) uses
`spooled`, so each one gets the same scratch-directory handling and cleans up even when a step fails.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from flask import Request, current_app, has_app_context


@dataclass(frozen=True)
class UploadedFile:
    """A file the caller sent, already on disk. `filename` is the sender's name, for messages only; `sha256`, when
    known, is the hash of its bytes taken while they were written (storage then need not read them again)."""

    filename: str
    path: Path
    sha256: str | None = None


class HashedSpool:
    """Where Werkzeug's form parser writes one uploaded file: straight to a file in the storage's temporary area,
    hashed while written. Nothing of the part is held in memory and its bytes are never copied again: `spool`
    moves the file into the request's scratch directory and storage links it into place by the hash."""

    def __init__(self, directory: Path):
        fd, self.name = tempfile.mkstemp(dir=directory, prefix="upload-")
        self._fh = os.fdopen(fd, "w+b")
        self._digest = hashlib.sha256()
        self._moved = False

    def write(self, data) -> int:
        self._digest.update(data)
        return self._fh.write(data)

    def read(self, size: int = -1) -> bytes:
        return self._fh.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def flush(self) -> None:
        self._fh.flush()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    @property
    def closed(self) -> bool:
        return self._fh.closed

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def move_to(self, path: Path) -> str:
        """Give the written file this name (same file system: no copy); returns its sha256."""
        self._fh.flush()
        os.replace(self.name, path)
        self._moved = True
        return self.sha256

    def close(self) -> None:
        self._fh.close()
        if not self._moved:
            try:
                os.unlink(self.name)
            except FileNotFoundError:
                pass

    def __getattr__(self, name):  # readline, readinto, fileno...: the file's own
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._fh, name)

    def __iter__(self):
        return iter(self._fh)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class SpoolingRequest(Request):
    """The app's request class: uploaded files go to HashedSpool files in the store's temporary area (the app
    factory sets it; without an app or a store, Werkzeug's own spooling applies)."""

    def _get_file_stream(self, total_content_length, content_type, filename=None, content_length=None):
        store = current_app.extensions.get("storage") if has_app_context() else None
        if store is None:
            return super()._get_file_stream(total_content_length, content_type, filename, content_length)
        return HashedSpool(store.spool_area())


@contextmanager
def scratch(store) -> Iterator[Path]:
    """A private scratch directory in the storage's temporary area, removed afterwards whatever happens."""
    workdir = store.workdir()
    try:
        yield workdir
    finally:
        store.remove_workdir(workdir)


def spool(files: Iterable, workdir: Path, prefix: str) -> list[UploadedFile]:
    """Save each uploaded file (werkzeug FileStorage or anything with .filename and .save) into `workdir`.
    Empty file inputs (no name) are skipped: a form posts one when nothing was chosen."""
    spooled = []
    for n, f in enumerate(files):
        if not f or not getattr(f, "filename", None):
            continue
        path = workdir / f"{prefix}{n}"
        stream = getattr(f, "stream", None)
        if isinstance(stream, HashedSpool) and not stream.closed:
            sha256 = stream.move_to(path)  # already on disk and hashed while the request arrived
        else:
            f.save(path)
            sha256 = None
        spooled.append(UploadedFile(filename=f.filename, path=path, sha256=sha256))
    return spooled


@contextmanager
def spooled(store, **groups: Iterable) -> Iterator[dict[str, list[UploadedFile]]]:
    """Spool several named groups of files (e.g. documents=..., scans=...) into one scratch directory."""
    with scratch(store) as workdir:
        yield {name: spool(files, workdir, f"{name}-") for name, files in groups.items()}


def spool_bytes(items: Iterable[tuple[str, bytes]], workdir: Path, prefix: str) -> list[UploadedFile]:
    """The same for files that arrived inside a document (e.g. base64 attachments of an API call)."""
    spooled = []
    for n, (name, data) in enumerate(items):
        path = workdir / f"{prefix}{n}"
        path.write_bytes(data)
        spooled.append(UploadedFile(filename=name or f"document-{n + 1}", path=path))
    return spooled
