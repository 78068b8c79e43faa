"""The one way a DICOM file leaves the portal (imaging.delivery) and the hashed reads of storage, without an app.

Hostile files are built here in code: a real CT slice whose 128-byte preamble holds a TIFF header, HTML and a
script (a "polyglot" that other programs would open as something else), and the same slice stored as a bare
dataset without any preamble.
"""
from __future__ import annotations

import io
import struct

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file

from review_portal.errors import StoredFileCorrupt
from review_portal.imaging.delivery import ZERO_PREAMBLE, part10_chunks
from review_portal.storage import LocalStorage

PAYLOAD = (b"II*\x00" + struct.pack("<I", 8)  # a little-endian TIFF header pointing at its first IFD
           + b"<html><body><script>alert(document.cookie)</script></body></html>")
POLYGLOT_PREAMBLE = PAYLOAD.ljust(128, b"\x90")


def polyglot_bytes() -> bytes:
    """CT_small.dcm with a TIFF/HTML/script payload in its preamble (a valid DICOM file all the same)."""
    original = open(get_testdata_file("CT_small.dcm", download=False), "rb").read()
    assert original[128:132] == b"DICM"
    return POLYGLOT_PREAMBLE + original[128:]


def bare_dataset_bytes() -> bytes:
    """The same slice written as a bare dataset (implicit VR little endian, no preamble, no file meta)."""
    ds = dcmread(get_testdata_file("CT_small.dcm", download=False))
    del ds.file_meta
    ds.preamble = None
    out = io.BytesIO()
    ds.save_as(out, implicit_vr=True, little_endian=True, enforce_file_format=False)
    data = out.getvalue()
    assert data[128:132] != b"DICM" and not data.startswith(b"\x02\x00")
    return data


def _chunks(data: bytes, size: int):
    return (data[i:i + size] for i in range(0, len(data), size))


@pytest.mark.parametrize("chunk", [1, 7, 131, 132, 4096, 10**7])
def test_the_preamble_leaves_as_zeros_and_the_rest_byte_for_byte(chunk):
    stored = polyglot_bytes()
    delivered = b"".join(part10_chunks(_chunks(stored, chunk)))
    assert delivered[:128] == ZERO_PREAMBLE
    assert delivered[128:] == stored[128:]
    assert b"<script>" not in delivered and not delivered.startswith(b"II*")
    assert dcmread(io.BytesIO(delivered)).SOPInstanceUID == dcmread(io.BytesIO(stored)).SOPInstanceUID


def test_a_bare_dataset_leaves_as_a_part10_file_with_its_dataset_unchanged():
    stored = bare_dataset_bytes()
    ds = dcmread(io.BytesIO(stored), force=True)
    delivered = b"".join(part10_chunks(_chunks(stored, 100), sop_class_uid=ds.SOPClassUID,
                                       sop_instance_uid=ds.SOPInstanceUID,
                                       transfer_syntax_uid="1.2.840.10008.1.2"))
    assert delivered[:132] == ZERO_PREAMBLE + b"DICM"
    assert delivered.endswith(stored)  # the dataset follows the generated file meta byte for byte
    read = dcmread(io.BytesIO(delivered))  # a standard Part 10 file: no force needed
    assert read.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert read.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2"
    assert read.PatientName == ds.PatientName


def test_file_meta_without_a_preamble_gets_only_the_preamble_and_prefix():
    stored = polyglot_bytes()[132:]  # starts with group 0002
    delivered = b"".join(part10_chunks(_chunks(stored, 50)))
    assert delivered == ZERO_PREAMBLE + b"DICM" + stored
    assert dcmread(io.BytesIO(delivered)).SOPInstanceUID


def _flip(store: LocalStorage, key: str, at: int) -> None:
    path = store.path(key)
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_stream_of_a_changed_file_breaks_before_its_last_chunk(tmp_path):
    store = LocalStorage(tmp_path / "store")
    data = polyglot_bytes()
    key, _ = store.put_bytes(data)
    assert b"".join(store.iter_verified(key, chunk=1000)) == data
    _flip(store, key, len(data) - 10)
    received = []
    with pytest.raises(StoredFileCorrupt):
        for chunk in store.iter_verified(key, chunk=1000):
            received.append(chunk)
    assert len(b"".join(received)) < len(data)  # the client never holds the whole (wrong) file
    with pytest.raises(StoredFileCorrupt):  # a small file: nothing at all is handed out
        list(store.iter_verified(key, chunk=len(data)))


def test_hashed_reads_refuse_a_flipped_byte(tmp_path):
    store = LocalStorage(tmp_path / "store")
    key, _ = store.put_bytes(b"%PDF-1.7 a letter")
    assert store.read_verified(key) == b"%PDF-1.7 a letter"
    with store.open_verified(key) as fh:  # hashed, then handed over from its first byte
        assert fh.read() == b"%PDF-1.7 a letter"
    assert store.verified_local_path(key) == store.path(key)
    _flip(store, key, 3)
    with pytest.raises(StoredFileCorrupt) as refused:
        store.read_verified(key)
    assert refused.value.key == key and refused.value.status_code == 503
    with pytest.raises(StoredFileCorrupt):
        store.verified_local_path(key)
    with pytest.raises(StoredFileCorrupt):
        store.open_verified(key)
    # A rebuilt derivative replaces the corrupt copy under its own key.
    assert store.put_bytes_repairing(b"%PDF-1.7 a letter") == key
    assert store.read_verified(key) == b"%PDF-1.7 a letter"
