"""Control characters (NUL first: PostgreSQL refuses it in any text column) are refused at the edge with a
400 that names the field, before any view, form or database sees them. Tab and line breaks stay allowed in
values. DICOM padding (trailing NUL or space) is stripped, never a reason to refuse a study; a control
character inside an indexed value refuses that file with a reason."""
from __future__ import annotations

import html
import io
import json

import pytest
from pydicom import dcmread
from sqlalchemy import func, select

from review_portal.audit.models import AuditEvent
from review_portal.cases.models import Case
from review_portal.imaging import services as imaging
from review_portal.imaging.models import Series, Study
from review_portal.messaging.models import Message
from review_portal.uploads import UploadedFile
from tests.conftest import NOW, PASSWORD, testdata
from tests.web.test_referrals import form as referral_form


def _says(r, char="U+0000") -> str:
    if r.is_json:  # the API's {"error": ...}, or a FHIR OperationOutcome from the FHIR door
        text = r.json["error"] if "error" in r.json else r.json["issue"][0]["diagnostics"]
    else:
        text = html.unescape(r.get_data(as_text=True))
    assert r.status_code == 400 and f"({char}); " in text, (r.status_code, text[:300])
    return text


def _count(db, model) -> int:
    db.expire_all()
    return db.scalar(select(func.count()).select_from(model))


def test_login_form_with_nul_is_a_readable_400(client, users):
    r = client.post("/login", data={"email": "referring@test.example\x00", "password": PASSWORD})
    assert 'The field "email" contains a control character (U+0000); remove it.' in _says(r)
    r = client.post("/login", data={"email": "referring@test.example", "password": "x\x7fy"})
    assert 'The field "password"' in _says(r, "U+007F")


def test_referral_fields_with_control_characters_create_nothing(db, users, login_as):
    client = login_as("referring")
    before = _count(db, Case)
    for field in ("patient_name", "patient_mrn", "question", "history-0-text"):
        r = client.post("/referrals/new", data=referral_form(**{field: "A\x00B"}))
        assert f'The field "{field}" contains a control character' in _says(r)
    # Tab and line breaks are text: a multi-line question goes through.
    r = client.post("/referrals/new", data=referral_form(question="Line one\r\n\tLine two"))
    assert r.status_code == 302, r.data[:300]
    assert _count(db, Case) == before + 1


def test_uploaded_file_names_with_control_characters(db, users, login_as):
    client = login_as("referring")
    data = referral_form()
    data["scans"] = [(io.BytesIO(testdata("CT_small.dcm").read_bytes()), "IM\x000001.dcm")]
    r = client.post("/referrals/new", data=data, content_type="multipart/form-data")
    assert 'The file name "IM?0001.dcm" contains a control character (U+0000); rename the file' in _says(r)


def test_messages_and_audit_search(db, make_case, login_as):
    case = make_case("in_review", cancer_site="thoracic")
    referrer = login_as("referring")
    before = _count(db, Message)
    _says(referrer.post(f"/cases/{case.id}/messages", data={"body": "Scans\x00 re-sent"}))
    _says(referrer.post(f"/cases/{case.id}/messages", data={"body": "bell\x07"}), "U+0007")
    assert _count(db, Message) == before
    assert referrer.post(f"/cases/{case.id}/messages", data={"body": "Two\nlines\tand a tab"}).status_code == 302
    admin = login_as("admin")
    searches = _count(db, AuditEvent)
    for query in ("patient=Jane%00", "user=%00", "action=case.%01viewed", "pat%00ient=x"):
        _says(admin.get(f"/admin/audit?{query}"), "U+0001" if "%01" in query else "U+0000")
    assert _count(db, AuditEvent) == searches  # nothing searched, nothing recorded
    assert admin.get("/admin/audit?patient=Jane").status_code == 200


def test_qido_search_and_path_values(db, make_case, login_as):
    case = make_case("in_review", cancer_site="thoracic", scans=["CT_small.dcm"])
    client = login_as("reviewer")
    for query in ("PatientName=A%00", "StudyInstanceUID=1.2%00", "StudyDate=2020%00", "includefield=%00"):
        _says(client.get(f"/dicomweb/cases/{case.id}/studies?{query}", headers={"Accept": "application/dicom+json"}))
    _says(client.get(f"/dicomweb/cases/{case.id}/studies/1.2.3%00/series"))
    assert client.get(f"/dicomweb/cases/{case.id}/studies?PatientName=A").status_code == 200
    assert client.get(f"/cases/{case.id}").status_code == 200


