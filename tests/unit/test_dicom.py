"""Tests for the review_portal.imaging reading, decoding, inspection, archive and rendering modules
against pydicom's bundled test files.

Only pydicom's own sample data is used (no patient data). Files are always
looked up with download=False: there is no network, and a missing file must
skip a test rather than hang it.
"""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import apply_modality_lut
from pydicom.uid import (
    UID,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    generate_uid,
)

from review_portal.imaging.archives import UploadRejected, expand_zip
from review_portal.imaging.inspection import InstanceInfo, inspect_dicom, sort_key
from review_portal.imaging.reading import DicomRejected
from review_portal.imaging.rendering import CT_PRESETS, make_thumbnail, render_frame


def sample(name: str) -> Path:
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"pydicom test file {name} is not available offline")
    return Path(path)


def png_array(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return np.asarray(image)


def write_copy(tmp_path: Path, name: str, source: str = "CT_small.dcm", **changes) -> Path:
    ds = dcmread(sample(source))
    for keyword, value in changes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    out = tmp_path / name
    ds.save_as(out)
    return out


def rejection_reason(path: Path) -> str:
    with pytest.raises(DicomRejected) as excinfo:
        inspect_dicom(path)
    assert excinfo.value.reason
    return excinfo.value.reason


# ---------------------------------------------------------------- inspect


def test_ct_small_metadata():
    path = sample("CT_small.dcm")
    ref = dcmread(path)
    info = inspect_dicom(path)

    assert isinstance(info, InstanceInfo)
    assert info.sop_instance_uid == ref.SOPInstanceUID
    assert info.series_instance_uid == ref.SeriesInstanceUID
    assert info.study_instance_uid == ref.StudyInstanceUID
    assert info.modality == "CT"
    assert (info.rows, info.columns) == (128, 128)
    assert info.number_of_frames == 1
    assert info.photometric_interpretation == "MONOCHROME2"
    assert info.transfer_syntax_uid == "1.2.840.10008.1.2.1"
    assert info.study_date is not None and info.study_date.isoformat() == "2004-01-19"
    assert info.series_number == int(ref.SeriesNumber)
    assert info.instance_number == int(ref.InstanceNumber)
    assert info.window_center is None and info.window_width is None

    iop = np.array(ref.ImageOrientationPatient, dtype=float)
    expected = float(np.dot(np.array(ref.ImagePositionPatient, dtype=float), np.cross(iop[:3], iop[3:])))
    assert info.slice_position == pytest.approx(expected)


def test_window_values_come_from_file():
    info = inspect_dicom(sample("MR_small.dcm"))
    assert (info.window_center, info.window_width) == (600.0, 1600.0)
    # Several presets stored: the first one is reported.
    info = inspect_dicom(sample("examples_overlay.dcm"))
    ref = dcmread(sample("examples_overlay.dcm"), stop_before_pixels=True)
    assert info.window_center == float(ref.WindowCenter[0])
    assert info.window_width == float(ref.WindowWidth[0])


def test_text_file_is_not_dicom(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("Patient seems fine.\n" * 50)
    assert rejection_reason(path) == "not a DICOM file"


def test_random_bytes_are_rejected_not_crashing(tmp_path):
    rng = np.random.default_rng(7)
    for i in range(20):
        path = tmp_path / f"noise{i}.dcm"
        path.write_bytes(rng.integers(0, 256, size=int(rng.integers(1, 4000)), dtype=np.uint8).tobytes())
        rejection_reason(path)


def test_empty_file_rejected(tmp_path):
    path = tmp_path / "empty.dcm"
    path.write_bytes(b"")
    assert "empty" in rejection_reason(path)


def test_truncated_copy_rejected(tmp_path):
    path = tmp_path / "truncated.dcm"
    path.write_bytes(sample("CT_small.dcm").read_bytes()[:1000])
    assert "truncated" in rejection_reason(path)


def test_truncated_inside_pixel_data_rejected(tmp_path):
    data = sample("CT_small.dcm").read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[:-500])
    assert "truncated" in rejection_reason(path)
    # pydicom ships a real-world example as well
    assert "truncated" in rejection_reason(sample("MR_truncated.dcm"))


def test_short_pixel_data_is_size_mismatch(tmp_path):
    ds = dcmread(sample("CT_small.dcm"))
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
    path = tmp_path / "short.dcm"
    ds.save_as(path)
    assert rejection_reason(path) == "pixel data size does not match the header"
    with pytest.raises(DicomRejected):
        render_frame(path)


@pytest.mark.parametrize(
    "keyword, label",
    [
        ("SOPInstanceUID", "SOP Instance UID"),
        ("SeriesInstanceUID", "Series Instance UID"),
        ("StudyInstanceUID", "Study Instance UID"),
    ],
)
def test_missing_uid_rejected(tmp_path, keyword, label):
    path = write_copy(tmp_path, "nouid.dcm", **{keyword: None})
    assert rejection_reason(path) == f"missing {label}"


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
def test_uid_with_path_characters_rejected(tmp_path):
    path = write_copy(tmp_path, "evil_uid.dcm", SeriesInstanceUID="1.2/../../etc")
    assert rejection_reason(path) == "malformed Series Instance UID"


def test_objects_without_pixels_rejected(tmp_path):
    reason = rejection_reason(sample("rtstruct.dcm"))
    assert reason.startswith("no image data")
    assert "RT Structure Set" in reason
    path = write_copy(tmp_path, "nopix.dcm", PixelData=None, Rows=None, Columns=None)
    assert rejection_reason(path).startswith("no image data")


def test_undecodable_compressed_data_rejected_at_upload(tmp_path):
    ds = dcmread(sample("MR_small_jp2klossless.dcm"))
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"\x00" * 60])  # SOC/SIZ then junk
    path = tmp_path / "badj2k.dcm"
    ds.save_as(path)
    assert ds.file_meta.TransferSyntaxUID == JPEG2000Lossless
    assert "could not be decoded" in rejection_reason(path)


