"""Referral intake through the web form, the case list, and state changes refused by the routes."""
from __future__ import annotations

import io
import re

import pytest
from pypdf import PdfWriter
from sqlalchemy import func, select

from config import TestConfig
from review_portal import create_app
from review_portal.audit.models import AuditEvent
from review_portal.auth.models import Institution, Role
from review_portal.auth.services import create_user
from review_portal.cases.models import Case, Document, HistoryEntry
from review_portal.db import create_all, session as db_session
from review_portal.imaging.models import Instance
from tests.conftest import NOW, PASSWORD, testdata


def pdf_bytes() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=300, height=300)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def form(**overrides) -> dict:
    data = {
        "patient_name": "Jane Roe", "patient_dob": "1970-05-06", "patient_sex": "female", "patient_mrn": "H-4711",
        "discipline": "medical_oncology", "cancer_site": "breast", "priority": "urgent",
        "question": "Is neoadjuvant therapy indicated?", "diagnosis_in_question": "Left breast IDC, cT2N1.",
        "plan_in_question": "Upfront mastectomy.",
        "history-0-occurred_on": "2026-09-14", "history-0-kind": "pathology", "history-0-text": "Core biopsy: IDC G3.",
        "history-1-occurred_on": "2026-09-20", "history-1-kind": "imaging", "history-1-text": "MRI: 3.1 cm mass.",
        "history-2-occurred_on": "", "history-2-kind": "", "history-2-text": "",
    }
    data.update(overrides)
    return data


def with_files(data: dict, *, documents=(), scans=()) -> dict:
    data = dict(data)
    data["documents"] = [(io.BytesIO(content), name) for name, content in documents]
    data["scans"] = [(io.BytesIO(content), name) for name, content in scans]
    return data


def case_count(db) -> int:
    db.expire_all()
    return db.scalar(select(func.count()).select_from(Case))


def files_under(root) -> set:
    return {p for p in root.rglob("*") if p.is_file()}


CT = testdata("CT_small.dcm").read_bytes()


# --------------------------------------------------------------------------- submitting


def test_full_referral_creates_the_case_and_names_skipped_files(db, storage, users, login_as):
    client = login_as("referring")
    r = client.post("/referrals/new", data=with_files(
        form(), documents=[("pathology report.pdf", pdf_bytes())],
        scans=[("IM0001.dcm", CT), ("holiday-photo.jpg", b"\xff\xd8\xff\xe0 not a dicom")]),
        content_type="multipart/form-data")
    assert r.status_code == 302
    match = re.fullmatch(r"/cases/(\d+)", r.headers["Location"])
    assert match, r.headers["Location"]
    case_id = int(match.group(1))

    db.expire_all()
    case = db.get(Case, case_id)
    reference = case.reference
    assert case.referring_id == users["referring"].id
    assert (case.patient_name, case.patient_mrn, case.priority) == ("Jane Roe", "H-4711", "urgent")
    assert case.status == "assigned" and case.reviewer.id == users["reviewer"].id
    history = db.scalars(select(HistoryEntry).where(HistoryEntry.case_id == case_id)).all()
    assert sorted((h.kind, h.text) for h in history) == [("imaging", "MRI: 3.1 cm mass."),
                                                         ("pathology", "Core biopsy: IDC G3.")]
    [doc] = db.scalars(select(Document).where(Document.case_id == case_id)).all()
    assert doc.filename == "pathology report.pdf" and storage.read_bytes(doc.sha256).startswith(b"%PDF-")
    assert db.scalar(select(func.count()).select_from(Instance)) == 1
    # Nothing spooled is left behind in the store's scratch area.
    assert files_under(storage._tmp) == set()

    page = client.get(r.headers["Location"]).get_data(as_text=True)
    assert "holiday-photo.jpg" in page and "Skipped" in page
    assert reference in page


def test_fetch_submission_gets_json_with_the_redirect(db, users, login_as):
    client = login_as("referring")
    r = client.post("/referrals/new", data=with_files(form(), scans=[("IM0001.dcm", CT)]),
                    content_type="multipart/form-data", headers={"X-Requested-With": "fetch"})
    assert r.status_code == 200 and r.is_json
    target = r.get_json()["redirect"]
    case_id = int(re.fullmatch(r"/cases/(\d+)", target).group(1))
    assert db.get(Case, case_id).referring_id == users["referring"].id
    assert client.get(target).status_code == 200


def test_missing_fields_are_400_with_messages_and_create_nothing(db, users, login_as):
    client = login_as("referring")
    before = case_count(db)
    r = client.post("/referrals/new", data=form(patient_dob="", cancer_site="", question=""))
    assert r.status_code == 400
    html = r.get_data(as_text=True)
    assert "Please correct the highlighted fields." in html
    assert "Enter the date of birth." in html and "Choose a cancer site." in html
    # What the physician typed is kept.
    assert "H-4711" in html
    assert case_count(db) == before