def test_headers_with_control_characters(client, users):
    r = client.post("/login", data={"email": "a@b.example", "password": "x"}, headers={"User-Agent": "ua\x00"})
    assert 'The request header "User-Agent"' in _says(r)
    assert client.get("/login", headers={"User-Agent": "Mozilla\t5.0"}).status_code == 200


def test_json_bodies_api_and_fhir(client, users, make_token_for_edge):
    raw = make_token_for_edge("referring")
    auth = {"Authorization": f"Bearer {raw}"}
    r = client.post("/api/v1/referrals", json={"question": "a\x00b"}, headers=auth)
    assert r.json["error"] == 'The JSON value at "question" contains a control character (U+0000); remove it.'
    # A lone surrogate gets through JSON escapes only, and no database encoding can store it.
    r = client.post("/api/v1/referrals", data='{"patient": {"name": "\\ud800"}}', headers=auth,
                    content_type="application/json")
    assert 'The JSON value at "patient.name" contains a character that is not text (U+D800)' in _says(r, "U+D800")
    r = client.post("/api/v1/fhir/Bundle", data=json.dumps({"resourceType": "Bundle", "entry": [{"x": "\ufffe"}]}),
                    headers=auth | {"Content-Type": "application/fhir+json"})
    assert 'The JSON value at "entry[0].x"' in _says(r, "U+FFFE")
    r = client.post("/api/v1/referrals", data='{"a\\u0000": 1}', headers=auth, content_type="application/json")
    assert "A JSON member name contains a control character" in _says(r)


@pytest.fixture
def make_token_for_edge(db, users):
    from review_portal.api.services import create_token
    from review_portal.auth.models import User

    ids = {key: user.id for key, user in users.items()}

    def _make(key):
        _row, raw = create_token(db, name="edge", scope="write", days=30, by=db.get(User, ids[key]), ip="1",
                                 now=NOW)
        db.commit()
        return raw

    return _make


# --------------------------------------------------------------------------- DICOM values


def _padded_copy(tmp_path, name="padded.dcm", **values):
    ds = dcmread(testdata("CT_small.dcm"))
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    path = tmp_path / name
    ds.save_as(path)
    return path


def test_a_real_study_with_nul_padded_uids_is_taken_in(db, storage, make_case, users, tmp_path):
    # pydicom's CT_small pads its odd-length UIDs with a NUL to an even length, as the standard says.
    raw = testdata("CT_small.dcm").read_bytes()
    uid = dcmread(testdata("CT_small.dcm")).SOPInstanceUID
    assert len(uid) % 2 == 1 and raw[raw.find(uid.encode()) + len(uid)] == 0
    # A built file whose descriptions carry padding on both sides (NUL, spaces, mixed).
    built = _padded_copy(tmp_path, StudyDescription=" \x00Chest CT\x00 \x00", SeriesDescription="Axial \x00",
                         StudyInstanceUID="1.2.826.0.1.3680043.8.498.4\x00",
                         SeriesInstanceUID="1.2.826.0.1.3680043.8.498.1\x00", SOPInstanceUID="1.2.826.0.1.3680043.8.498.2")
    case = make_case("in_review", cancer_site="thoracic")
    report = imaging.ingest_scans(db, storage, case, [UploadedFile("real.dcm", testdata("CT_small.dcm")),
                                                        UploadedFile("built.dcm", built)],
                                    by=users["referring"], ip="1", now=NOW)
    db.commit()
    assert report.rejected == [] and report.accepted == 2
    series = {s.series_instance_uid: s for s in db.scalars(select(Series).join(Study).where(Study.case_id == case.id))}
    assert uid not in series and "1.2.826.0.1.3680043.8.498.1" in series
    assert all("\x00" not in s.series_instance_uid for s in series.values())
    assert series["1.2.826.0.1.3680043.8.498.1"].description == "Axial"
    studies = {s.study_instance_uid: s.description for s in db.scalars(select(Study).where(Study.case_id == case.id))}
    assert studies["1.2.826.0.1.3680043.8.498.4"] == "Chest CT"


def test_a_control_character_inside_an_indexed_value_refuses_that_file(db, storage, make_case, users, tmp_path):
    bad = _padded_copy(tmp_path, SeriesDescription="Ax\x00ial", SOPInstanceUID="1.2.826.0.1.3680043.8.498.3")
    case = make_case("in_review", cancer_site="thoracic")
    report = imaging.ingest_scans(db, storage, case, [UploadedFile("bad.dcm", bad),
                                                        UploadedFile("good.dcm", testdata("CT_small.dcm"))],
                                    by=users["referring"], ip="1", now=NOW)
    db.commit()
    assert report.rejected == [("bad.dcm", "the Series Description contains a control character (U+0000) "
                                           "inside its value")]
    assert "\x00" not in "".join(db.scalars(select(Series.description)))