def test_transfer_syntax_without_decoder_rejected(tmp_path):
    ds = dcmread(sample("MR_small_jp2klossless.dcm"))
    ds.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.4.100")  # MPEG2 video
    path = tmp_path / "mpeg.dcm"
    ds.save_as(path)
    reason = rejection_reason(path)
    assert "compression" in reason and "MPEG2" in reason


def test_file_without_preamble_accepted(tmp_path):
    ds = dcmread(sample("CT_small.dcm"))
    ds.file_meta = FileMetaDataset()
    ds.preamble = None
    path = tmp_path / "bare.dcm"
    ds.save_as(path, implicit_vr=True, little_endian=True)
    assert path.read_bytes()[128:132] != b"DICM"

    info = inspect_dicom(path)
    assert info.sop_instance_uid == ds.SOPInstanceUID
    assert info.transfer_syntax_uid == "1.2.840.10008.1.2"
    assert np.array_equal(png_array(render_frame(path)), png_array(render_frame(sample("CT_small.dcm"))))


# ---------------------------------------------------------------- decoding


@pytest.mark.parametrize(
    "name", ["MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm"]
)
def test_lossless_variants_render_identically_to_uncompressed(name):
    path = sample(name)
    info = inspect_dicom(path)
    assert (info.rows, info.columns) == (64, 64)
    reference = png_array(render_frame(sample("MR_small.dcm")))
    rendered = png_array(render_frame(path))
    assert rendered.shape == (64, 64)
    assert np.array_equal(rendered, reference)


def test_jpeg2000_renders_with_right_dimensions():
    path = sample("JPEG2000.dcm")
    info = inspect_dicom(path)
    arr = png_array(render_frame(path))
    assert arr.shape == (info.rows, info.columns) == (1024, 256)
    assert arr.min() == 0 and arr.max() == 255  # min/max stretch: no window in file


def test_jpeg_baseline_ybr_renders_as_rgb():
    path = sample("SC_rgb_jpeg_dcmtk.dcm")
    info = inspect_dicom(path)
    assert info.photometric_interpretation == "YBR_FULL"
    image = Image.open(io.BytesIO(render_frame(path)))
    assert image.mode == "RGB" and image.size == (100, 100)
    # Same picture losslessly stored as RGB: a missing or doubled YCbCr
    # conversion would be off by far more than JPEG noise.
    reference = png_array(render_frame(sample("SC_rgb_rle.dcm"))).astype(int)
    assert np.abs(np.asarray(image).astype(int) - reference).mean() < 3
    assert tuple(np.asarray(image)[0, 0]) == pytest.approx((255, 0, 0), abs=3)


