"""Key images are anchored to the image (SOP Instance UID and frame): scans added to the series later shift the
slice indexes, never the key image."""
from datetime import timedelta

from pydicom import dcmread
from pydicom.uid import generate_uid

from review_portal.imaging import services
from review_portal.imaging.models import KeyImage
from review_portal.uploads import UploadedFile
from tests.conftest import NOW
from tests.imaging_helpers import synth_series


def _more_slices_of(path, dest, positions):
    """Extra slices of the same series as `path`, at the given positions (lower ones stack first)."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for n, z in enumerate(positions):
        ds = dcmread(path)
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        x, y, _ = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y, z]
        ds.SliceLocation = z
        ds.InstanceNumber = 100 + n
        p = dest / f"extra{n}.dcm"
        ds.save_as(p, enforce_file_format=True)
        out.append(UploadedFile(p.name, p))
    return out


def test_key_image_keeps_its_image_when_scans_are_added_before_it(db, storage, make_case, tmp_path, users):
    case = make_case("in_review")
    paths = synth_series(tmp_path / "s", 4)
    services.ingest_scans(db, storage, case, [UploadedFile(p.name, p) for p in paths], by=users["referring"],
                          ip="", now=NOW)
    series = services.series_of_case(db, case.id)[0]
    slices = services.ordered_slices(series)
    marked = slices[2].instance
    reviewer = case.reviewer
    key_image = services.mark_key_image(db, storage, case, series, slice_index=2, center=40, width=400,
                                        caption="Nodule", by=reviewer, ip="", now=NOW + timedelta(minutes=5))
    assert (key_image.instance_id, key_image.sop_instance_uid, key_image.frame) == (marked.id, marked.sop_instance_uid, 0)
    before = services.key_images_for_page(db, case.id)[0]["slice_label"]
    assert before.startswith("Slice 3 of 4")

    # Two slices below every existing one: every index moves up by two.
    services.ingest_scans(db, storage, case, _more_slices_of(paths[0], tmp_path / "x", [-10.0, -7.5]),
                          by=users["referring"], ip="", now=NOW + timedelta(minutes=10))
    db.expire_all()
    series = services.series_of_case(db, case.id)[0]
    slices = services.ordered_slices(series)
    assert len(slices) == 6
    assert slices[2].instance.id != marked.id  # the old index now names another image
    key_image = db.get(KeyImage, key_image.id)
    page = services.key_images_for_page(db, case.id)[0]
    assert page["slice_label"].startswith("Slice 5 of 6")
    assert slices[4].instance.id == key_image.instance_id == marked.id

    # Marking the image at its new index updates the same key image instead of adding a second one.
    again = services.mark_key_image(db, storage, case, series, slice_index=4, center=50, width=350, caption="Nodule, re-read",
                                    by=reviewer, ip="", now=NOW + timedelta(minutes=20))
    assert again.id == key_image.id and again.slice_index == 4
    # Marking the image now at the old index is a different key image.
    other = services.mark_key_image(db, storage, case, series, slice_index=2, center=40, width=400, caption="",
                                    by=reviewer, ip="", now=NOW + timedelta(minutes=21))
    assert other.id != key_image.id and other.instance_id == slices[2].instance.id

    # Named by SOP Instance UID, as the viewer does.
    by_uid = services.mark_key_image(db, storage, case, series, slice_index=0, center=40, width=400, caption="by uid",
                                     sop_instance_uid=marked.sop_instance_uid, frame=0, by=reviewer, ip="",
                                     now=NOW + timedelta(minutes=22))
    assert by_uid.id == key_image.id and by_uid.caption == "by uid"


def test_key_image_png_is_rebuilt_from_its_anchor(db, storage, make_case, tmp_path, users):
    case = make_case("in_review")
    paths = synth_series(tmp_path / "s", 3)
    services.ingest_scans(db, storage, case, [UploadedFile(p.name, p) for p in paths], by=users["referring"],
                          ip="", now=NOW)
    series = services.series_of_case(db, case.id)[0]
    key_image = services.mark_key_image(db, storage, case, series, slice_index=1, center=40, width=400, caption="",
                                        by=case.reviewer, ip="", now=NOW + timedelta(minutes=5))
    original = storage.read_bytes(key_image.png_key)
    services.ingest_scans(db, storage, case, _more_slices_of(paths[0], tmp_path / "x", [-10.0]),
                          by=users["referring"], ip="", now=NOW + timedelta(minutes=10))
    db.expire_all()
    key_image = db.get(KeyImage, key_image.id)
    key_image.png_key = "0" * 64  # the stored copy is gone: rebuilt from the original at the anchor
    assert services.key_image_png(db, storage, key_image) == original