def test_missing_fields_via_fetch_return_field_errors(db, users, login_as):
    client = login_as("referring")
    before = case_count(db)
    r = client.post("/referrals/new", data=form(patient_sex="", discipline=""),
                    headers={"X-Requested-With": "fetch"})
    assert r.status_code == 400
    body = r.get_json()
    assert body["error"] == "Please correct the highlighted fields."
    assert body["fields"]["patient_sex"] == ["Choose the patient's sex."]
    assert body["fields"]["discipline"] == ["Choose the discipline the question needs."]
    assert case_count(db) == before


def test_half_filled_history_entry_is_reported_to_fetch_clients(db, users, login_as):
    client = login_as("referring")
    before = case_count(db)
    r = client.post("/referrals/new", data=form(**{"history-1-text": ""}), headers={"X-Requested-With": "fetch"})
    assert r.status_code == 400
    fields = r.get_json()["fields"]
    assert fields.get("history-1-text") == ["Give the date, kind and text of each history entry."], fields
    assert case_count(db) == before


def test_a_non_pdf_document_is_refused_and_nothing_is_saved(db, storage, users, login_as):
    client = login_as("referring")
    before_cases, before_files = case_count(db), files_under(storage.root)
    r = client.post("/referrals/new", data=with_files(
        form(), documents=[("good.pdf", pdf_bytes()), ("scan-of-letter.docx", b"PK\x03\x04 word document")],
        scans=[("IM0001.dcm", CT)]), content_type="multipart/form-data")
    assert r.status_code == 400
    assert "scan-of-letter.docx" in r.get_data(as_text=True)
    assert case_count(db) == before_cases
    assert db.scalar(select(func.count()).select_from(Document)) == 0
    assert db.scalar(select(func.count()).select_from(Instance)) == 0
    new_files = files_under(storage.root) - before_files
    assert {p for p in new_files if storage._tmp not in p.parents} == set()
    assert db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "case.submitted")) == 0


def test_upload_over_the_size_limit_is_413_with_a_readable_message(tmp_path):
    limit = 1024 * 1024
    app = create_app(TestConfig, MAX_CONTENT_LENGTH=limit, DATABASE_URL=f"sqlite:///{tmp_path / 'limit.db'}",
                     STORAGE_DIR=str(tmp_path / "limit-store"))
    engine = app.extensions["db_engine"]
    create_all(engine)
    try:
        with app.app_context():
            s = db_session()
            hospital = Institution(name="Hospital")
            s.add(hospital)
            create_user(s, email="doc@test.example", name="Doc", password=PASSWORD, role=Role.REFERRING, now=NOW,
                        institution=hospital)
            s.commit()
            db_session.remove()
        client = app.test_client()
        assert client.post("/login", data={"email": "doc@test.example", "password": PASSWORD}).status_code == 302
        big = [("huge.dcm", b"\0" * (limit + 512 * 1024))]
        r = client.post("/referrals/new", data=with_files(form(), scans=big), content_type="multipart/form-data")
        assert r.status_code == 413
        html = r.get_data(as_text=True)
        assert "larger than the 1 MB limit" in html and "Nothing was saved" in html
        r = client.post("/referrals/new", data=with_files(form(), scans=big), content_type="multipart/form-data",
                        headers={"X-Requested-With": "fetch"})
        assert r.status_code == 413 and "1 MB" in r.get_json()["error"]
        with app.app_context():
            assert db_session().scalar(select(func.count()).select_from(Case)) == 0
            db_session.remove()
        store = tmp_path / "limit-store"
        assert {p for p in files_under(store) if not {"tmp", "anchors"} & set(p.relative_to(store).parts)} == set()
    finally:
        db_session.remove()
        engine.dispose()


@pytest.mark.parametrize("role", ["reviewer", "coordinator"])
def test_only_referring_physicians_may_refer(db, users, login_as, role):
    client = login_as(role)
    before = case_count(db)
    assert client.get("/referrals/new").status_code == 403
    r = client.post("/referrals/new", data=with_files(form(), scans=[("IM0001.dcm", CT)]),
                    content_type="multipart/form-data")
    assert r.status_code == 403
    assert case_count(db) == before


def test_referral_form_renders_for_referring(login_as):
    r = login_as("referring").get("/referrals/new")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert 'name="history-0-occurred_on"' in html and 'name="scans"' in html and 'multipart/form-data' in html


# --------------------------------------------------------------------------- the list


def test_list_is_paginated(app, make_case, login_as):
    app.config["PAGE_SIZE"] = 2
    made = [make_case("assigned", patient_name=name) for name in ("Alpha Patient", "Bravo Patient", "Charlie Patient")]
    client = login_as("referring")
    page1 = client.get("/cases").get_data(as_text=True)
    page2 = client.get("/cases?page=2").get_data(as_text=True)
    assert "Alpha Patient" in page1 and "Bravo Patient" in page1 and "Charlie Patient" not in page1
    assert "Charlie Patient" in page2 and "Alpha Patient" not in page2 and "Bravo Patient" not in page2
    assert made[2].reference in page2
    # Out-of-range or garbage page numbers do not break the page.
    assert client.get("/cases?page=99").status_code == 200
    assert "Alpha Patient" in client.get("/cases?page=abc").get_data(as_text=True)