def test_jpeg_lossless_process14_file():
    path = sample("SC_rgb_jpeg_gdcm.dcm")
    info = inspect_dicom(path)
    assert info.transfer_syntax_uid == JPEGLosslessSV1
    rendered = png_array(render_frame(path))
    assert rendered.shape == (100, 100, 3)
    assert np.array_equal(rendered, png_array(render_frame(sample("SC_rgb_rle.dcm"))))


def test_16_bit_rgb_scaled_to_8_bit():
    rendered = png_array(render_frame(sample("SC_rgb_rle_16bit.dcm"))).astype(int)
    reference = png_array(render_frame(sample("SC_rgb_rle.dcm"))).astype(int)
    assert np.abs(rendered - reference).max() <= 1


def test_palette_colour_renders_as_rgb():
    image = Image.open(io.BytesIO(render_frame(sample("examples_palette.dcm"))))
    assert image.mode == "RGB" and image.size == (800, 350)


def test_deflated_transfer_syntax_renders():
    path = sample("image_dfl.dcm")
    assert inspect_dicom(path).transfer_syntax_uid == "1.2.840.10008.1.2.1.99"
    assert png_array(render_frame(path)).shape == (512, 512)


def test_jpeg_output_and_downscale_keeps_aspect():
    data = render_frame(sample("JPEG2000.dcm"), fmt="jpeg", max_size=128)
    assert data[:2] == b"\xff\xd8"
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG" and image.size == (32, 128)


def test_bad_render_arguments():
    path = sample("CT_small.dcm")
    with pytest.raises(ValueError):
        render_frame(path, fmt="gif")
    with pytest.raises(ValueError):
        render_frame(path, center=40)
    with pytest.raises(ValueError):
        render_frame(path, center=40, width=0)
    with pytest.raises(ValueError):
        render_frame(path, center=float("nan"), width=400)


# ---------------------------------------------------------------- windowing


def test_explicit_window_is_linear_on_hounsfield_units():
    path = sample("CT_small.dcm")
    ds = dcmread(path)
    hu = apply_modality_lut(ds.pixel_array, ds)
    center, width = CT_PRESETS["soft_tissue"]
    expected = np.clip(np.rint((hu - (center - width / 2)) / width * 255), 0, 255)
    rendered = png_array(render_frame(path, center=center, width=width))
    assert np.abs(rendered.astype(int) - expected.astype(int)).max() <= 1


def test_narrow_and_wide_window_differ():
    path = sample("CT_small.dcm")
    narrow = png_array(render_frame(path, center=40, width=80))
    wide = png_array(render_frame(path, center=40, width=2000))
    saturated = lambda a: np.mean((a == 0) | (a == 255))  # noqa: E731
    assert saturated(narrow) > saturated(wide) + 0.2
    assert narrow.std() > wide.std()
    assert not np.array_equal(narrow, wide)


def test_default_uses_file_window_then_min_max():
    path = sample("MR_small.dcm")
    ds = dcmread(path)
    x = ds.pixel_array.astype(float)
    c, w = float(ds.WindowCenter), float(ds.WindowWidth)
    # DICOM PS3.3 C.11.2.1.2.1 LINEAR window
    expected = np.clip((x - (c - 0.5)) / (w - 1) + 0.5, 0, 1) * 255
    rendered = png_array(render_frame(path)).astype(float)
    assert np.abs(rendered - expected).max() <= 1.0

    # CT_small has no window: stretched to its own range.
    ct = png_array(render_frame(sample("CT_small.dcm")))
    assert ct.min() == 0 and ct.max() == 255


def test_monochrome1_is_inverted(tmp_path):
    original = sample("CT_small.dcm")
    inverted = write_copy(tmp_path, "mono1.dcm", PhotometricInterpretation="MONOCHROME1")
    a = png_array(render_frame(original)).astype(int)
    b = png_array(render_frame(inverted)).astype(int)
    assert abs(a.mean() + b.mean() - 255) < 0.01
    assert np.array_equal(b, 255 - a)
    # Inversion happens after an explicit window too.
    a = png_array(render_frame(original, center=40, width=400)).astype(int)
    b = png_array(render_frame(inverted, center=40, width=400)).astype(int)
    assert np.array_equal(b, 255 - a)


