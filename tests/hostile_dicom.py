"""Hostile DICOM files and zip archives, built in code (nothing binary is committed): small files that
declare far more than they hold, a deflate bomb, zip bombs, and values past their database columns."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from pydicom import config as pydicom_config
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    RLELossless,
    generate_uid,
)


def image(rows: int = 16, columns: int = 16, frames: int = 1, **attrs) -> Dataset:
    """A small valid 16-bit CT image (`frames` frames of real pixel data)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Modality = "CT"
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    if frames > 1:
        ds.NumberOfFrames = frames
    pixels = (np.arange(rows * columns * frames, dtype=np.uint32) % 4000).astype(np.uint16)
    ds.PixelData = pixels.tobytes()
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    return ds


def save(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with pydicom_config.disable_value_validation():
        ds.save_as(path, enforce_file_format=True)
    return path


def declaring_frames(path: Path, frames: int) -> Path:
    """A tiny uncompressed file (one 16 x 16 frame of pixels) whose header declares `frames` frames."""
    ds = image()
    ds.NumberOfFrames = frames
    return save(ds, path)


def huge_frame(path: Path) -> Path:
    """Rows and Columns 65535 (a 4-gigapixel frame) over 10 bytes of pixel data."""
    ds = image()
    ds.Rows = ds.Columns = 65535
    ds.PixelData = b"\0" * 10
    return save(ds, path)


def encapsulated_declaring_frames(path: Path, frames: int, *, offset_table: bool = False) -> Path:
    """RLE Lossless data holding ONE frame (one fragment) whose header declares `frames` frames."""
    ds = image()
    ds.compress(RLELossless)
    [fragment] = _fragments(ds.PixelData)
    ds.PixelData = encapsulate([fragment], has_bot=offset_table)
    ds.NumberOfFrames = frames
    return save(ds, path)


def encapsulated_frames(path: Path, frames: int) -> Path:
    """A genuine RLE Lossless multi-frame file: `frames` frames, one fragment each, no offset table."""
    ds = image(frames=frames)
    ds.compress(RLELossless)
    return save(ds, path)


def _fragments(data: bytes) -> list[bytes]:
    from pydicom.encaps import generate_fragments

    buffer = io.BytesIO(data)
    buffer.seek(4)
    buffer.seek(int.from_bytes(buffer.read(4), "little"), 1)  # past the basic offset table
    return list(generate_fragments(buffer))


def deflate_bomb(path: Path, inflated_bytes: int) -> Path:
    """Deflated Explicit VR Little Endian: `inflated_bytes` of zero pixels that deflate ~1000:1."""
    side = 1024
    frames = max(inflated_bytes // (side * side * 2), 1)
    ds = image(rows=side, columns=side)
    ds.NumberOfFrames = frames
    ds.PixelData = bytes(side * side * 2 * frames)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    return save(ds, path)


def zip_of(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return path
