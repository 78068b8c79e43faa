"""0005_measurements anchors key images marked before it (series, slice index) to their image, in the order the
viewer stacks a series: by slice position, then instance number, every frame of a multi-frame file in turn."""
import itertools

import pytest
from sqlalchemy import create_engine, text

from review_portal.migrations_runner import upgrade

_names = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrated.db'}"
        return
    postgres = request.getfixturevalue("postgres")
    name = f"anchor_{next(_names)}"
    yield postgres.create_database(name)
    postgres.drop_database(name)


def _insert(conn, table: str, **row) -> None:
    conn.execute(text(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join(':' + k for k in row)})"), row)


def test_existing_key_images_are_anchored_to_the_slice_they_showed(empty_database_url):
    url = empty_database_url
    upgrade(url, "0003_disciplines")
    engine = create_engine(url)
    when = "2026-11-02 09:00:00+00:00"
    try:
        with engine.begin() as conn:
            _insert(conn, "users", id=1, email="r@old.example", name="R", credentials="", password_hash="x",
                    role="referring", specialty=None, sites="[]", active=True, created_at=when)
            _insert(conn, "cases", id=1, reference="SO-2026-00001", status="in_review", fhir_status="in-progress",
                    review_type="oncology_opinion", cancer_site="breast", priority="routine", referring_id=1,
                    patient_name="Old Patient", patient_dob="1960-01-02", patient_sex="female", patient_mrn="OLD-1",
                    question="?", diagnosis_in_question="d", plan_in_question="p", submitted_at=when, due_at=when,
                    updated_at=when, version=1)
            _insert(conn, "studies", id=1, case_id=1, study_instance_uid="1.2.3", description="", created_at=when)
            _insert(conn, "series", id=1, study_id=1, series_instance_uid="1.2.3.4", modality="CT", description="")
            # id, uid, instance number, position, frames: stacked as 12 (z=-5), 10 (z=0), 11 (z=5, 2 frames), 13 (none)
            for iid, uid, number, z, frames in ((10, "1.9.10", 1, 0.0, 1), (11, "1.9.11", 2, 5.0, 2),
                                                (12, "1.9.12", 3, -5.0, 1), (13, "1.9.13", 4, None, 1)):
                _insert(conn, "instances", id=iid, series_id=1, sop_instance_uid=uid, sop_class_uid="", instance_number=number,
                        slice_position=z, frames=frames, rows=2, columns=2, photometric_interpretation="MONOCHROME2",
                        transfer_syntax_uid="", blob_key="a" * 64, size=1, original_filename="x.dcm")
            for kid, index in ((1, 0), (2, 1), (3, 3), (4, 4), (5, 9)):
                _insert(conn, "key_images", id=kid, case_id=1, series_id=1, slice_index=index, caption="",
                        png_key="b" * 64, created_at=when, created_by_id=1)
        upgrade(url)
        with engine.connect() as conn:
            anchors = {k: (i, u, f) for k, i, u, f in conn.execute(
                text("SELECT id, instance_id, sop_instance_uid, frame FROM key_images"))}
    finally:
        engine.dispose()
    assert anchors == {1: (12, "1.9.12", 0), 2: (10, "1.9.10", 0), 3: (11, "1.9.11", 1), 4: (13, "1.9.13", 0),
                       5: (None, "", 0)}  # index 9 pointed at nothing: no anchor