def test_colour_ignores_window():
    path = sample("SC_rgb_rle.dcm")
    assert render_frame(path) == render_frame(path, center=0, width=10)


def test_presets():
    assert CT_PRESETS == {
        "soft_tissue": (40, 400),
        "lung": (-600, 1500),
        "bone": (400, 1800),
        "brain": (40, 80),
        "liver": (60, 160),
        "mediastinum": (50, 350),
    }


# ---------------------------------------------------------------- multi-frame


def test_multiframe_ybr_frames():
    path = sample("examples_ybr_color.dcm")
    info = inspect_dicom(path)
    assert info.number_of_frames == 30
    assert info.photometric_interpretation == "YBR_FULL_422"

    image = Image.open(io.BytesIO(render_frame(path, 29)))
    assert image.mode == "RGB" and image.size == (320, 240)
    # Mostly grey ultrasound: with correct YCbCr->RGB the channel means
    # agree; left in YCbCr, Cb/Cr would sit near 128 while Y is dark.
    means = np.asarray(image).reshape(-1, 3).mean(axis=0)
    assert means.max() - means.min() < 5

    for bad in (30, -1, 10**9):
        with pytest.raises(DicomRejected) as excinfo:
            render_frame(path, bad)
        assert "frame" in excinfo.value.reason


def test_frames_decode_individually():
    path = sample("examples_ybr_color.dcm")
    assert render_frame(path, 0) != render_frame(path, 29)


def test_out_of_range_frame_on_single_frame_file():
    with pytest.raises(DicomRejected):
        render_frame(sample("CT_small.dcm"), 1)


def test_thumbnails():
    thumb = Image.open(io.BytesIO(make_thumbnail(sample("examples_ybr_color.dcm"))))
    assert thumb.format == "PNG" and thumb.size == (128, 96)
    # the middle frame (15), not the first
    middle = Image.open(io.BytesIO(render_frame(sample("examples_ybr_color.dcm"), 15, max_size=128)))
    assert np.array_equal(np.asarray(thumb), np.asarray(middle))

    thumb = Image.open(io.BytesIO(make_thumbnail(sample("CT_small.dcm"), size=64)))
    assert thumb.size == (64, 64) and thumb.mode == "L"


# ---------------------------------------------------------------- ordering


def test_sort_key_orders_by_position_not_instance_number(tmp_path):
    z_values = [12.5, -30.0, 0.0, 47.25, -2.5]
    by_position = sorted(z_values)
    infos = []
    for i, z in enumerate(z_values):
        # Instance numbers deliberately run against anatomy.
        path = write_copy(
            tmp_path,
            f"slice{i}.dcm",
            SOPInstanceUID=generate_uid(),
            ImagePositionPatient=[-158.0, -179.0, z],
            ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
            InstanceNumber=100 - by_position.index(z),
        )
        infos.append(inspect_dicom(path))
    ordered = sorted(infos, key=sort_key)
    assert [info.slice_position for info in ordered] == by_position
    numbers = [info.instance_number for info in infos]
    assert [info.instance_number for info in ordered] == sorted(numbers, reverse=True)


def test_sort_key_uses_normal_for_oblique_and_falls_back_to_instance_number(tmp_path):
    # Sagittal: slices advance along x; z is constant and must not matter.
    sag = [
        inspect_dicom(
            write_copy(
                tmp_path,
                f"sag{x}.dcm",
                SOPInstanceUID=generate_uid(),
                ImagePositionPatient=[x, 0.0, 5.0],
                ImageOrientationPatient=[0, 1, 0, 0, 0, -1],
            )
        )
        for x in (20.0, -10.0, 5.0)
    ]
    # row (0,1,0) x column (0,0,-1) = (-1,0,0): position is -x.
    assert [i.slice_position for i in sag] == [-20.0, 10.0, -5.0]
    assert [i.slice_position for i in sorted(sag, key=sort_key)] == [-20.0, -5.0, 10.0]

    unpositioned = [
        inspect_dicom(
            write_copy(
                tmp_path,
                f"np{n}.dcm",
                SOPInstanceUID=generate_uid(),
                ImagePositionPatient=None,
                InstanceNumber=n,
            )
        )
        for n in (3, 1, 2)
    ]
    assert all(i.slice_position is None for i in unpositioned)
    assert [i.instance_number for i in sorted(unpositioned, key=sort_key)] == [1, 2, 3]


