"""The S3 backend, against moto's standalone server (a separate process speaking the S3 HTTP API)."""
import hashlib
import io
import itertools

import boto3
import pytest

from review_portal import storage as storage_mod
from review_portal.storage import S3Storage

_buckets = itertools.count()
CREDENTIALS = dict(aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")


@pytest.fixture
def bucket(s3_server):
    name = f"portal-test-{next(_buckets)}"
    boto3.client("s3", endpoint_url=s3_server, **CREDENTIALS).create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3(s3_server, bucket, tmp_path):
    return S3Storage(bucket, cache_dir=tmp_path / "cache", endpoint_url=s3_server, access_key="test", secret_key="test")


class ChunkCounter(io.BytesIO):
    reads = 0

    def read(self, n=-1):
        self.reads += 1
        return super().read(n)


def test_put_is_content_addressed_streamed_and_deduplicated(s3):
    data = b"\x00DICM" + bytes(range(256)) * 10000  # 2.5 MB: several chunks
    source = ChunkCounter(data)
    key, created = s3.put_stream(source)
    assert key == hashlib.sha256(data).hexdigest() and created
    assert source.reads > 2  # read in chunks, never all at once
    assert s3.put_bytes(data) == (key, False)
    assert s3.exists(key) and not s3.exists("0" * 64)
    with s3.open(key) as body:
        first = body.read(1000)
    assert first == data[:1000]
    assert s3.read_bytes(key) == data
    assert list(s3.iter_keys()) == [key]
    assert s3.verify(key)
    s3.check_ready()


def test_local_path_is_a_verified_cache_and_tampering_is_caught(s3):
    key, _ = s3.put_bytes(b"original report")
    path = s3.local_path(key)
    assert path.read_bytes() == b"original report"
    assert s3.local_path(key) == path
    other, _ = s3.put_bytes(b"second blob")
    s3.client.put_object(Bucket=s3.bucket, Key=s3.prefix + other, Body=b"tampered")
    assert not s3.verify(other)
    with pytest.raises(OSError, match="does not match"):
        s3.local_path(other)
    assert not list((s3.cache).glob("??/??/" + other))


def test_missing_keys_and_bad_keys(s3):
    with pytest.raises(FileNotFoundError):
        s3.open("a" * 64)
    with pytest.raises(ValueError):
        s3.open("../etc/passwd")


def test_a_failed_unit_of_work_can_remove_what_it_created(s3):
    kept, _ = s3.put_bytes(b"committed earlier")
    storage_mod.begin_journal()
    new, _ = s3.put_bytes(b"made in the failed request")
    s3.put_bytes(b"committed earlier")  # already stored: not this request's to delete
    journal = storage_mod.end_journal()
    assert journal == [new]
    for key in journal:
        s3.delete(key)
    assert s3.exists(kept) and not s3.exists(new)




def test_anchors_are_append_only_objects_under_their_own_prefix(s3):
    s3.put_anchor("000001-000000000007", b'{"hash": "a"}')
    with pytest.raises(storage_mod.AnchorExists):  # a conditional write: never replaced
        s3.put_anchor("000001-000000000007", b'{"hash": "b"}')
    s3.put_anchor("000001-000000000009", b'{"hash": "c"}')
    assert s3.list_anchors() == ["000001-000000000007", "000001-000000000009"]
    assert s3.read_anchor("000001-000000000007") == b'{"hash": "a"}'
    assert list(s3.iter_keys()) == []  # anchors are not blobs
    with pytest.raises(ValueError):
        s3.put_anchor("../escape", b"x")
