"""Content-addressed blob store: a local directory (default) or S3-compatible object storage.

Every file the portal keeps (DICOM originals, PDFs, thumbnails, letters) lives here under
its sha256, so what a reviewer sees is provably what was sent. No path is ever built from
request data: keys are validated hex digests. Both backends offer the same methods;
`storage_from_config` picks one.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator
import time
from contextvars import ContextVar
from pathlib import Path
from typing import BinaryIO

from review_portal import tmpfiles
from review_portal.errors import StoredFileCorrupt

_KEY = re.compile(r"^[0-9a-f]{64}$")
# Append-only named objects (the audit chain's head anchors): a plain name, never a path.
_ANCHOR_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
CHUNK = 1024 * 1024
log = logging.getLogger(__name__)

# Files whose bytes were hashed recently, by (path, size, mtime): scrolling a series renders every slice
# again at each window change, and hashing a multi-frame file for every frame would cost more than the
# rendering. A rewritten file changes size or mtime and is hashed again; `flask storage-scrub` re-hashes
# everything on a schedule, whatever the cache says.
_VERIFIED: OrderedDict[tuple, bool] = OrderedDict()
_VERIFIED_SIZE = 4096
_VERIFIED_LOCK = threading.Lock()


def _corrupt(key: str, where: str) -> StoredFileCorrupt:
    log.error("INTEGRITY ALERT: stored blob %s does not match its sha256 (%s); it was not served", key, where)
    return StoredFileCorrupt(key)

# Blobs created during the current unit of work, so a failed request can remove them and
# leave no half-written case behind (see create_app's request boundary).
_new_blobs: ContextVar[list[str] | None] = ContextVar("new_blobs", default=None)


def begin_journal() -> None:
    _new_blobs.set([])


def end_journal() -> list[str]:
    keys = _new_blobs.get() or []
    _new_blobs.set(None)
    return keys


def discard_journaled(store: "Storage", keys: list[str], *, engine, referenced) -> list[str]:
    """After a failed unit of work: delete the blobs it created that no committed row refers to.

    `referenced(session, key)` is the one reference check (review_portal.models.blob_is_referenced, handed
    down by the app factory: storage knows no domain). It runs in a fresh session, so it sees what other
    requests committed, e.g. the same bytes stored by a concurrent request. Returns the keys deleted."""
    from sqlalchemy.orm import Session

    keys = list(dict.fromkeys(keys))
    if not keys:
        return []
    deleted = []
    with Session(bind=engine) as fresh:
        for key in keys:
            if not referenced(fresh, key):
                store.delete(key)
                deleted.append(key)
    return deleted


def _check_key(key: str) -> str:
    if not _KEY.match(key or ""):
        raise ValueError("invalid blob key")
    return key


def _journal(key: str) -> None:
    journal = _new_blobs.get()
    if journal is not None:
        journal.append(key)


def _check_anchor_name(name: str) -> str:
    if not _ANCHOR_NAME.match(name or ""):
        raise ValueError("invalid anchor name")
    return name


class AnchorExists(FileExistsError):
    """An append-only object of that name is already stored; it is never overwritten."""


def sha256_of(stream: BinaryIO) -> str:
    digest = hashlib.sha256()
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


class Storage:
    """The content-addressed file store every domain writes to: a key is the SHA-256 of the bytes.

    Type hints name this interface; `storage_from_config` picks the backend (local disk or S3).
    The put_* helpers derive from each backend's put_stream.
    """

    _tmp: Path

    def _spool(self, stream: BinaryIO) -> tuple[str, str]:
        """Copy a stream to a private temp file while hashing it; return (sha256 key, temp file name)."""
        digest = hashlib.sha256()
        fd, tmp_name = tmpfiles.mkstemp(self._tmp)
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
        except BaseException:
            os.unlink(tmp_name)
            raise
        return digest.hexdigest(), tmp_name

    def put_stream(self, stream: BinaryIO) -> tuple[str, bool]:
        raise NotImplementedError

    def local_path(self, key: str) -> Path:
        """A readable file with the blob's bytes (a cached copy on remote backends)."""
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def open(self, key: str) -> BinaryIO:
        raise NotImplementedError

    def read_bytes(self, key: str) -> bytes:
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError

    def workdir(self) -> Path:
        """A private scratch directory in the store's temporary area; see uploads.scratch, which removes it.
        Locked by this process while it exists, so no sweep on any host removes it (tmpfiles)."""
        return tmpfiles.make_workdir(self._tmp)

    @staticmethod
    def remove_workdir(path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)
        tmpfiles.release(path)

    def spool_area(self) -> Path:
        """Where uploads are written as they arrive (uploads.HashedSpool): the temporary area, on the same file
        system as the blobs, so an upload is moved into place, never copied."""
        return self._tmp

    def host_area(self, name: str) -> Path:
        """A directory of this host's own beside the store (e.g. the rendered-image cache), shared by its workers.
        Not blobs: nothing there is backed up or verified, and it may be deleted at any time."""
        area = self._tmp.parent / _check_anchor_name(name)
        area.mkdir(exist_ok=True)
        return area

    # --- reads that prove the bytes are still the ones stored (the key is their sha256)

    def read_verified(self, key: str) -> bytes:
        """The whole blob, hashed before the caller sees a byte (letters, documents, thumbnails: small).
        Raises StoredFileCorrupt (after logging at ERROR) when the bytes no longer match the key."""
        data = self.read_bytes(key)
        if hashlib.sha256(data).hexdigest() != key:
            raise _corrupt(key, "read")
        return data

    def open_verified(self, key: str) -> BinaryIO:
        """An open file with the blob's bytes, hashed in full before it is returned (so before the first byte is
        sent), in CHUNK-sized reads: memory stays flat whatever the size. The caller sends and closes it.
        Raises StoredFileCorrupt (after logging at ERROR) when the bytes no longer match the key."""
        fh = open(self.local_path(key), "rb")
        try:
            if sha256_of(fh) != key:
                raise _corrupt(key, "file")
            fh.seek(0)
        except BaseException:
            fh.close()
            raise
        return fh

    def verified_local_path(self, key: str) -> Path:
        """local_path, after checking the file still hashes to its key (cached per path, size and mtime)."""
        path = self.local_path(key)
        st = path.stat()
        seen = (str(path), st.st_size, st.st_mtime_ns)
        with _VERIFIED_LOCK:
            if seen in _VERIFIED:
                _VERIFIED.move_to_end(seen)
                return path
        with open(path, "rb") as fh:
            if sha256_of(fh) != key:
                raise _corrupt(key, "local file")
        with _VERIFIED_LOCK:
            _VERIFIED[seen] = True
            while len(_VERIFIED) > _VERIFIED_SIZE:
                _VERIFIED.popitem(last=False)
        return path

    def iter_verified(self, key: str, chunk: int = CHUNK) -> Iterator[bytes]:
        """The blob's bytes in chunks, hashed while they stream (large DICOM files). The last chunk is held
        back until the digest is known: on a mismatch the stream raises StoredFileCorrupt instead, so the
        client sees a broken transfer and never a complete file."""
        digest = hashlib.sha256()
        with self.open(key) as fh:
            pending = fh.read(chunk)
            while pending:
                digest.update(pending)
                following = fh.read(chunk)
                if not following:
                    break
                yield pending
                pending = following
            if digest.hexdigest() != key:
                raise _corrupt(key, "stream")
            if pending:
                yield pending

    def put_bytes_repairing(self, data: bytes) -> str:
        """Store `data` (a rebuilt derivative), replacing a stored copy under the same key that no longer
        matches it; return the key."""
        key = hashlib.sha256(data).hexdigest()
        if self.exists(key) and not self.verify(key):
            log.warning("replacing the corrupt stored copy of %s with rebuilt bytes", key)
            self.delete(key)
        self.put_bytes(data)
        return key

    def verify(self, key: str) -> bool:
        raise NotImplementedError

    def sweep_tmp(self, *, max_age_seconds: float, now: float | None = None) -> int:
        """Remove what crashed requests and workers left in the temporary area (spooled uploads, scratch
        directories) once it is older than `max_age_seconds`, i.e. older than the longest upload.
        A directory counts as old only when nothing inside it changed within that time. An entry a live process
        owns (its lock is held, on any host sharing the store, or its process on this host runs) is never
        removed (tmpfiles). Returns how many entries were removed."""
        cutoff = (time.time() if now is None else now) - max_age_seconds
        removed = 0
        try:
            entries = list(os.scandir(self._tmp))
        except FileNotFoundError:
            return 0
        for entry in entries:
            try:
                if tmpfiles.in_use(Path(entry.path)):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    if _newest_mtime(Path(entry.path)) < cutoff:
                        shutil.rmtree(entry.path, ignore_errors=True)
                        removed += 1
                elif entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:  # its owner finished (or another sweeper won) meanwhile
                continue
        return removed

    # Append-only named objects, outside the content-addressed keys: one object per name, never overwritten.
    def put_anchor(self, name: str, data: bytes) -> None:
        """Store `data` under `name` once; raise AnchorExists if that name is taken (whatever its bytes)."""
        raise NotImplementedError

    def list_anchors(self) -> list[str]:
        raise NotImplementedError

    def read_anchor(self, name: str) -> bytes:
        raise NotImplementedError

    def put_file(self, path: Path, sha256: str | None = None) -> tuple[str, bool]:
        """Store a file. `sha256`: its hash, taken by the caller while the bytes were written (an upload spooled by
        uploads.HashedSpool), so the backend neither reads nor copies it again to learn its key."""
        if sha256 is not None:
            return self._put_hashed_file(Path(path), _check_key(sha256))
        with open(path, "rb") as fh:
            return self.put_stream(fh)

    def _put_hashed_file(self, path: Path, key: str) -> tuple[str, bool]:
        with open(path, "rb") as fh:
            return self.put_stream(fh)

    def put_bytes(self, data: bytes) -> tuple[str, bool]:
        import io

        return self.put_stream(io.BytesIO(data))