# ---------------------------------------------------------------- zip


def make_zip(path: Path, entries: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in entries.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return path


def test_expand_zip_normal(tmp_path):
    ct = sample("CT_small.dcm").read_bytes()
    mr = sample("MR_small.dcm").read_bytes()
    archive = make_zip(
        tmp_path / "study.zip",
        {
            "STUDY/": b"",
            "STUDY/SERIES1/IM1": ct,
            "STUDY/SERIES2/IM1.dcm": mr,
            "__MACOSX/STUDY/._IM1": b"junk",
            "STUDY/.DS_Store": b"junk",
        },
    )
    dest = tmp_path / "out"
    result = expand_zip(archive, dest)

    assert [name for name, _ in result] == ["STUDY/SERIES1/IM1", "STUDY/SERIES2/IM1.dcm"]
    for name, path in result:
        assert path.is_file() and dest.resolve() in path.parents
    assert result[0][1].read_bytes() == ct
    assert result[1][1].read_bytes() == mr
    assert inspect_dicom(result[0][1]).modality == "CT"
    assert not (dest / "__MACOSX").exists()


@pytest.mark.parametrize(
    "name", ["../evil.dcm", "STUDY/../../evil.dcm", "/tmp/evil.dcm", "C:/evil.dcm", "..\\evil.dcm"]
)
def test_expand_zip_refuses_escaping_names(tmp_path, name):
    archive = make_zip(tmp_path / "evil.zip", {"ok.dcm": b"fine", name: b"pwned"})
    assert name in zipfile.ZipFile(archive).namelist()
    dest = tmp_path / "deep" / "out"
    with pytest.raises(UploadRejected) as excinfo:
        expand_zip(archive, dest)
    assert excinfo.value.reason
    assert not (tmp_path / "evil.dcm").exists() and not (tmp_path / "deep" / "evil.dcm").exists()
    assert not (dest / "ok.dcm").exists()  # vetted before anything is written


def test_expand_zip_allows_dotdot_that_stays_inside(tmp_path):
    archive = make_zip(tmp_path / "a.zip", {"a/../b.dcm": b"data"})
    [(name, path)] = expand_zip(archive, tmp_path / "out")
    assert name == "a/../b.dcm" and path == (tmp_path / "out" / "b.dcm").resolve()


def test_expand_zip_refuses_symlink(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("link.dcm")
        info.create_system = 3
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UploadRejected) as excinfo:
        expand_zip(archive, tmp_path / "out")
    assert "link" in excinfo.value.reason


def test_expand_zip_refuses_zip_bomb(tmp_path):
    archive = tmp_path / "bomb.zip"
    chunk = b"\0" * (1024 * 1024)
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("zeros.dcm", "w") as entry:
            for _ in range(50):
                entry.write(chunk)
    assert archive.stat().st_size < 200_000
    with pytest.raises(UploadRejected) as excinfo:
        expand_zip(archive, tmp_path / "out")
    assert "bomb" in excinfo.value.reason
    assert not (tmp_path / "out" / "zeros.dcm").exists()


def test_small_compressible_entries_are_not_bombs(tmp_path):
    # A blank slice deflates ~1000:1 but is tiny in absolute terms.
    archive = make_zip(tmp_path / "blank.zip", {"blank.dcm": b"\0" * 200_000})
    [(_, path)] = expand_zip(archive, tmp_path / "out")
    assert path.stat().st_size == 200_000


def test_expand_zip_limits(tmp_path):
    archive = make_zip(tmp_path / "many.zip", {f"f{i}.dcm": b"x" * 1000 for i in range(5)})
    with pytest.raises(UploadRejected):
        expand_zip(archive, tmp_path / "a", max_entries=4)
    with pytest.raises(UploadRejected):
        expand_zip(archive, tmp_path / "b", max_total_bytes=4999)
    assert len(expand_zip(archive, tmp_path / "c", max_entries=5, max_total_bytes=5000)) == 5


def test_expand_zip_header_lying_about_size(tmp_path):
    payload = bytes(range(256)) * 40  # 10240 bytes, stored
    archive = make_zip(tmp_path / "liar.zip", {"first.dcm": b"ok", "liar.dcm": payload}, zipfile.ZIP_STORED)
    raw = bytearray(archive.read_bytes())
    # Shrink the declared uncompressed size of "liar.dcm" in both the local
    # header (offset 22) and the central directory record (offset 24).
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = raw.find(signature)
        start = raw.find(signature, start + 1)  # second entry
        assert struct.unpack_from("<I", raw, start + offset)[0] == len(payload)
        struct.pack_into("<I", raw, start + offset, 100)
    archive.write_bytes(bytes(raw))

    dest = tmp_path / "out"
    # zipfile stops at the declared size and then fails the CRC; the low
    # limit makes the byte counting catch it too if that ever changed.
    with pytest.raises(UploadRejected):
        expand_zip(archive, dest, max_total_bytes=1000)
    # partial output is cleaned up
    assert not any(p.is_file() for p in dest.rglob("*"))


def test_expand_zip_duplicate_names(tmp_path):
    archive = tmp_path / "dup.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.dcm", b"one")
        with pytest.warns(UserWarning):
            zf.writestr("a.dcm", b"two")
    with pytest.raises(UploadRejected):
        expand_zip(archive, tmp_path / "out")


