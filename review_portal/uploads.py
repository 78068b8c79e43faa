"""Files a request sends, spooled to a private scratch directory before any domain looks at them.

Every door that takes files (the referral form, add-scans, answers to requests, the API, STOW-RS) uses
`spooled`, so each one gets the same scratch-directory handling and cleans up even when a step fails.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator


@dataclass(frozen=True)
class UploadedFile:
    """A file the caller sent, already on disk. `filename` is the sender's name, for messages only."""

    filename: str
    path: Path


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
        f.save(path)
        spooled.append(UploadedFile(filename=f.filename, path=path))
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
