"""Content-addressed blob store on the local disk.

Every file the portal keeps (DICOM originals, PDFs, thumbnails, letters) lives here under
its sha256, so what a reviewer sees is provably what was sent. No path is ever built from
request data: keys are validated hex digests.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from contextvars import ContextVar
from pathlib import Path
from typing import BinaryIO

_KEY = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1024 * 1024

# Blobs created during the current unit of work, so a failed request can remove them and
# leave no half-written case behind (see create_app's request boundary).
_new_blobs: ContextVar[list[str] | None] = ContextVar("new_blobs", default=None)


def begin_journal() -> None:
    _new_blobs.set([])


def end_journal() -> list[str]:
    keys = _new_blobs.get() or []
    _new_blobs.set(None)
    return keys


class LocalStorage:
    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._tmp = self.root / "tmp"
        self._tmp.mkdir(exist_ok=True)

    def path(self, key: str) -> Path:
        if not _KEY.match(key or ""):
            raise ValueError("invalid blob key")
        p = (self.root / key[:2] / key[2:4] / key).resolve()
        if self.root not in p.parents:
            raise ValueError("blob path escapes the store")
        return p

    def local_path(self, key: str) -> Path:
        """A filesystem path to the blob, for libraries that need one (pydicom, send_file)."""
        p = self.path(key)
        if not p.exists():
            raise FileNotFoundError(key)
        return p

    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    def put_stream(self, stream: BinaryIO) -> tuple[str, bool]:
        """Store a stream; return (key, created). created is False when the content was already stored."""
        digest = hashlib.sha256()
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp)
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            key = digest.hexdigest()
            final = self.path(key)
            if final.exists():
                return key, False
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp_name, final)
            tmp_name = None
            journal = _new_blobs.get()
            if journal is not None:
                journal.append(key)
            return key, True
        finally:
            if tmp_name and os.path.exists(tmp_name):
                os.unlink(tmp_name)

    def put_file(self, path: Path) -> tuple[str, bool]:
        with open(path, "rb") as fh:
            return self.put_stream(fh)

    def put_bytes(self, data: bytes) -> tuple[str, bool]:
        import io

        return self.put_stream(io.BytesIO(data))

    def open(self, key: str) -> BinaryIO:
        return open(self.path(key), "rb")

    def read_bytes(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def delete(self, key: str) -> None:
        p = self.path(key)
        if p.exists():
            p.unlink()

    def workdir(self) -> Path:
        """A private scratch directory for one upload; the caller removes it."""
        return Path(tempfile.mkdtemp(dir=self._tmp))

    @staticmethod
    def remove_workdir(path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)
