"""The Alembic migrations build the same schema as the models, from an empty database,
on SQLite and on PostgreSQL (a real server started by the test session)."""
import itertools

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

import review_portal.models  # noqa: F401  (registers every table)
from review_portal.db import Base
from review_portal.migrations_runner import alembic_config, upgrade

_names = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrated.db'}"
        return
    postgres = request.getfixturevalue("postgres")
    name = f"migrate_{next(_names)}"
    yield postgres.create_database(name)
    postgres.drop_database(name)


def test_migrations_create_every_table_and_match_the_models(empty_database_url):
    url = empty_database_url
    upgrade(url)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            tables = set(inspect(conn).get_table_names())
    finally:
        engine.dispose()
    assert set(Base.metadata.tables) <= tables
    assert diff == [], f"models and migrations disagree: {diff}"


def test_upgrade_is_repeatable(empty_database_url):
    url = empty_database_url
    upgrade(url)
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO institutions (name, address) VALUES ('Kept Hospital', '')"))
            tables_before = set(inspect(conn).get_table_names())
        upgrade(url)  # a second `make run` must not fail, nor change or empty anything
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head]
            assert set(inspect(conn).get_table_names()) == tables_before
            assert conn.execute(text("SELECT name FROM institutions")).scalars().all() == ["Kept Hospital"]
    finally:
        engine.dispose()


def _insert(conn, table: str, **row) -> None:
    conn.execute(text(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join(':' + k for k in row)})"), row)


def test_disciplines_migration_moves_old_cases_and_reviews(empty_database_url):
    """Rows written under 0001 (review types only) get the discipline of who holds them, or the obvious one."""
    url = empty_database_url
    upgrade(url, "0001")
    engine = create_engine(url)
    when = "2026-11-02 09:00:00+00:00"
    try:
        with engine.begin() as conn:
            for uid, role, specialty in ((1, "referring", None), (2, "reviewer", "radiation_oncology"),
                                         (3, "reviewer", "surgical_oncology"), (4, "reviewer", "radiology"),
                                         (5, "reviewer", "medical_oncology")):
                _insert(conn, "users", id=uid, email=f"u{uid}@old.example", name=f"U{uid}", credentials="",
                        password_hash="x", role=role, specialty=specialty, sites="[]", active=True, created_at=when)
            # case id → (review type, [(review id, review type, is_lead, [(reviewer, active)])])
            old = {
                1: ("oncology_opinion", [(11, "oncology_opinion", True, [(5, False), (2, True)])]),  # now radiation
                2: ("oncology_opinion", [(21, "oncology_opinion", True, [(3, True)]),  # surgical
                                         (22, "radiology_read", False, [(4, True)])]),
                3: ("oncology_opinion", [(31, "oncology_opinion", True, [])]),  # in triage: default
                4: ("pathology_review", [(41, "pathology_review", True, [])]),
                5: ("oncology_opinion", [(51, "oncology_opinion", True, [(4, True)])]),  # a radiologist holds it
                6: ("radiology_read", []),  # no review at all
            }
            assignment_id = 100
            for case_id, (case_type, reviews) in old.items():
                _insert(conn, "cases", id=case_id, reference=f"SO-2026-{case_id:05d}", status="assigned",
                        fhir_status="ready", review_type=case_type, cancer_site="breast", priority="routine",
                        referring_id=1, patient_name="Old Patient", patient_dob="1960-01-02", patient_sex="female",
                        patient_mrn=f"OLD-{case_id}", question="?", diagnosis_in_question="d", plan_in_question="p",
                        submitted_at=when, due_at=when, updated_at=when, version=1)
                for review_id, review_type, lead, holders in reviews:
                    _insert(conn, "reviews", id=review_id, case_id=case_id, review_type=review_type, is_lead=lead,
                            status="offered", fhir_status="ready", created_at=when, due_at=when, triage_reason="",
                            findings="")
                    for reviewer_id, active in holders:
                        assignment_id += 1
                        _insert(conn, "assignments", id=assignment_id, case_id=case_id, review_id=review_id,
                                reviewer_id=reviewer_id, assigned_at=when, reason="", status="offered",
                                fhir_status="requested", active=active, decline_reason="", decline_note="")
        upgrade(url)
        with engine.connect() as conn:
            reviews = dict(conn.execute(text("SELECT id, discipline FROM reviews")).all())
            cases = dict(conn.execute(text("SELECT id, discipline FROM cases")).all())
            seeded = conn.execute(text("SELECT key, specialty, active FROM disciplines ORDER BY key")).all()
    finally:
        engine.dispose()
    assert reviews == {11: "radiation_oncology", 21: "surgical_oncology", 22: "radiology", 31: "medical_oncology",
                       41: "pathology", 51: "medical_oncology"}
    assert cases == {1: "radiation_oncology", 2: "surgical_oncology", 3: "medical_oncology", 4: "pathology",
                     5: "medical_oncology", 6: "radiology"}
    assert [(k, s, bool(a)) for k, s, a in seeded] == [
        ("medical_oncology", "medical_oncology", True), ("pathology", "pathology", True),
        ("radiation_oncology", "radiation_oncology", True), ("radiology", "radiology", True),
        ("surgical_oncology", "surgical_oncology", True)]


