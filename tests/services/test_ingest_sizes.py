"""Ingest of hostile uploads next to good files: declared sizes the data does not back are refused with a reason,
a value past its column never loses the rest of the upload (a SAVEPOINT per file), and frame counts read back
from the database are clamped wherever slices are listed. Run on SQLite and PostgreSQL."""
from __future__ import annotations

import pytest
from sqlalchemy import update

from review_portal.imaging import indexing, services
from review_portal.imaging.limits import DEFAULT
from review_portal.imaging.models import Instance
from review_portal.uploads import UploadedFile
from tests.conftest import NOW
from tests.hostile_dicom import (
    declaring_frames,
    deflate_bomb,
    encapsulated_declaring_frames,
    encapsulated_frames,
    huge_frame,
    image,
    save,
    zip_of,
)
from tests.imaging_helpers import synth_series


@pytest.fixture
def app_overrides():
    # Small budgets keep the hostile files small and the tests fast; the code paths are the production ones.
    return {"IMAGE_MAX_FRAMES": 50, "IMAGE_MAX_INFLATED_BYTES": 1024 * 1024, "ZIP_RATIO_MIN_BYTES": 64 * 1024,
            "ZIP_ARCHIVE_RATIO_MIN_BYTES": 2 * 1024 * 1024}


def ingest(db, storage, case, users, paths):
    job = services.create_ingest(db, storage, case, [UploadedFile(p.name, p) for p in paths], by=users["referring"],
                                 ip="", now=NOW)
    services.process_ingest(db, storage, job.id, now=NOW)
    return job, dict(services.IngestReport.of(job).rejected)


def test_hostile_sizes_are_refused_and_the_good_files_sent_alongside_are_kept(db, storage, make_case, users, tmp_path):
    case = make_case("assigned")
    good = synth_series(tmp_path / "good", 3)
    hostile = [
        declaring_frames(tmp_path / "billions.dcm", 2_000_000_000),
        huge_frame(tmp_path / "huge.dcm"),
        encapsulated_declaring_frames(tmp_path / "million.dcm", 10**6),
        encapsulated_declaring_frames(tmp_path / "five.dcm", 5),
        deflate_bomb(tmp_path / "bomb.dcm", 16 * 1024 * 1024),
        zip_of(tmp_path / "zipbomb.zip", {"bomb.dcm": bytes(1024 * 1024)}),
        zip_of(tmp_path / "many.zip", {f"e{n}.dcm": bytes(60 * 1024) for n in range(60)}),
    ]
    multi = encapsulated_frames(tmp_path / "multi.dcm", 4)
    job, rejected = ingest(db, storage, case, users, good + hostile + [multi])
    assert rejected == {
        "billions.dcm": "the header declares 2000000000 frames; the portal accepts at most 50 per file",
        "huge.dcm": "the image is too large to display (65535 x 65535)",
        "million.dcm": "the header declares 1000000 frames; the portal accepts at most 50 per file",
        "five.dcm": "the header declares 5 frames but the image data holds 1",
        "bomb.dcm": "the compressed (deflated) file expands to more than 1 MB, the most the portal accepts",
        "zipbomb.zip": "the archive looks like a zip bomb ('bomb.dcm' compresses suspiciously well)",
        "many.zip": "the archive looks like a zip bomb (its files compress suspiciously well)",
    }
    assert job.report["accepted"] == 4
    frames = sorted(i.frames for s in services.series_of_case(db, case.id) for i in s.instances)
    assert frames == [1, 1, 1, 4]  # the verified count is what is stored


def test_numbers_past_32_bits_are_dropped_and_the_file_kept(db, storage, make_case, users, tmp_path):
    case = make_case("assigned")
    good = synth_series(tmp_path / "good", 2)
    big_instance = save(image(InstanceNumber=2**40), tmp_path / "big_instance.dcm")
    huge_instance = save(image(InstanceNumber=2**70), tmp_path / "huge_instance.dcm")
    big_series = save(image(SeriesNumber=-(2**40)), tmp_path / "big_series.dcm")
    long_text = save(image(StudyDescription="CHEST CT\x00", SeriesDescription="x" * 300), tmp_path / "long.dcm")
    # A NUL inside an indexed value is refused (the control-character rule); padding at the end is stripped.
    nul_text = save(image(StudyDescription="CHEST\x00CT"), tmp_path / "nul.dcm")
    job, rejected = ingest(db, storage, case, users,
                           good + [big_instance, huge_instance, big_series, long_text, nul_text])
    assert rejected == {"nul.dcm": "the Study Description contains a control character (U+0000) inside its value"}
    assert job.report["accepted"] == 6
    by_name = {i.original_filename: i for s in services.series_of_case(db, case.id) for i in s.instances}
    assert by_name["big_instance.dcm"].instance_number is None
    assert by_name["huge_instance.dcm"].instance_number is None
    assert by_name["big_series.dcm"].series.series_number is None
    assert by_name["long.dcm"].series.study.description == "CHEST CT"
    assert by_name["long.dcm"].series.description == "x" * 200


def test_a_value_the_database_refuses_loses_only_its_own_file(db, storage, make_case, users, tmp_path, monkeypatch):
    # Should a value slip past the fitting, its SAVEPOINT is rolled back: one rejection, the rest kept.
    monkeypatch.setattr(indexing, "fit", lambda model, values: values)
    case = make_case("assigned")
    good = synth_series(tmp_path / "good", 2)
    bad = save(image(InstanceNumber=2**70), tmp_path / "bad.dcm")  # PostgreSQL and SQLite both refuse it
    bad_new_series = save(image(SeriesNumber=2**70), tmp_path / "bad_series.dcm")  # its study and series undone too
    later = synth_series(tmp_path / "later", 2)
    job, rejected = ingest(db, storage, case, users, good + [bad, bad_new_series] + later)
    reason = "a value in the file does not fit the image index (e.g. a number out of range)"
    assert rejected == {"bad.dcm": reason, "bad_series.dcm": reason}
    assert job.report["accepted"] == 4 and job.status == "done"
    names = sorted(i.original_filename for s in services.series_of_case(db, case.id) for i in s.instances)
    assert len(names) == 4 and "bad.dcm" not in names
    assert len(services.series_of_case(db, case.id)) == 2
    db.commit()  # the kept files are really written


def test_a_frame_count_tampered_in_the_database_is_clamped_in_slices_and_the_letter(db, storage, make_case, users, tmp_path):
    case = make_case("in_review")
    ingest(db, storage, case, users, synth_series(tmp_path / "s", 3))
    [series] = services.series_of_case(db, case.id)
    first = services.ordered_slices(series)[0]
    services.mark_key_image(db, storage, case, series, slice_index=2, center=40, width=400, caption="",
                            by=users["reviewer"], ip="", now=NOW)
    db.execute(update(Instance).where(Instance.id == first.instance.id).values(frames=10**6))
    db.expire_all()
    [series] = services.series_of_case(db, case.id)
    slices = services.ordered_slices(series)
    assert len(slices) == DEFAULT.max_frames + 2
    assert len(services.ordered_instances(series)) == 3
    [key_image] = services.key_images_for_letter(db, case.id)
    # The key image is anchored to its instance, not to an index: it stays on the third file, now the last slice.
    assert key_image["slice_label"].startswith(f"Slice {DEFAULT.max_frames + 2} of {DEFAULT.max_frames + 2}")