def _newest_mtime(path: Path) -> float:
    newest = path.stat().st_mtime
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                newest = max(newest, os.stat(os.path.join(root, name), follow_symlinks=False).st_mtime)
            except FileNotFoundError:
                continue
    return newest


class LocalStorage(Storage):
    backend = "local"

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._tmp = self.root / "tmp"
        self._tmp.mkdir(exist_ok=True)

    def path(self, key: str) -> Path:
        _check_key(key)
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
        key, tmp_name = self._spool(stream)
        try:
            final = self.path(key)
            if final.exists():
                return key, False
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp_name, final)
            tmp_name = None
            _journal(key)
            return key, True
        finally:
            if tmp_name and os.path.exists(tmp_name):
                os.unlink(tmp_name)

    def _put_hashed_file(self, path: Path, key: str) -> tuple[str, bool]:
        final = self.path(key)
        if final.exists():
            return key, False
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, final)  # atomic, no copy; the caller's name goes with its scratch directory
        except FileExistsError:
            return key, False  # the same bytes stored meanwhile by another request
        except OSError:
            with open(path, "rb") as fh:  # another file system: copy (and hash) after all
                return self.put_stream(fh)
        _journal(key)
        return key, True

    def open(self, key: str) -> BinaryIO:
        return open(self.path(key), "rb")

    def read_bytes(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def delete(self, key: str) -> None:
        p = self.path(key)
        if p.exists():
            p.unlink()

    @property
    def _anchors(self) -> Path:
        return self.root / "anchors"

    def put_anchor(self, name: str, data: bytes) -> None:
        self._anchors.mkdir(exist_ok=True)
        final = self._anchors / _check_anchor_name(name)
        fd, tmp_name = tmpfiles.mkstemp(self._tmp)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            try:
                os.link(tmp_name, final)  # atomic and never replaces: fails when the name exists
            except FileExistsError:
                raise AnchorExists(name) from None
        finally:
            os.unlink(tmp_name)

    def list_anchors(self) -> list[str]:
        if not self._anchors.is_dir():
            return []
        return sorted(p.name for p in self._anchors.iterdir() if _ANCHOR_NAME.match(p.name))

    def read_anchor(self, name: str) -> bytes:
        return (self._anchors / _check_anchor_name(name)).read_bytes()

    def iter_keys(self):
        """Every stored key (for backup verification)."""
        for p in sorted(self.root.glob("??/??/*")):
            if _KEY.match(p.name):
                yield p.name

    def verify(self, key: str) -> bool:
        """True when the stored bytes still hash to their key."""
        with self.open(key) as fh:
            return sha256_of(fh) == key

    def check_ready(self) -> None:
        """Raise when the store cannot be written (readiness probe)."""
        probe = tempfile.NamedTemporaryFile(dir=self._tmp, delete=True)
        probe.close()


class S3Storage(Storage):
    """The same interface on an S3-compatible bucket (AWS S3, MinIO, Ceph RGW...).

    Uploads are spooled once to a local temp file to learn their sha256 (the key), then streamed
    to the bucket with multipart upload. Reads stream from the bucket. `local_path` keeps a
    verified local copy for libraries that need a filesystem path (pydicom, send_file).
    """

    backend = "s3"

    def __init__(self, bucket: str, *, cache_dir: Path, client=None, endpoint_url: str | None = None,
                 region: str | None = None, access_key: str | None = None, secret_key: str | None = None,
                 prefix: str = "blobs/", anchor_prefix: str = "anchors/"):
        if client is None:
            import boto3
            from botocore.config import Config as BotoConfig

            client = boto3.client(
                "s3", endpoint_url=endpoint_url or None, region_name=region or "us-east-1",
                aws_access_key_id=access_key or None, aws_secret_access_key=secret_key or None,
                config=BotoConfig(retries={"max_attempts": 5, "mode": "standard"}, s3={"addressing_style": "path"}),
            )
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.anchor_prefix = anchor_prefix
        self.cache = Path(cache_dir).resolve()
        self.cache.mkdir(parents=True, exist_ok=True)
        self._tmp = self.cache / "tmp"
        self._tmp.mkdir(exist_ok=True)

    def _object(self, key: str) -> str:
        return self.prefix + _check_key(key)

    def _cache_path(self, key: str) -> Path:
        _check_key(key)
        return self.cache / key[:2] / key[2:4] / key

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._object(key))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def put_stream(self, stream: BinaryIO) -> tuple[str, bool]:
        key, tmp_name = self._spool(stream)
        try:
            if self.exists(key):
                return key, False
            self.client.upload_file(tmp_name, self.bucket, self._object(key),
                                    ExtraArgs={"Metadata": {"sha256": key}})
            _journal(key)
            return key, True
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)

    def _put_hashed_file(self, path: Path, key: str) -> tuple[str, bool]:
        if self.exists(key):
            return key, False
        self.client.upload_file(str(path), self.bucket, self._object(key), ExtraArgs={"Metadata": {"sha256": key}})
        _journal(key)
        return key, True

    def open(self, key: str) -> BinaryIO:
        """A streaming, file-like body (read(n), close(), context manager)."""
        from botocore.exceptions import ClientError

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._object(key))["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise FileNotFoundError(key) from exc
            raise
        return body

    def read_bytes(self, key: str) -> bytes:
        with self.open(key) as body:
            return body.read()

    def local_path(self, key: str) -> Path:
        """A local copy, downloaded once and checked against its sha256 before anyone reads it."""
        cached = self._cache_path(key)
        if cached.exists():
            return cached
        cached.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tmpfiles.mkstemp(self._tmp)
        try:
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as out, self.open(key) as body:
                while chunk := body.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != key:
                raise OSError(f"stored object {key} does not match its sha256")
            os.replace(tmp_name, cached)  # atomic: concurrent readers see a whole file or none
            tmp_name = None
            return cached
        finally:
            if tmp_name and os.path.exists(tmp_name):
                os.unlink(tmp_name)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._object(key))
        self._cache_path(key).unlink(missing_ok=True)

    def put_anchor(self, name: str, data: bytes) -> None:
        """A conditional write (If-None-Match: *), so two writers can never replace each other's anchor.
        Pair it with S3 Object Lock (compliance mode) on the anchors/ prefix so nobody can delete one."""
        from botocore.exceptions import ClientError

        key = self.anchor_prefix + _check_anchor_name(name)
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, IfNoneMatch="*")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                raise AnchorExists(name) from exc
            raise

    def list_anchors(self) -> list[str]:
        names = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.anchor_prefix):
            for item in page.get("Contents", []):
                name = item["Key"][len(self.anchor_prefix):]
                if _ANCHOR_NAME.match(name):
                    names.append(name)
        return sorted(names)

    def read_anchor(self, name: str) -> bytes:
        body = self.client.get_object(Bucket=self.bucket, Key=self.anchor_prefix + _check_anchor_name(name))["Body"]
        with body:
            return body.read()

    def iter_keys(self):
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents", []):
                name = item["Key"][len(self.prefix):]
                if _KEY.match(name):
                    yield name

    def verify(self, key: str) -> bool:
        with self.open(key) as body:
            return sha256_of(body) == key

    def verified_local_path(self, key: str) -> Path:
        """The cached copy was checked when downloaded; if it rotted since, fetch a fresh (checked) one."""
        try:
            return super().verified_local_path(key)
        except StoredFileCorrupt:
            self._cache_path(key).unlink(missing_ok=True)
            return super().verified_local_path(key)

    def check_ready(self) -> None:
        self.client.head_bucket(Bucket=self.bucket)


def storage_from_config(config) -> Storage:
    if config.get("STORAGE_BACKEND", "local") == "s3":
        return S3Storage(
            config["S3_BUCKET"], cache_dir=Path(config["STORAGE_DIR"]) / "s3-cache",
            endpoint_url=config.get("S3_ENDPOINT_URL"), region=config.get("S3_REGION"),
            access_key=config.get("S3_ACCESS_KEY_ID"), secret_key=config.get("S3_SECRET_ACCESS_KEY"),
        )
    return LocalStorage(Path(config["STORAGE_DIR"]))
