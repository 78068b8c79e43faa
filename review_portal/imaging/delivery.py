"""The one way a stored DICOM file leaves the portal: as a DICOM Part 10 file whose preamble is zeros.

Originals are stored as sent, byte for byte (the key is their sha256, backups keep them). But the
128-byte preamble of PS3.10 §7.1 is free for "application profile or implementation specific" use and
is never read by a DICOM parser, so a file can carry a second identity there: a TIFF header (the
DICOM-TIFF dual-personality files), an HTML/script payload, an executable stub. Whoever opens the
delivered file with another program would meet that payload, and it would travel out of the
portal with our name on it. So every door that hands a DICOM file to a client (WADO-RS retrieve, the
de-identified export) streams it through :func:`part10_chunks`, which sends 128 zero bytes there and
the rest unchanged.

Files stored without a preamble (a bare dataset, as old equipment writes them; intake accepts them when
they carry DICOM identifiers) are not a Part 10 file at all: PS3.10 §7.1 requires preamble, "DICM"
prefix AND File Meta Information, and the application/dicom media type (PS3.18 §8.7.3.5.2, RFC 3240)
names that format. Prepending a preamble and prefix alone would produce an invalid file (the prefix
must be followed by group 0002), so such a file gets a zero preamble, the prefix, and File Meta
Information built from what intake recorded (SOP class and instance, transfer syntax); the dataset
follows byte for byte. A dataset that begins with its group 0002 but no preamble only lacks the first
two, which are prepended.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ImplicitVRLittleEndian

PREAMBLE_LENGTH = 128
PREFIX = b"DICM"
ZERO_PREAMBLE = bytes(PREAMBLE_LENGTH)
_HEAD = PREAMBLE_LENGTH + len(PREFIX)
_META_GROUP_LE = b"\x02\x00"  # the first tag of a little-endian file meta group, (0002,xxxx)


def file_meta_bytes(*, sop_class_uid: str, sop_instance_uid: str, transfer_syntax_uid: str) -> bytes:
    """File Meta Information (group 0002, explicit VR little endian, with its group length) for a bare dataset."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class_uid
    meta.MediaStorageSOPInstanceUID = sop_instance_uid
    meta.TransferSyntaxUID = transfer_syntax_uid or ImplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    out = DicomBytesIO()
    write_file_meta_info(out, meta, enforce_standard=True)
    return out.getvalue()


def part10_chunks(chunks: Iterable[bytes], *, sop_class_uid: str = "", sop_instance_uid: str = "",
                  transfer_syntax_uid: str = "") -> Iterator[bytes]:
    """The stored bytes in `chunks`, re-emitted as a Part 10 file with a zero preamble (see the module doc).

    Streams: only the first 132 bytes are looked at; everything from byte 128 on (or the whole bare
    dataset) is passed through as it comes. The UIDs are only used for a file stored without a preamble.
    """
    source = iter(chunks)
    head = b""
    for chunk in source:
        head += chunk
        if len(head) >= _HEAD:
            break
    if head[PREAMBLE_LENGTH:_HEAD] == PREFIX:
        yield ZERO_PREAMBLE + head[PREAMBLE_LENGTH:]
    elif head.startswith(_META_GROUP_LE):
        yield ZERO_PREAMBLE + PREFIX + head
    else:
        yield ZERO_PREAMBLE + PREFIX + file_meta_bytes(
            sop_class_uid=sop_class_uid, sop_instance_uid=sop_instance_uid,
            transfer_syntax_uid=transfer_syntax_uid) + head
    yield from source


def deliver_instance(storage, instance, chunk: int = 1024 * 1024) -> Iterator[bytes]:
    """A stored instance as it leaves the portal: hashed while it streams (a mismatch breaks the stream, see
    Storage.iter_verified) and with a zero preamble. Read the instance's fields before the first chunk."""
    return part10_chunks(storage.iter_verified(instance.blob_key, chunk), sop_class_uid=instance.sop_class_uid,
                         sop_instance_uid=instance.sop_instance_uid,
                         transfer_syntax_uid=instance.transfer_syntax_uid)