def test_sections_migration_moves_contributing_findings_into_recorded_sections(empty_database_url):
    """A contributing review's free-text findings (written under 0003) become its section: recorded, not signed,
    in the discipline's main free-text field, authored by the reviewer who took the review on."""
    url = empty_database_url
    upgrade(url, "0003_disciplines")
    engine = create_engine(url)
    when = "2026-11-02 09:00:00+00:00"
    try:
        with engine.begin() as conn:
            for uid, role, specialty in ((1, "referring", None), (2, "reviewer", "medical_oncology"),
                                         (3, "reviewer", "radiology"), (4, "reviewer", "radiation_oncology")):
                _insert(conn, "users", id=uid, email=f"u{uid}@old.example", name=f"U{uid}", credentials="",
                        password_hash="x", role=role, specialty=specialty, sites="[]", active=True, created_at=when)
            _insert(conn, "cases", id=1, reference="SO-2026-00001", status="in_review", fhir_status="in-progress",
                    review_type="oncology_opinion", cancer_site="breast", priority="routine", referring_id=1,
                    patient_name="Old Patient", patient_dob="1960-01-02", patient_sex="female", patient_mrn="OLD-1",
                    question="?", diagnosis_in_question="d", plan_in_question="p", submitted_at=when, due_at=when,
                    updated_at=when, version=1, discipline="medical_oncology")
            # review id → (type, discipline, is_lead, findings, reviewer)
            for rid, rtype, discipline, lead, findings, reviewer in (
                    (11, "oncology_opinion", "medical_oncology", True, "", 2),
                    (12, "radiology_read", "radiology", False, "  No second lesion on re-read.  ", 3),
                    (13, "oncology_opinion", "radiation_oncology", False, "RT after surgery.", 4),
                    (14, "radiology_read", None, False, "", 3)):
                _insert(conn, "reviews", id=rid, case_id=1, review_type=rtype, discipline=discipline, is_lead=lead,
                        status="completed" if findings else "in_review", fhir_status="completed", created_at=when,
                        due_at=when, completed_at=when if findings else None, triage_reason="", findings=findings)
                _insert(conn, "assignments", id=100 + rid, case_id=1, review_id=rid, reviewer_id=reviewer,
                        assigned_at=when, reason="", status="completed" if findings else "accepted",
                        fhir_status="completed", active=True, decline_reason="", decline_note="")
        upgrade(url)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT review_id, kind, author_id, status, content, from_free_text, version "
                                     "FROM opinion_sections ORDER BY review_id")).all()
    finally:
        engine.dispose()
    import json

    found = [(r[0], r[1], r[2], r[3], r[4] if isinstance(r[4], dict) else json.loads(r[4]), bool(r[5]), r[6])
             for r in rows]
    assert found == [
        (12, "radiology", 3, "recorded", {"findings": "No second lesion on re-read."}, True, 1),
        (13, "oncology", 4, "recorded", {"rationale": "RT after surgery."}, True, 1),
    ]