def test_list_filters_by_status(make_case, login_as):
    make_case("assigned", patient_name="Open Patient")
    make_case("withdrawn", patient_name="Gone Patient")
    client = login_as("referring")
    withdrawn = client.get("/cases?status=withdrawn").get_data(as_text=True)
    assert "Gone Patient" in withdrawn and "Open Patient" not in withdrawn
    assigned = client.get("/cases?status=assigned").get_data(as_text=True)
    assert "Open Patient" in assigned and "Gone Patient" not in assigned
    everything = client.get("/cases?status=nonsense").get_data(as_text=True)
    assert "Open Patient" in everything and "Gone Patient" in everything


def test_list_filter_is_kept_in_page_links(app, make_case, login_as):
    app.config["PAGE_SIZE"] = 1
    make_case("withdrawn", patient_name="Gone One")
    make_case("withdrawn", patient_name="Gone Two")
    make_case("assigned", patient_name="Open One")
    client = login_as("referring")
    page2 = client.get("/cases?status=withdrawn&page=2").get_data(as_text=True)
    assert "Open One" not in page2 and ("Gone One" in page2) != ("Gone Two" in page2)


# --------------------------------------------------------------------------- state changes via routes


def test_withdraw_via_the_route(db, make_case, users, login_as):
    case = make_case("assigned")
    cid = case.id
    client = login_as("referring")
    r = client.post(f"/cases/{cid}/withdraw", data={"reason": "Patient chose local treatment.", "confirm": "yes"})
    assert r.status_code == 302 and r.headers["Location"] == f"/cases/{cid}"
    db.expire_all()
    case = db.get(Case, cid)
    assert case.status == "withdrawn" and case.closed_at is not None
    [event] = db.scalars(select(AuditEvent).where(AuditEvent.action == "case.withdrawn",
                                                  AuditEvent.case_id == cid)).all()
    assert event.actor_id == users["referring"].id and "local treatment" in event.detail


def test_withdraw_without_a_reason_is_400(db, make_case, login_as):
    case = make_case("assigned")
    cid = case.id
    r = login_as("referring").post(f"/cases/{cid}/withdraw", data={"reason": "", "confirm": "yes"})
    assert r.status_code == 400 and "Say why" in r.get_data(as_text=True)
    db.expire_all()
    assert db.get(Case, cid).status == "assigned"


def test_the_reviewer_cannot_withdraw(db, make_case, login_as):
    case = make_case("assigned")
    cid = case.id
    r = login_as("reviewer").post(f"/cases/{cid}/withdraw", data={"reason": "not mine to do", "confirm": "yes"})
    assert r.status_code == 403
    db.expire_all()
    assert db.get(Case, cid).status == "assigned"


def test_acknowledge_on_an_assigned_case_is_409(db, make_case, login_as):
    case = make_case("assigned")
    cid, ref = case.id, case.reference
    r = login_as("referring").post(f"/cases/{cid}/acknowledge")
    assert r.status_code == 409
    html = r.get_data(as_text=True)
    assert "no letter to acknowledge" in html and ref in html
    db.expire_all()
    assert db.get(Case, cid).status == "assigned"


def test_withdraw_on_a_closed_case_is_409(db, make_case, login_as):
    case = make_case("closed")
    cid = case.id
    client = login_as("referring")
    r = client.post(f"/cases/{cid}/withdraw", data={"reason": "changed my mind", "confirm": "yes"})
    assert r.status_code == 409
    assert "is closed; it can no longer be withdrawn" in r.get_data(as_text=True)
    r = client.post(f"/cases/{cid}/withdraw", data={"reason": "again", "confirm": "yes"}, headers={"Accept": "application/json"})
    assert r.status_code == 409 and r.get_json()["status"] == 409 and "closed" in r.get_json()["error"]
    db.expire_all()
    assert db.get(Case, cid).status == "closed"
    assert db.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "case.withdrawn")) == 0


def test_acknowledge_then_close_via_the_routes(db, make_case, login_as):
    case = make_case("letter_delivered")
    cid, ref = case.id, case.reference
    client = login_as("referring")
    r = client.post(f"/cases/{cid}/acknowledge")
    assert r.status_code == 302
    # The confirmation says what happened, and does not claim the case is closed.
    page = client.get(r.headers["Location"]).get_data(as_text=True)
    assert "Receipt acknowledged" in page and f"Case {ref} is closed" not in page
    db.expire_all()
    assert db.get(Case, cid).status == "acknowledged" and db.get(Case, cid).closed_at is None
    assert client.post(f"/cases/{cid}/acknowledge").status_code == 409
    # Closing is its own step, taken by the referring physician once receipt is acknowledged.
    assert login_as("other_referring").post(f"/cases/{cid}/close", data={"confirm": "yes"}).status_code == 404
    r = client.post(f"/cases/{cid}/close", data={"confirm": "yes"})
    assert r.status_code == 302
    db.expire_all()
    assert db.get(Case, cid).status == "closed" and db.get(Case, cid).closed_at is not None
    assert client.post(f"/cases/{cid}/close", data={"confirm": "yes"}).status_code == 409