def test_not_a_zip(tmp_path):
    path = tmp_path / "upload.zip"
    path.write_bytes(sample("CT_small.dcm").read_bytes())
    with pytest.raises(UploadRejected) as excinfo:
        expand_zip(path, tmp_path / "out")
    assert excinfo.value.reason == "not a valid .zip archive"


# ---------------------------------------------------------------- fast lossless JPEG decoding


@pytest.mark.parametrize(
    "name", ["JPEG-LL.dcm", "JPGLosslessP14SV1_1s_1f_8b.dcm", "SC_rgb_jpeg_gdcm.dcm"]
)
def test_lossless_jpeg_decodes_exactly_as_the_reference_plugin(name):
    """libjpeg-turbo (greyscale) or the fallback (colour) gives pylibjpeg's samples, dtype and all."""
    from pydicom.pixels import pixel_array

    from review_portal.imaging.decoding import _decode_frame
    from review_portal.imaging.reading import _load

    path = sample(name)
    reference = pixel_array(path, index=0, decoding_plugin="pylibjpeg")
    decoded = _decode_frame(_load(Path(path)), 0)
    assert decoded.dtype == reference.dtype
    assert np.array_equal(decoded, reference)


def test_lossless_jpeg_plugin_is_preferred_for_greyscale():
    from review_portal.imaging import decoders

    assert decoders.preferred_plugin(JPEGLosslessSV1) == decoders.PLUGIN
    assert decoders.preferred_plugin(JPEG2000Lossless) is None  # openjpeg stays in charge of J2K


def test_corrupt_lossless_jpeg_still_rejected_at_upload(tmp_path):
    ds = dcmread(sample("JPEG-LL.dcm"))
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xc3" + b"\x00" * 60])  # SOI/SOF3 then junk
    path = tmp_path / "badll.dcm"
    ds.save_as(path)
    assert "could not be decoded" in rejection_reason(path)


def test_rendered_frames_are_cached_read_only_and_bounded(monkeypatch):
    from review_portal.imaging import decoding

    monkeypatch.setattr(decoding, "_FRAME_CACHE", type(decoding._FRAME_CACHE)())
    monkeypatch.setattr(decoding, "_frame_cache_used", 0)
    path = Path(sample("JPEG-LL.dcm"))
    first = render_frame(path, center=40.0, width=400.0)
    frame_bytes = 1024 * 256 * 2
    monkeypatch.setattr(decoding, "_FRAME_CACHE_BYTES", frame_bytes * 4)
    again = render_frame(path, center=40.0, width=400.0)
    other_window = render_frame(path, center=0.0, width=2000.0)
    assert first == again != other_window
    (cached,) = decoding._FRAME_CACHE.values()
    assert not cached.flags.writeable
    # a different window re-renders from the cache and yields the same bytes as a cold decode
    decoding._FRAME_CACHE.clear()
    monkeypatch.setattr(decoding, "_frame_cache_used", 0)
    assert render_frame(path, center=0.0, width=2000.0) == other_window
    for n in range(6):  # more frames than the budget holds: the oldest go
        decoding._frame_cache_put((f"x{n}", 0, 0, 0), np.zeros((1024, 256), np.int16))
    assert len(decoding._FRAME_CACHE) == 4 and decoding._frame_cache_used <= frame_bytes * 4
